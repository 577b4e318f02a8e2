"""Which files a test file tests, best first: the way back from a test to its focal file that mining
pairs tests by (the way there, from a focal file to its test file, is `unitune.placement`).

- Python: `tests/test_mod.py`, `tests/pkg/test_mod.py`, `mod_test.py` -> `mod.py` (or a package `mod/`),
  preferring one beside the test and then the one whose package path the test folders mirror; a long
  name is shortened from the end until a module matches (`test_account_deposit.py` -> `account.py`).
- Java: `FooTest.java` (also `FooTests`, `FooIT`, `FooTestCase`, `FooITCase`, `TestFoo`) -> `Foo.java`
  of the same package, the same module's `src/main/java` first.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from unitune.languages import JAVA, language_for_path
from unitune.project_layout import (
    GROUPING_DIRS, JAVA_TEST_SUFFIXES, TEST_DIR_NAMES, common_suffix, find_project_root, java_package_of,
    looks_like_test_file, maven_module, python_module_name, tested_name,
)
from unitune.project_walk import project_files


def focal_candidates_for_test(test_path: str | Path, project_root: str | Path | None = None,
                              *, files: Sequence[Path] | None = None) -> list[Path]:
    """The files `test_path` most likely tests, best first (empty when none is found).

    `files` (the project's source files, `unitune.project_walk.project_files`) saves walking the
    project again for every test file."""
    test = Path(test_path).resolve()
    root = Path(project_root).resolve() if project_root else find_project_root(test)
    language = language_for_path(test)
    if files is None:
        files = project_files(root, suffixes=(".java",) if language == JAVA else (".py",))
    code = [f for f in files if not looks_like_test_file(f) and not _in_test_folder(f, root) and f != test]
    if language == JAVA:
        return _java_focal_candidates(test, root, code)
    return _python_focal_candidates(test, root, code)


def _in_test_folder(path: Path, root: Path) -> bool:
    try:
        parts = path.relative_to(root).parts[:-1]
    except ValueError:
        parts = path.parts[:-1]
    return any(part in TEST_DIR_NAMES for part in parts)


def _python_focal_candidates(test: Path, root: Path, code: list[Path]) -> list[Path]:
    stem = test.stem
    name = tested_name(stem)
    # `test_account_deposit.py` may test `account.py`: shorten from the end until something matches.
    words = name.split("_")
    stems = ["_".join(words[:n]) for n in range(len(words), 0, -1) if "_".join(words[:n]).strip("_")]
    anchor = next((p for p in test.parents if p.name in TEST_DIR_NAMES and (p == root or root in p.parents)), None)
    owner = anchor.parent if anchor else test.parent
    mirrored = [d for d in (test.parent.relative_to(anchor).parts if anchor else ()) if d.lower() not in GROUPING_DIRS]
    for candidate_stem in stems:
        matches = [f for f in code if (f.stem == candidate_stem and f.name != "__init__.py")
                   or (f.name == "__init__.py" and f.parent.name == candidate_stem)]
        if matches:
            def rank(f: Path):
                beside = f.parent in (owner, test.parent)
                package = python_module_name(f, root).split(".")[:-1]
                return (not beside, -common_suffix(package, mirrored), f.name == "__init__.py", len(f.parts), str(f))
            ranked = sorted(matches, key=rank)
            best = rank(ranked[0])[:2]
            if best != (True, 0):  # something beside the test or mirrored by its folders: drop the rest
                ranked = [f for f in ranked if rank(f)[:2] == best]
            return ranked
    return []


def _java_tested_classes(stem: str) -> list[str]:
    names = [stem[: -len(s)] for s in sorted(JAVA_TEST_SUFFIXES, key=len, reverse=True) if stem.endswith(s) and len(stem) > len(s)]
    if re.match(r"^Test[A-Z_]", stem):
        names.append(stem[len("Test"):])
    return list(dict.fromkeys(names))


def _java_focal_candidates(test: Path, root: Path, code: list[Path]) -> list[Path]:
    package = java_package_of(test)
    package_dirs = tuple(package.split(".")) if package else ()
    module = maven_module(test, "test")
    for cls in _java_tested_classes(test.stem):
        matches = [f for f in code if f.stem == cls]
        if not matches:
            continue

        def same_package(f: Path) -> bool:
            return f.parent.parts[-len(package_dirs):] == package_dirs if package_dirs else java_package_of(f) == ""

        def rank(f: Path):
            in_module = module is not None and maven_module(f, "main") == module
            return (not same_package(f), not in_module, len(f.parts), str(f))
        ranked = sorted(matches, key=rank)
        if same_package(ranked[0]):
            ranked = [f for f in ranked if same_package(f)]
        return ranked
    return []
