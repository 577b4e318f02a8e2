"""The programs that run inside a sandbox, shipped beside this module as files of their own: the
driver (`driver.py`: the run's first process, which sets up what needs privileges, with its run's
half `driver_run.py`, which starts pytest) and the network guard (`network_guard.py`, written into
the run as its `sitecustomize`)."""

from __future__ import annotations

import os
from pathlib import Path

DRIVER_FILE = Path(__file__).with_name("driver.py")
DRIVER_RUN_FILE = Path(__file__).with_name("driver_run.py")
NETWORK_GUARD_FILE = Path(__file__).with_name("network_guard.py")
#: The run's own folder, where the network guard lets tests reach filesystem sockets (network_guard.py reads
#: the same name)
RUN_FOLDER_ENV = "UNITUNE_SANDBOX_RUN_FOLDER"
#: The names a run writes the driver's files under: their folder may be first on the run's `sys.path`,
#: where a plain `driver` would shadow a project's module. The driver imports its run's half by its
#: name (`RUN_MODULE` in driver.py).
DRIVER_NAME, DRIVER_RUN_NAME = "unitune_sandbox_driver.py", "unitune_sandbox_driver_run.py"


def write_driver(folder: Path) -> Path:
    """Write the driver's files into `folder`, readable by the tests' user; the driver's path."""
    for shipped, name in ((DRIVER_FILE, DRIVER_NAME), (DRIVER_RUN_FILE, DRIVER_RUN_NAME)):
        target = folder / name
        target.write_text(shipped.read_text(encoding="utf-8"), encoding="utf-8")
        os.chmod(target, 0o644)
    return folder / DRIVER_NAME


def network_guard_source() -> str:
    return NETWORK_GUARD_FILE.read_text(encoding="utf-8")


def driver_command(interpreter: str, driver: Path, config: Path) -> list[str]:
    """The driver's first process: isolated (`-I`: no `PYTHONPATH`, no user site, not the script's
    folder) and without `site` (`-S`), as it may hold privileges: it imports the standard library only."""
    return [interpreter, "-I", "-S", "-B", str(driver), str(config)]
