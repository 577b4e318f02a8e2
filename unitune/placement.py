"""Where the tests of a file live, and which framework they use.

Owns the mapping between code and its test file in both directions (focal file -> test file for
writing generated tests; test file -> focal files for mining pairs), the importable name of the code
under test, the project root, and test-framework detection.

Conventions followed:
- Python: `tests/` or `test/` at the project root, flat (`tests/test_mod.py`) or mirroring the package
  (`tests/pkg/sub/test_mod.py`, or without the top package `tests/sub/test_mod.py`); `test_mod.py` or
  `mod_test.py` beside the module or in a `tests/` folder next to it; src layouts (`src/pkg/mod.py`).
- Java: Maven/Gradle (`<module>/src/main/java/<pkg>/Foo.java` -> `<module>/src/test/java/<pkg>/FooTest.java`,
  also `FooTests`, `FooIT`, `TestFoo`, `FooTestCase`); other layouts: beside the class or a
  `test/`/`tests/` folder mirroring the package.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from unitune.errors import UnituneError
from unitune.languages import JAVA, PYTHON, language_for_path
from unitune.source import SourceFile

from unitune.frameworks import FRAMEWORKS, JUNIT3, JUNIT4, JUNIT5, PYTEST, TESTNG, UNITTEST  # noqa: F401

PROJECT_MARKERS = (".git", "pyproject.toml", "setup.py", "setup.cfg", "pom.xml", "build.gradle", "build.gradle.kts")
TEST_DIR_NAMES = ("tests", "test")
_BUILD_FILES = ("pom.xml", "build.gradle", "build.gradle.kts", "setup.py", "pyproject.toml")
_ALWAYS_SKIPPED_DIRS = frozenset({"node_modules", "__pycache__", "site-packages", ".eggs"})
_BUILD_OUTPUT_DIRS = frozenset({"build", "dist", "target", "out"})  # skipped beside a build file only
# Folders that group tests without mirroring a package (`tests/unit/pkg/test_mod.py`).
_GROUPING_DIRS = frozenset({"unit", "units", "unittests", "unit_tests", "integration", "functional", "python", "py"})
_JAVA_TEST_SUFFIXES = ("Test", "Tests", "IT", "TestCase", "ITCase")
_SIBLING_SAMPLE = 50  # test files read when guessing a framework from the neighbours


@dataclass(frozen=True)
class TestLocation:
    """Where the tests of a focal file go."""

    __test__ = False  # a data class, not a pytest test class

    path: Path
    exists: bool
    framework: str  # one of FRAMEWORKS
    module_import: str | None  # Python: dotted module of the focal file; Java: fully qualified class
    test_class_name: str | None  # Java: the test class; Python unittest: the TestCase; pytest: None


def find_project_root(path: str | Path) -> Path:
    """The nearest folder at or above `path` holding a project marker (`.git`, `pyproject.toml`,
    `setup.py`, `setup.cfg`, `pom.xml`, `build.gradle`), else the folder of `path`."""
    path = Path(path).resolve()
    start = path if path.is_dir() else path.parent
    for folder in (start, *start.parents):
        if any((folder / marker).exists() for marker in PROJECT_MARKERS):
            return folder
    return start


def locate_test_file(focal_path: str | Path, project_root: str | Path | None = None,
                     *, test_dir: str | Path | None = None) -> TestLocation:
    """The test file of `focal_path`: the existing one, else where a new one goes (`test_dir`, the
    `test_dir` setting, overrides the folder of a new file)."""
    focal = Path(focal_path).resolve()
    root = Path(project_root).resolve() if project_root else find_project_root(focal)
    if test_dir is not None:
        test_dir = Path(test_dir) if Path(test_dir).is_absolute() else root / test_dir
    language = language_for_path(focal)
    if language == JAVA:
        return _locate_java(focal, root, test_dir)
    return _locate_python(focal, root, test_dir)


# -- Python --------------------------------------------------------------------------------------

def python_module_name(focal_path: str | Path, project_root: str | Path | None = None) -> str:
    """The dotted name `focal_path` is imported by: packages are walked up while `__init__.py`
    exists; under a src layout the path below `src/` is the name (namespace packages included); a
    module outside any package is named from the project root."""
    focal = Path(focal_path).resolve()
    root = Path(project_root).resolve() if project_root else find_project_root(focal)
    base = _python_import_base(focal, root)
    parts = list(focal.relative_to(base).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or focal.parent.name


def _python_import_base(focal: Path, root: Path) -> Path:
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


def _locate_python(focal: Path, root: Path, test_dir: Path | None) -> TestLocation:
    module = python_module_name(focal, root)
    package, stem = module.split(".")[:-1], module.split(".")[-1]
    names = (f"test_{stem}.py", f"{stem}_test.py")
    existing = _existing_python_test(focal, root, package, names)
    path = existing or _new_python_test_path(focal, root, package, stem, test_dir)
    framework = detect_framework(path, root, PYTHON)
    class_name = None
    if framework == UNITTEST:
        class_name = _unittest_class(path) or "Test" + "".join(p.capitalize() for p in stem.split("_"))
    return TestLocation(path, existing is not None, framework, module, class_name)


def _root_test_dirs(root: Path) -> list[Path]:
    return [root / name for name in TEST_DIR_NAMES if (root / name).is_dir()]


def _existing_python_test(focal: Path, root: Path, package: list[str], names) -> Path | None:
    candidates: list[Path] = []
    for tests in _root_test_dirs(root):
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
    for tests in _root_test_dirs(root):
        for found in _walk_files(tests, names):
            dirs = list(found.parent.relative_to(tests).parts)
            matched = _common_suffix([tested_name(d) or d for d in dirs], package)
            if all(part.lower() in _GROUPING_DIRS for part in dirs[: len(dirs) - matched]):
                key = (-matched, len(found.parts), found)
                best = min(best, key) if best else key
    return best[2] if best else None


def _new_python_test_path(focal: Path, root: Path, package: list[str], stem: str, test_dir: Path | None) -> Path:
    tests = test_dir or next(iter(_root_test_dirs(root)), None)
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
    top = _python_import_base(focal, root) / package[0]
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
    from unitune.listing import list_tests  # listing imports this module's framework names

    if not test_path.is_file():
        return None
    try:
        classes = {test.qualified_name.split(".")[0] for test in list_tests(SourceFile.from_path(test_path))
                   if test.framework == UNITTEST}
    except UnituneError:  # an unreadable test file is written to as if new
        return None
    return classes.pop() if len(classes) == 1 else None


# -- Java ----------------------------------------------------------------------------------------

_JAVA_PACKAGE_RE = re.compile(r"^\s*package\s+([\w.]+)\s*;", re.MULTILINE)
_JAVA_COMMENT_RE = re.compile(r"/\*.*?\*/|//[^\n]*", re.DOTALL)


def java_package_of(path: str | Path) -> str:
    """The package a Java file declares ("" for the default package or an unreadable file)."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    match = _JAVA_PACKAGE_RE.search(_JAVA_COMMENT_RE.sub("", text[:20000]))
    return match.group(1) if match else ""


