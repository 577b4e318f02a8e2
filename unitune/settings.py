"""Settings: one typed, fully defaulted schema, and where values come from.

Precedence, highest first: command-line flag or editor setting > project file > user file > defaults.
- project: `[tool.unitune]` in `pyproject.toml`, else `unitune.toml` at the project root;
- user: `unitune/config.toml` in the platform's config directory (`UNITUNE_CONFIG` overrides the path);
- data (adapters, logs, checkpoints): `UNITUNE_HOME`, default the platform's user data directory.

A bad value never stops unitune: it is reported (key, value, what is allowed) and the default is used.
"""

from __future__ import annotations

import dataclasses
import os
try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unitune.context import CONTEXT_LEVELS, DEFAULT_CONTEXT
from unitune.errors import UnituneError
from unitune.files import UnreadableFileError, atomic_write, read_regular_text
from unitune.frameworks import FRAMEWORKS

#: The model used when no `model` is set: Qwen2.5-Coder-0.5B-Instruct under its built-in name (found in
#: the Hugging Face cache, else in the packages unitune installs; `unitune.runtime.builtin_models`).
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct"
#: The small model shipped inside the package, which the test suite uses (fast, not useful for real tests).
BUNDLED_TEST_MODEL = "unitune-mini"

QUANTIZATIONS = ("auto", "4bit", "8bit", "none")
DEVICES = ("auto", "cuda", "cpu", "mps")
VALIDATIONS = ("none", "syntax", "run")
#: What runs the model (`unitune.runtime.engines`): the fastest that can serve the request, or the one named.
ENGINES = ("auto", "torch", "llama.cpp")
# What `validate = "run"` does with a failing test (unitune.assured.oracles): write the observed value, drop
# the assertion, or drop the test.
OBSERVE, DROP, NO_REPAIR = "observe", "drop", "none"
REPAIRS = (OBSERVE, DROP, NO_REPAIR)

PROJECT_FILE = "unitune.toml"
PYPROJECT_FILE = "pyproject.toml"


@dataclass(frozen=True)
class Settings:
    """Every setting, with its default. `None` means "not set; detect or leave off"."""

    model: str = DEFAULT_MODEL
    adapter: str | None = None
    quantization: str = "auto"
    device: str = "auto"
    engine: str = "auto"
    context: str = DEFAULT_CONTEXT
    project_context: bool = True  # the prompt's project block: what the focal function uses, a nearby test
    max_new_tokens: int = 256
    candidates: int = 1
    validate: str = "run"
    repair: str = "observe"
    time_budget: int = 300
    python: str | None = None
    test_dir: str | None = None
    framework: str | None = None
    trust_remote_code: bool = False
    server_url: str | None = None  # an OpenAI-compatible inference server (vLLM, llama.cpp) instead of this process


#: What each key allows, for validation and for the messages a bad value gets.
CHOICES: dict[str, tuple[str, ...]] = {
    "quantization": QUANTIZATIONS,
    "device": DEVICES,
    "engine": ENGINES,
    "context": CONTEXT_LEVELS,
    "validate": VALIDATIONS,
    "repair": REPAIRS,
    "framework": FRAMEWORKS,
}
RANGES: dict[str, tuple[int, int]] = {"max_new_tokens": (1, 8192), "candidates": (1, 64), "time_budget": (5, 3600)}
KEYS = tuple(f.name for f in dataclasses.fields(Settings))
#: The keys that are true or false.
SWITCHES = tuple(f.name for f in dataclasses.fields(Settings) if isinstance(f.default, bool))


@dataclass
class LoadedSettings:
    """Settings plus the problems found while reading them (shown to the user, never fatal)."""

    settings: Settings
    problems: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # key -> where its value came from


