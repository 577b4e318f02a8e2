"""Test frameworks: the names unitune uses for them, which language each belongs to, and which one
a test file is written for (`detect_framework`).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

from unitune.errors import BadSettingError, UnituneError
from unitune.languages import JAVA, PYTHON, language_for_path
from unitune.project_layout import (
    JAVA_COMMENT_RE, find_project_root, looks_like_test_file, maven_module, root_test_dirs,
)
from unitune.project_walk import project_files
from unitune.source import SourceFile

PYTEST = "pytest"
UNITTEST = "unittest"
JUNIT5 = "junit5"
JUNIT4 = "junit4"
#: The frameworks unitune writes tests for (the `framework` setting).
FRAMEWORKS: tuple[str, ...] = (PYTEST, UNITTEST, JUNIT5, JUNIT4)
FRAMEWORKS_BY_LANGUAGE: dict[str, tuple[str, ...]] = {PYTHON: (PYTEST, UNITTEST), JAVA: (JUNIT5, JUNIT4)}
DEFAULT_FRAMEWORK: dict[str, str] = {PYTHON: PYTEST, JAVA: JUNIT5}
# Styles of existing tests that listing reports but unitune does not write: JUnit 3 (`TestCase`
# subclasses, run by JUnit 4) and TestNG.
JUNIT3 = "junit3"
TESTNG = "testng"


def parse_framework(text: str, language: str) -> str:
    """The test framework named by `text` for `language`, or `BadSettingError`."""
    framework = str(text).strip().lower()
    allowed = FRAMEWORKS_BY_LANGUAGE.get(language, ())
    if framework not in allowed:
        raise BadSettingError(f"framework {text!r} is not one of: {', '.join(allowed)} (for {language})")
    return framework


# -- detection -----------------------------------------------------------------------------------

_SIBLING_SAMPLE = 50  # test files read when guessing a framework from the neighbours


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
            text = JAVA_COMMENT_RE.sub("", path.read_text(encoding="utf-8", errors="replace"))
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
        module = maven_module(test_path, "test") or maven_module(test_path, "main")
        trees = [module / "src" / "test" / "java"] if module is not None else root_test_dirs(root)
    else:
        trees = root_test_dirs(root)
    sample: list[Path] = []
    for tree in trees:
        for path in project_files(tree, suffixes=(suffix,)):
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
