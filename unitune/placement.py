"""Where the tests of a focal file go: the existing test file, else the path of a new one, with the
framework, the importable name of the code under test and the test class to write.

Conventions followed:
- Python: `tests/` or `test/` at the project root, flat (`tests/test_mod.py`) or mirroring the package
  (`tests/pkg/sub/test_mod.py`, or without the top package `tests/sub/test_mod.py`); `test_mod.py` or
  `mod_test.py` beside the module or in a `tests/` folder next to it; src layouts (`src/pkg/mod.py`).
- Java: Maven/Gradle (`<module>/src/main/java/<pkg>/Foo.java` -> `<module>/src/test/java/<pkg>/FooTest.java`,
  also `FooTests`, `FooIT`, `TestFoo`, `FooTestCase`); other layouts: beside the class or a
  `test/`/`tests/` folder mirroring the package.

The way back, from a test file to the files it tests, is `unitune.focal_candidates`; the conventions
both share are `unitune.project_layout`'s.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from unitune.errors import BadFileError, UnituneError
from unitune.frameworks import UNITTEST, detect_framework
from unitune.languages import JAVA, PYTHON, language_for_path
from unitune.listing import list_tests
from unitune.project_layout import (
    GROUPING_DIRS, JAVA_TEST_SUFFIXES, TEST_DIR_NAMES, common_suffix, find_project_root, java_package_of,
    maven_module, python_import_base, python_module_name, root_test_dirs, tested_name,
)
from unitune.project_walk import project_files
from unitune.source import SourceFile


@dataclass(frozen=True)
class TestLocation:
    """Where the tests of a focal file go."""

    __test__ = False  # a data class, not a pytest test class

    path: Path
    exists: bool
    framework: str  # one of FRAMEWORKS
    module_import: str | None  # Python: dotted module of the focal file; Java: fully qualified class
    test_class_name: str | None  # Java: the test class; Python unittest: the TestCase; pytest: None


def locate_test_file(focal_path: str | Path, project_root: str | Path | None = None,
                     *, test_dir: str | Path | None = None) -> TestLocation:
    """The test file of `focal_path`: the existing one, else where a new one goes (`test_dir`, the
    `test_dir` setting, overrides the folder of a new file)."""
    focal, root, test_dir = _normalized(focal_path, project_root, test_dir)
    if language_for_path(focal) == JAVA:
        return _locate_java(focal, root, test_dir)
    return _locate_python(focal, root, test_dir)


def locate_test_path(focal_path: str | Path, project_root: str | Path | None = None,
                     *, test_dir: str | Path | None = None) -> tuple[Path, bool]:
    """The path `locate_test_file` gives and whether that file exists, without detecting the
    framework (which reads the neighbouring tests: the slow part)."""
    focal, root, test_dir = _normalized(focal_path, project_root, test_dir)
    if language_for_path(focal) == JAVA:
        path, existing, _ = _java_test_path(focal, root, test_dir)
    else:
        path, existing, _ = _python_test_path(focal, root, test_dir)
    return usable_test_file(path, root), existing


def _normalized(focal_path, project_root, test_dir) -> tuple[Path, Path, Path | None]:
    focal = Path(focal_path).resolve()
    root = Path(project_root).resolve() if project_root else find_project_root(focal)
    if test_dir is not None:
        test_dir = Path(test_dir) if Path(test_dir).is_absolute() else root / test_dir
    return focal, root, test_dir


# -- Python --------------------------------------------------------------------------------------

def usable_test_file(path: Path, root: Path) -> Path:
    """`path` when unitune may read and write the test file there. A symbolic link is followed only to a
    file inside the project: one that loops or leads nowhere cannot be read, and writing through one that
    leads out of the project would edit a file elsewhere."""
    if path.is_symlink():
        try:
            target = path.resolve(strict=True)
        except (RuntimeError, OSError):  # a loop (RuntimeError before Python 3.13), or a link to nothing
            raise BadFileError(f"{path} is a symbolic link that loops or leads nowhere; replace it with the test "
                               "file itself, or remove it") from None
        if not target.is_relative_to(root):
            raise BadFileError(f"{path} links to {target}, outside the project {root}; unitune writes tests only "
                               "inside the project: replace the link with the file, or set test_dir")
    return path


def _locate_python(focal: Path, root: Path, test_dir: Path | None) -> TestLocation:
    path, existing, module = _python_test_path(focal, root, test_dir)
    usable_test_file(path, root)
    stem = module.split(".")[-1]
    framework = detect_framework(path, root, PYTHON)
    class_name = None
    if framework == UNITTEST:
        class_name = _unittest_class(path) or "Test" + "".join(p.capitalize() for p in stem.split("_"))
    return TestLocation(path, existing, framework, module, class_name)


def _python_test_path(focal: Path, root: Path, test_dir: Path | None) -> tuple[Path, bool, str]:
    """(test file, whether it exists, the focal file's dotted module)."""
    module = python_module_name(focal, root)
    package, stem = module.split(".")[:-1], module.split(".")[-1]
    names = (f"test_{stem}.py", f"{stem}_test.py")
    existing = _existing_python_test(focal, root, package, names)
    return existing or _new_python_test_path(focal, root, package, stem, test_dir), existing is not None, module


def _existing_python_test(focal: Path, root: Path, package: list[str], names) -> Path | None:
    candidates: list[Path] = []
    for tests in root_test_dirs(root):
        for depth in range(len(package) + 1):  # full package mirror first, flat last
            candidates += [tests.joinpath(*package[depth:], name) for name in names]
    for folder in (focal.parent, *(focal.parent / name for name in TEST_DIR_NAMES)):
        candidates += [folder / name for name in names]
    for candidate in candidates:
        if candidate.is_file() and candidate != focal:
            return candidate
    # Deeper layouts (`tests/unit/pkg/test_mod.py`): the same names anywhere under the test folders,
    # as long as the folders between are grouping folders followed by the end of the package path.
    best: tuple[int, int, Path] | None = None
    for tests in root_test_dirs(root):
        for found in project_files(tests, names=names):
            dirs = list(found.parent.relative_to(tests).parts)
            matched = common_suffix([tested_name(d) or d for d in dirs], package)
            if all(part.lower() in GROUPING_DIRS for part in dirs[: len(dirs) - matched]):
                key = (-matched, len(found.parts), found)
                best = min(best, key) if best else key
    return best[2] if best else None


def _new_python_test_path(focal: Path, root: Path, package: list[str], stem: str, test_dir: Path | None) -> Path:
    tests = test_dir or next(iter(root_test_dirs(root)), None)
    if tests is None:
        if (focal.parent / "tests").is_dir():
            tests, package = focal.parent / "tests", []
        elif _python_test_files(focal.parent):
            tests, package = focal.parent, []
        else:
            return root / "tests" / f"test_{stem}.py"
    return tests.joinpath(*_python_mirror(tests, focal, root, package), _python_test_name(tests, stem))


def _python_mirror(tests: Path, focal: Path, root: Path, package: list[str]) -> list[str]:
    """The package folders a new test file goes under, copying how the test folder already mirrors
    the packages: all of them (`tests/pkg/sub/`), all but the top package (`tests/sub/`), or none."""
    if not package or not tests.is_dir():
        return []
    if (tests / package[0]).is_dir():
        return package
    top = python_import_base(focal, root) / package[0]
    mirrored = [d for d in tests.iterdir() if d.is_dir() and (top / d.name).is_dir() and d.name != "__pycache__"]
    return package[1:] if mirrored else []


def _python_test_name(folder: Path, stem: str) -> str:
    """`mod_test.py` when the folder's tests are all named `*_test.py`, else `test_mod.py`."""
    styles = Counter("suffix" if f.stem.endswith("_test") else "prefix" for f in _python_test_files(folder))
    return f"{stem}_test.py" if styles["suffix"] > styles["prefix"] else f"test_{stem}.py"


def _python_test_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(f for f in folder.glob("*.py") if f.stem.startswith("test_") or f.stem.endswith("_test"))


def _unittest_class(test_path: Path) -> str | None:
    """The single `TestCase` class of an existing test file, if it has exactly one."""
    if not test_path.is_file():
        return None
    try:
        classes = {test.qualified_name.split(".")[0] for test in list_tests(SourceFile.from_path(test_path))
                   if test.framework == UNITTEST}
    except UnituneError:  # an unreadable test file is written to as if new
        return None
    return classes.pop() if len(classes) == 1 else None


# -- Java ----------------------------------------------------------------------------------------

def _locate_java(focal: Path, root: Path, test_dir: Path | None) -> TestLocation:
    path, existing, qualified = _java_test_path(focal, root, test_dir)
    usable_test_file(path, root)
    framework = detect_framework(path, root, JAVA)
    return TestLocation(path, existing, framework, qualified, path.stem)


def _java_test_path(focal: Path, root: Path, test_dir: Path | None) -> tuple[Path, bool, str]:
    """(test file, whether it exists, the focal class's qualified name)."""
    package = java_package_of(focal)
    cls = focal.stem
    qualified = f"{package}.{cls}" if package else cls
    package_dirs = package.split(".") if package else []
    names = [f"{cls}{suffix}.java" for suffix in JAVA_TEST_SUFFIXES] + [f"Test{cls}.java"]
    module = maven_module(focal, "main")
    if module is not None:
        test_roots = [module / "src" / "test" / "java"]
    else:
        source_root = _java_source_root(focal, package_dirs)
        # `src/com/x/Foo.java` -> `test/com/x/FooTest.java`, never outside the project.
        bases = [source_root.parent] if root in source_root.parents else []
        test_roots = [base / name for base in dict.fromkeys((*bases, root)) for name in TEST_DIR_NAMES]
    existing = None
    for folder in [r.joinpath(*package_dirs) for r in test_roots] + ([focal.parent] if module is None else []):
        existing = next((folder / n for n in names if (folder / n).is_file()), None)
        if existing:
            break
    if existing is None:  # a test tree that does not mirror the package folders
        existing = next((f for r in test_roots if r.is_dir() for f in project_files(r, names=names)
                         if java_package_of(f) == package), None)
    if existing is not None:
        path = existing
    elif test_dir is not None:
        path = test_dir.joinpath(*package_dirs, names[0])
    elif module is not None:
        path = test_roots[0].joinpath(*package_dirs, names[0])
    else:
        folder = next((r for r in test_roots if r.is_dir()), None)
        path = folder.joinpath(*package_dirs, names[0]) if folder else focal.parent / names[0]
    return path, existing is not None, qualified


def _java_source_root(focal: Path, package_dirs: list[str]) -> Path:
    """The folder the package path starts in (the file's folder when it does not mirror the package)."""
    folder = focal.parent
    if package_dirs and list(folder.parts[-len(package_dirs):]) == package_dirs:
        return Path(*folder.parts[: -len(package_dirs)])
    return folder
