"""How a project is laid out: its root, its test folders, which files are tests, and the names its
code is imported by.

Both directions of placement read these conventions (a focal file's test file: `unitune.placement`;
a test file's focal files: `unitune.focal_candidates`), and so does framework detection
(`unitune.frameworks`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

PROJECT_MARKERS = (".git", "pyproject.toml", "setup.py", "setup.cfg", "pom.xml", "build.gradle", "build.gradle.kts")
TEST_DIR_NAMES = ("tests", "test")
# Folders that group tests without mirroring a package (`tests/unit/pkg/test_mod.py`).
GROUPING_DIRS = frozenset({"unit", "units", "unittests", "unit_tests", "integration", "functional", "python", "py"})
JAVA_TEST_SUFFIXES = ("Test", "Tests", "IT", "TestCase", "ITCase")
JAVA_COMMENT_RE = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)
_JAVA_PACKAGE_RE = re.compile(r"^\s*package\s+([\w.]+)\s*;", re.MULTILINE)
_JAVA_TEST_NAME_RE = re.compile(r"^(Test[A-Z_]\w*|\w+(Test|Tests|TestCase|IT|ITCase))$")


def find_project_root(path: str | Path) -> Path:
    """The nearest folder at or above `path` holding a project marker (`.git`, `pyproject.toml`,
    `setup.py`, `setup.cfg`, `pom.xml`, `build.gradle`), else the folder of `path`."""
    path = Path(path).resolve()
    start = path if path.is_dir() else path.parent
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in PROJECT_MARKERS):
            return folder
    return start


def root_test_dirs(root: Path) -> list[Path]:
    """The test folders at the project root (`tests/`, `test/`) that exist."""
    return [root / name for name in TEST_DIR_NAMES if (root / name).is_dir()]


def looks_like_test_file(path: str | Path) -> bool:
    """Whether the name or place of `path` makes it a test file, as runners pick them: pytest
    (`test_*.py`, `*_test.py`, plus `conftest.py`), unittest/Django (`test.py`, `tests.py`), Maven
    (`Test*`, `*Test`, `*Tests`, `*TestCase`, `*IT`, `*ITCase`, or anything under `src/test/`)."""
    path = Path(path)
    stem, suffix = path.stem, path.suffix.lower()
    if suffix in (".py", ".pyi"):
        return stem.startswith("test_") or stem.endswith("_test") or stem in ("test", "tests", "conftest")
    if suffix == ".java":
        return bool(_JAVA_TEST_NAME_RE.match(stem)) or maven_module(path, "test") is not None
    return False


def tested_name(name: str) -> str:
    """What a test file's stem or a test folder's name says it tests: `test_email`, `tests_email`,
    `email_test` and `email_tests` name `email`; any other name names nothing ("")."""
    for prefix in ("test_", "tests_"):
        if name.startswith(prefix):
            return name[len(prefix):]
    for suffix in ("_tests", "_test"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return ""


# -- Python --------------------------------------------------------------------------------------

def python_module_name(focal_path: str | Path, project_root: str | Path | None = None) -> str:
    """The dotted name `focal_path` is imported by: packages are walked up while `__init__.py`
    exists; under a src layout the path below `src/` is the name (namespace packages included); a
    module outside any package is named from the project root."""
    focal = Path(focal_path).resolve()
    root = Path(project_root).resolve() if project_root else find_project_root(focal)
    base = python_import_base(focal, root)
    parts = list(focal.relative_to(base).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or focal.parent.name


def python_import_base(focal: Path, root: Path) -> Path:
    """The folder that goes on `sys.path` for `focal` to be importable."""
    src = root / "src"
    if src.is_dir() and src in focal.parents:
        return src
    folder = focal.parent
    if (folder / "__init__.py").exists():
        while (folder / "__init__.py").exists() and folder != folder.parent:
            folder = folder.parent
        return folder
    return root if root == focal.parent or root in focal.parents else focal.parent


# -- Java ----------------------------------------------------------------------------------------

def java_package_of(path: str | Path) -> str:
    """The package a Java file declares ("" for the default package or an unreadable file)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    match = _JAVA_PACKAGE_RE.search(JAVA_COMMENT_RE.sub("", text[:20000]))
    return match.group(1) if match else ""


def maven_module(path: Path, kind: str) -> Path | None:
    """The module folder of a file under `<module>/src/<kind>/java/`."""
    parts = path.parts
    for index in range(len(parts) - 3, -1, -1):
        if parts[index:index + 3] == ("src", kind, "java"):
            return Path(*parts[:index])
    return None


def common_suffix(a: Sequence[str], b: Sequence[str]) -> int:
    """How many trailing items `a` and `b` share (package paths compared from their ends)."""
    count = 0
    while count < min(len(a), len(b)) and a[len(a) - 1 - count] == b[len(b) - 1 - count]:
        count += 1
    return count
