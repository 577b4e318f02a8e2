"""The two programs that run inside a sandbox, shipped beside this module as files of their own:
the driver (`driver.py`: the run's first process, which sets up what needs privileges and starts
pytest) and the network guard (`network_guard.py`, written into the run as its `sitecustomize`)."""

from __future__ import annotations

from pathlib import Path

DRIVER_FILE = Path(__file__).with_name("driver.py")
NETWORK_GUARD_FILE = Path(__file__).with_name("network_guard.py")


def driver_source() -> str:
    return DRIVER_FILE.read_text(encoding="utf-8")


def network_guard_source() -> str:
    return NETWORK_GUARD_FILE.read_text(encoding="utf-8")


def driver_command(interpreter: str, driver: Path, config: Path) -> list[str]:
    """The driver's first process: isolated (`-I`: no `PYTHONPATH`, no user site, not the script's
    folder) and without `site` (`-S`), as it may hold privileges: it imports the standard library only."""
    return [interpreter, "-I", "-S", "-B", str(driver), str(config)]