def validate(values: dict[str, Any], origin: str, problems: list[str]) -> dict[str, Any]:
    """The valid subset of `values`; every invalid or unknown entry adds a message to `problems`."""
    valid: dict[str, Any] = {}
    defaults = Settings()
    for key, value in values.items():
        key = key.replace("-", "_")
        if key not in KEYS:
            problems.append(f"{origin}: unknown setting {key!r} ignored (known: {', '.join(KEYS)})")
            continue
        if value is None:
            continue
        default = getattr(defaults, key)
        if key in CHOICES:
            if value not in CHOICES[key]:
                problems.append(
                    f"{origin}: {key} = {value!r} is not one of {', '.join(CHOICES[key])}; using {default!r}"
                )
                continue
        elif key in RANGES:
            low, high = RANGES[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                problems.append(
                    f"{origin}: {key} = {value!r} must be a whole number from {low} to {high}; using {default!r}"
                )
                continue
        elif key in SWITCHES:
            if not isinstance(value, bool):
                problems.append(f"{origin}: {key} = {value!r} must be true or false; using {default!r}")
                continue
        elif key == "server_url":
            if not _is_http_url(value):
                problems.append(f"{origin}: {key} = {value!r} must be an http:// or https:// URL such as "
                                f"http://gpu-box:8000; using {default!r}")
                continue
            value = value.rstrip("/")
        elif not isinstance(value, str) or not value.strip():
            problems.append(f"{origin}: {key} = {value!r} must be a non-empty string; using {default!r}")
            continue
        valid[key] = value
    return valid


def _is_http_url(value: Any) -> bool:
    from urllib.parse import urlsplit

    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and value == value.strip()


def user_config_path() -> Path:
    if os.environ.get("UNITUNE_CONFIG"):
        return Path(os.environ["UNITUNE_CONFIG"])
    import platformdirs

    return Path(platformdirs.user_config_dir("unitune")) / "config.toml"


def data_home() -> Path:
    """Where adapters, logs and checkpoints live: `UNITUNE_HOME`, else the user data directory."""
    if os.environ.get("UNITUNE_HOME"):
        return Path(os.environ["UNITUNE_HOME"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("unitune"))


def _read_toml(path: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        return tomllib.loads(read_regular_text(path))
    except FileNotFoundError:
        return None
    except (OSError, tomllib.TOMLDecodeError, UnreadableFileError) as error:
        problems.append(f"{path}: cannot read settings ({error}); ignoring this file")
        return None


def project_settings_file(project_root: Path) -> Path:
    """The file that holds (or will hold) a project's settings."""
    pyproject = project_root / PYPROJECT_FILE
    if pyproject.is_file():
        try:
            if "unitune" in tomllib.loads(read_regular_text(pyproject)).get("tool", {}):
                return pyproject
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError, UnituneError):
            pass
    return project_root / PROJECT_FILE


def read_project(project_root: Path, problems: list[str]) -> tuple[dict[str, Any], str | None]:
    """The project's raw settings and the file they came from."""
    pyproject = _read_toml(project_root / PYPROJECT_FILE, problems)
    if pyproject and isinstance(pyproject.get("tool", {}).get("unitune"), dict):
        if (project_root / PROJECT_FILE).is_file():
            problems.append(f"{project_root / PROJECT_FILE} is ignored: {project_root / PYPROJECT_FILE} has "
                            "[tool.unitune], which wins; move its settings there")
        return pyproject["tool"]["unitune"], str(project_root / PYPROJECT_FILE)
    path = project_root / PROJECT_FILE
    table = _read_toml(path, problems)
    if table is None:
        return {}, None
    return table.get("tool", {}).get("unitune", table), str(path)


COMMAND_LINE = "command line"


def load_settings(project_root: Path | None = None, overrides: dict[str, Any] | None = None,
                  overrides_origin: str = "settings") -> LoadedSettings:
    """Merge defaults < user file < project file < `overrides` (flags or editor settings; their
    problems are named after `overrides_origin`)."""
    problems: list[str] = []
    sources: dict[str, str] = {}
    merged: dict[str, Any] = {}
    user_path = user_config_path()
    user = _read_toml(user_path, problems) or {}
    layers = [(user, str(user_path))]
    if project_root is not None:
        project, origin = read_project(Path(project_root), problems)
        layers.append((project, origin or str(project_root)))
    layers.append((overrides or {}, overrides_origin))
    for values, origin in layers:
        if not isinstance(values, dict):
            problems.append(f"{origin}: settings must be a table of key = value; ignoring it")
            continue
        for key, value in validate(values, origin, problems).items():
            merged[key] = value
            sources[key] = origin
    return LoadedSettings(Settings(**merged), problems, sources)


def refuse_bad_flags(loaded: LoadedSettings) -> None:
    """A bad flag value is an error (exit 2); a bad value in a settings file only warns."""
    from unitune.errors import BadSettingError

    bad = [problem.split(";")[0].removeprefix(f"{COMMAND_LINE}: ") for problem in loaded.problems
           if problem.startswith(f"{COMMAND_LINE}: ")]
    if bad:
        raise BadSettingError("; ".join(bad))


def write_project_setting(project_root: Path, key: str, value: str | None) -> Path:
    """Record one setting in the project's settings file, keeping everything else in it (comments,
    layout, other tables: tomlkit edits the document). `None` removes the key. In pyproject.toml the
    key goes into `[tool.unitune]` (created when missing; an inline table is edited in place).
    Returns the file written."""
    import tomlkit

    from unitune.errors import BadSettingError

    if key not in KEYS:
        raise ValueError(f"unknown setting {key!r}")
    path = project_settings_file(project_root)
    text = path.read_text("utf-8") if path.exists() else ""
    try:
        document = tomlkit.parse(text)
    except Exception as error:  # tomlkit's own parse errors
        raise BadSettingError(f"{path}: not valid TOML ({error}); fix it, then try again") from None
    if path.name == PYPROJECT_FILE:
        tool = document.setdefault("tool", tomlkit.table(is_super_table=True))
        table = tool.setdefault("unitune", tomlkit.table())
    else:
        tool = document.get("tool")
        table = tool.get("unitune") if isinstance(tool, dict) and isinstance(tool.get("unitune"), dict) else document
    if value is None:
        table.pop(key, None)
    else:
        table[key] = value
    atomic_write(path, tomlkit.dumps(document))
    return path