def _maven_module(path: Path, kind: str) -> Path | None:
    """The module folder of a file under `<module>/src/<kind>/java/`."""
    parts = path.parts
    for index in range(len(parts) - 3, -1, -1):
        if parts[index:index + 3] == ("src", kind, "java"):
            return Path(*parts[:index])
    return None


def _locate_java(focal: Path, root: Path, test_dir: Path | None) -> TestLocation:
    package = java_package_of(focal)
    cls = focal.stem
    qualified = f"{package}.{cls}" if package else cls
    package_dirs = package.split(".") if package else []
    names = [f"{cls}{suffix}.java" for suffix in _JAVA_TEST_SUFFIXES] + [f"Test{cls}.java"]
    module = _maven_module(focal, "main")
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
        existing = next((f for r in test_roots if r.is_dir() for f in _walk_files(r, names)
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
    framework = detect_framework(path, root, JAVA)
    return TestLocation(path, existing is not None, framework, qualified, path.stem)


def _java_source_root(focal: Path, package_dirs: list[str]) -> Path:
    """The folder the package path starts in (the file's folder when it does not mirror the package)."""
    folder = focal.parent
    if package_dirs and list(folder.parts[-len(package_dirs):]) == package_dirs:
        return Path(*folder.parts[: -len(package_dirs)])
    return folder


# -- which files are tests -----------------------------------------------------------------------

_JAVA_TEST_NAME_RE = re.compile(r"^(Test[A-Z_]\w*|\w+(Test|Tests|TestCase|IT|ITCase))$")


def looks_like_test_file(path: str | Path) -> bool:
    """Whether the name or place of `path` makes it a test file, as runners pick them: pytest
    (`test_*.py`, `*_test.py`, plus `conftest.py`), unittest/Django (`test.py`, `tests.py`), Maven
    (`Test*`, `*Test`, `*Tests`, `*TestCase`, `*IT`, `*ITCase`, or anything under `src/test/`)."""
    path = Path(path)
    stem, suffix = path.stem, path.suffix.lower()
    if suffix in (".py", ".pyi"):
        return stem.startswith("test_") or stem.endswith("_test") or stem in ("test", "tests", "conftest")
    if suffix == ".java":
        return bool(_JAVA_TEST_NAME_RE.match(stem)) or _maven_module(path, "test") is not None
    return False


def _in_test_folder(path: Path, root: Path) -> bool:
    try:
        parts = path.relative_to(root).parts[:-1]
    except ValueError:
        parts = path.parts[:-1]
    return any(part in TEST_DIR_NAMES for part in parts)


# -- framework detection -------------------------------------------------------------------------

def detect_framework(test_path: str | Path, project_root: str | Path | None = None, language: str | None = None) -> str:
    """The framework of a test file (one of `FRAMEWORKS`): from the file's own imports and tests
    when it exists, else from the test files around it, else from the project's configuration
    (pytest settings; JUnit dependencies in `pom.xml`/`build.gradle`); pytest and JUnit 5 by default."""
    test_path = Path(test_path).resolve()
    root = Path(project_root).resolve() if project_root else find_project_root(test_path)
    language = language or language_for_path(test_path)
    found = _file_framework(test_path, language) if test_path.is_file() else None
    return found or _neighbour_framework(test_path, root, language) or _config_framework(root, language)


_JAVA_IMPORT_RE = re.compile(r"^\s*import\s+(?:static\s+)?([\w.]+(?:\.\*)?)\s*;", re.MULTILINE)


def java_import_framework(imports: Iterable[str]) -> str | None:
    """The test framework a Java file's imported names point to (JUNIT5, JUNIT4, TESTNG), or None."""
    imports = list(imports)
    if any(name.startswith("org.junit.jupiter.") for name in imports):
        return JUNIT5
    if any(name.startswith("org.testng.") for name in imports):
        return TESTNG
    if any(name.startswith(("org.junit.", "junit.framework.")) for name in imports):
        return JUNIT4
    return None


def _file_framework(path: Path, language: str) -> str | None:
    """The framework an existing test file is written for, or None when it does not tell."""
    if language == JAVA:
        try:
            text = _JAVA_COMMENT_RE.sub("", path.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return None
        found = java_import_framework(_JAVA_IMPORT_RE.findall(text))
        return found if found in FRAMEWORKS else None  # TestNG files give no answer unitune can use
    from unitune.listing import list_tests, python_imports  # listing imports this module's framework names

    try:
        file = SourceFile.from_path(path)
    except UnituneError:
        return None
    tests = list_tests(file)
    if tests:
        return UNITTEST if all(test.framework == UNITTEST for test in tests) else PYTEST
    imports = python_imports(file)
    if "pytest" in imports:
        return PYTEST
    if "unittest" in imports:
        return UNITTEST
    return None


def _neighbour_framework(test_path: Path, root: Path, language: str) -> str | None:
    """The most common framework of the test files beside `test_path`, else of its test tree."""
    suffix = ".java" if language == JAVA else ".py"
    folder = test_path.parent
    siblings = [f for f in sorted(folder.glob(f"*{suffix}")) if f != test_path and looks_like_test_file(f)] if folder.is_dir() else []
    found = _vote(siblings, language)
    if found:
        return found
    if language == JAVA:
        module = _maven_module(test_path, "test") or _maven_module(test_path, "main")
        trees = [module / "src" / "test" / "java"] if module is not None else _root_test_dirs(root)
    else:
        trees = _root_test_dirs(root)
    sample: list[Path] = []
    for tree in trees:
        for path in _walk_files(tree, suffixes=(suffix,)):
            if path != test_path and looks_like_test_file(path) and path.stem != "conftest":
                sample.append(path)
                if len(sample) >= _SIBLING_SAMPLE:
                    break
    return _vote(sample, language)


def _vote(paths: Sequence[Path], language: str) -> str | None:
    votes = Counter(f for f in (_file_framework(p, language) for p in paths[:_SIBLING_SAMPLE]) if f)
    return votes.most_common(1)[0][0] if votes else None


_JUNIT5_MARKERS = ("junit-jupiter", "org.junit.jupiter", "junit-bom", "useJUnitPlatform")
_JUNIT4_MARKERS = ("junit:junit", "<artifactId>junit</artifactId>")
_PYTEST_CONFIG = (("pytest.ini", ""), ("pyproject.toml", "[tool.pytest"), ("setup.cfg", "[tool:pytest]"),
                  ("tox.ini", "[pytest]"), ("conftest.py", ""))
_UNITTEST_COMMAND_RE = re.compile(r"-m\s+unittest\b|unittest\s+discover|\btest_suite\s*=")


def _config_framework(root: Path, language: str) -> str:
    if language == JAVA:
        # The module's build file first, then its parents' (a multi-module build declares
        # dependencies in the parent).
        for folder in (root, *root.parents[:4]):
            for name in ("pom.xml", "build.gradle", "build.gradle.kts"):
                text = _read(folder / name)
                if any(marker in text for marker in _JUNIT5_MARKERS):
                    return JUNIT5
                if any(marker in text for marker in _JUNIT4_MARKERS):
                    return JUNIT4
            if (folder / ".git").exists():
                break
        return JUNIT5
    for name, marker in _PYTEST_CONFIG:
        if (root / name).is_file() and marker in _read(root / name):
            return PYTEST
    for name in ("tox.ini", "setup.cfg", "pyproject.toml", "setup.py", "Makefile", "noxfile.py"):
        if _UNITTEST_COMMAND_RE.search(_read(root / name)):
            return UNITTEST
    return PYTEST


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
    except OSError:
        return ""


# -- test file -> focal files (mining) -----------------------------------------------------------

def focal_candidates_for_test(test_path: str | Path, project_root: str | Path | None = None,
                              *, files: Sequence[Path] | None = None) -> list[Path]:
    """The files `test_path` most likely tests, best first (empty when none is found).

    `tests/test_mod.py`, `tests/pkg/test_mod.py`, `mod_test.py` -> `mod.py` (or a package `mod/`),
    preferring one beside the test and then the one whose package path the test folders mirror;
    `FooTest.java` -> `Foo.java` of the same package, the same module's `src/main/java` first.
    `files` (from `project_files`) saves walking the project again for every test file."""
    test = Path(test_path).resolve()
    root = Path(project_root).resolve() if project_root else find_project_root(test)
    language = language_for_path(test)
    if files is None:
        files = project_files(root, language)
    code = [f for f in files if not looks_like_test_file(f) and not _in_test_folder(f, root) and f != test]
    if language == JAVA:
        return _java_focal_candidates(test, root, code)
    return _python_focal_candidates(test, root, code)


def project_files(root: str | Path, language: str) -> list[Path]:
    """Every source file of `language` in the project, skipping virtual environments, hidden folders,
    dependencies and build output."""
    suffixes = (".java",) if language == JAVA else (".py",)
    return list(_walk_files(Path(root).resolve(), suffixes=suffixes))


def _python_focal_candidates(test: Path, root: Path, code: list[Path]) -> list[Path]:
    stem = test.stem
    name = tested_name(stem)
    # `test_account_deposit.py` may test `account.py`: shorten from the end until something matches.
    words = name.split("_")
    stems = ["_".join(words[:n]) for n in range(len(words), 0, -1) if "_".join(words[:n]).strip("_")]
    anchor = next((p for p in test.parents if p.name in TEST_DIR_NAMES and (p == root or root in p.parents)), None)
    owner = anchor.parent if anchor else test.parent
    mirrored = [d for d in (test.parent.relative_to(anchor).parts if anchor else ()) if d.lower() not in _GROUPING_DIRS]
    for candidate_stem in stems:
        matches = [f for f in code if (f.stem == candidate_stem and f.name != "__init__.py")
                   or (f.name == "__init__.py" and f.parent.name == candidate_stem)]
        if matches:
            def rank(f: Path):
                beside = f.parent in (owner, test.parent)
                package = python_module_name(f, root).split(".")[:-1]
                return (not beside, -_common_suffix(package, mirrored), f.name == "__init__.py", len(f.parts), str(f))
            ranked = sorted(matches, key=rank)
            best = rank(ranked[0])[:2]
            if best != (True, 0):  # something beside the test or mirrored by its folders: drop the rest
                ranked = [f for f in ranked if rank(f)[:2] == best]
            return ranked
    return []


def _java_tested_classes(stem: str) -> list[str]:
    names = [stem[: -len(s)] for s in sorted(_JAVA_TEST_SUFFIXES, key=len, reverse=True) if stem.endswith(s) and len(stem) > len(s)]
    if re.match(r"^Test[A-Z_]", stem):
        names.append(stem[len("Test"):])
    return list(dict.fromkeys(names))


def _java_focal_candidates(test: Path, root: Path, code: list[Path]) -> list[Path]:
    package = java_package_of(test)
    package_dirs = tuple(package.split(".")) if package else ()
    module = _maven_module(test, "test")
    for cls in _java_tested_classes(test.stem):
        matches = [f for f in code if f.stem == cls]
        if not matches:
            continue

        def same_package(f: Path) -> bool:
            return f.parent.parts[-len(package_dirs):] == package_dirs if package_dirs else java_package_of(f) == ""

        def rank(f: Path):
            in_module = module is not None and _maven_module(f, "main") == module
            return (not same_package(f), not in_module, len(f.parts), str(f))
        ranked = sorted(matches, key=rank)
        if same_package(ranked[0]):
            ranked = [f for f in ranked if same_package(f)]
        return ranked
    return []


# -- helpers -------------------------------------------------------------------------------------

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


def _common_suffix(a: Sequence[str], b: Sequence[str]) -> int:
    count = 0
    while count < min(len(a), len(b)) and a[len(a) - 1 - count] == b[len(b) - 1 - count]:
        count += 1
    return count


def _walk_files(top: Path, names: Iterable[str] = (), suffixes: Iterable[str] = ()) -> Iterable[Path]:
    """Files under `top` with one of `names` or `suffixes`, in a stable order, skipping virtual
    environments, hidden folders, dependency folders and build output."""
    names, suffixes = frozenset(names), tuple(suffixes)
    for folder, dirs, files in os.walk(top):
        here = Path(folder)
        has_build_file = any(name in files for name in _BUILD_FILES)
        dirs[:] = sorted(
            d for d in dirs
            if not d.startswith(".") and d not in _ALWAYS_SKIPPED_DIRS and not d.endswith(".egg-info")
            and not (has_build_file and d in _BUILD_OUTPUT_DIRS)
            and not (here / d / "pyvenv.cfg").exists()
        )
        for name in sorted(files):
            if name in names or (suffixes and name.endswith(suffixes)):
                yield here / name
