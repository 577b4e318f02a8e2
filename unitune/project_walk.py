"""Walking a project: the one rule for which of its folders hold none of its own files.

Every walk of a project leaves out
- the folders named in `SKIPPED_FOLDERS`;
- any folder holding a `pyvenv.cfg` (a virtual environment, whatever its name) or named `*.egg-info`;
- build output (`BUILD_OUTPUT_FOLDERS`) in a folder that holds a build file (`BUILD_FILES`): elsewhere
  `build` or `out` may well be a package of the project;
- hidden folders (`.github`, `.idea`, ...), except when copying the project to run its tests;
- symbolic links to folders, which are never followed.

Reading the project's code (`project_files`: finding test and focal files, mining) uses the rule as
it is. Copying the project to run its tests (`project_folders(..., copying=True)`) also keeps hidden
folders and the skipped folders in `COPIED_ANYWAY`: the tests may read the one and import the other.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

#: Folders that are not the project's own, by name.
SKIPPED_FOLDERS = frozenset({
    # version control
    ".git", ".hg", ".svn", ".bzr",
    # virtual environments and installed dependencies
    ".venv", "venv", "env", "site-packages", "node_modules", ".eggs", ".gradle", ".m2",
    # caches and the state of tools and editors
    "__pycache__", ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis",
    ".ipynb_checkpoints", "htmlcov", ".unitune", ".idea",
    # other projects' code kept in this one
    "vendor", "third_party",
})
#: Of `SKIPPED_FOLDERS`, those a copy made to run the tests keeps: tests import vendored code, and an
#: `env` folder without a `pyvenv.cfg` may be a package.
COPIED_ANYWAY = frozenset({"env", "vendor", "third_party"})
#: Build output, left out only beside a build file.
BUILD_OUTPUT_FOLDERS = frozenset({"build", "dist", "target", "out"})
BUILD_FILES = frozenset({"pom.xml", "build.gradle", "build.gradle.kts", "setup.py", "setup.cfg", "pyproject.toml"})


def project_folders(top: str | Path, *, copying: bool = False) -> Iterator[tuple[Path, list[str]]]:
    """`top` and every folder under it that the walk enters, each with the names of its files; a
    folder comes before the folders under it, and both folders and file names are sorted. `copying`
    keeps the folders a copy of the project to run its tests needs (see the module's docstring)."""
    for folder, dirs, files in os.walk(top):
        here = Path(folder)
        beside_build_file = not BUILD_FILES.isdisjoint(files)
        dirs[:] = sorted(d for d in dirs if not _skipped(here / d, beside_build_file, copying))
        yield here, sorted(files)


def project_files(top: str | Path, suffixes: Iterable[str] = (), names: Iterable[str] = ()) -> Iterator[Path]:
    """The project's files under `top`; when `suffixes` or `names` are given, only the files whose
    name ends with one of `suffixes` or is one of `names`."""
    suffixes, names = tuple(suffixes), frozenset(names)
    for folder, files in project_folders(top):
        for name in files:
            if (not suffixes and not names) or name in names or (suffixes and name.endswith(suffixes)):
                yield folder / name


def _skipped(folder: Path, beside_build_file: bool, copying: bool) -> bool:
    name = folder.name
    if name in SKIPPED_FOLDERS and not (copying and name in COPIED_ANYWAY):
        return True
    if name.startswith(".") and not copying:
        return True
    return (name.endswith(".egg-info") or (beside_build_file and name in BUILD_OUTPUT_FOLDERS)
            or (folder / "pyvenv.cfg").exists())
