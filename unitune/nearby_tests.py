"""The project's existing tests nearest to a focal function, which the prompt's project block shows as
an example of the project's fixtures, helpers and style (`unitune.project_context`).

Nearest, in this order: the tests that call the focal function (or, less near, use its class) in the
test file placement chooses for the focal file (`unitune.placement.locate_test_file`); then such tests
in other test files of that folder; when no test calls it, the test whose name is most like the name a
new test would get. Ties go to the shorter test, then to file and line order, so the choice is the
same every time. A test is shown whole, and only when it has at most `MAX_EXAMPLE_LINES` lines.

`hidden` tests are never shown, nor a test with the same code under another name: in training, the
developer test that is the target, which the model would otherwise learn to copy.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

from tree_sitter import Node

from unitune.code_spans import reindent_span
from unitune.focal import CONSTRUCTOR, Function
from unitune.languages import EXTENSIONS, JAVA
from unitune.listing import TestFunction, list_tests
from unitune.project_code import (
    MAX_EXAMPLE_LINES, MAX_EXAMPLE_TESTS, MAX_EXAMPLES_CHARS, ExampleTest, read_project_file, relative_label,
    same_test_code, shape_of_test,
)
from unitune.project_layout import looks_like_test_file
from unitune.project_walk import project_files
from unitune.source import SourceFile
from unitune.syntax_walk import descendants
from unitune.test_names import name_for_test

#: Test files read besides the one placement chooses: a folder of hundreds stays cheap.
MAX_TEST_FILES = 50
# How near a test is, nearest first.
_CALLS_IN_PLACED_FILE, _USES_CLASS_IN_PLACED_FILE, _CALLS_IN_FOLDER, _USES_CLASS_IN_FOLDER, _NAMED_ALIKE = range(5)
# What a test does with the focal function.
_NOTHING, _USES_CLASS, _CALLS = range(3)


@dataclass(frozen=True)
class _Listed:
    """A test of a test file, with what choosing examples reads of it."""

    test: TestFunction
    text: str  # the test's source
    shape: str  # its code under any name (`project_code.shape_of_test`)


@dataclass(frozen=True)
class _Candidate:
    tier: int
    label: str  # the file, relative to the project root
    file: SourceFile
    listed: _Listed

    def key(self, wanted: str) -> tuple:
        test = self.listed.test
        similarity = round(SequenceMatcher(None, _bare(test.name), wanted).ratio(), 4)
        return self.tier, -similarity, test.end_line - test.start_line, self.label, test.start_line

    def example(self) -> ExampleTest:
        test = self.listed.test
        code = reindent_span(self.file, self.file.tree.root_node, test.start_byte, test.end_byte, "")
        return ExampleTest(self.label, test.qualified_name, code.rstrip() + "\n")


def nearest_tests(function: Function, root: Path, placed: Path, placed_text: str | None = None,
                  hidden: Iterable[str] = ()) -> list[ExampleTest]:
    """One or two existing tests nearest to `function`, whose tests go to `placed` (that file's
    unsaved text in an editor: `placed_text`)."""
    hidden_shapes = {shape_of_test(code) for code in hidden if code and code.strip()}
    candidates: list[_Candidate] = []
    for path, file, listed, in_placed in _test_files(function.language, Path(root), placed, placed_text):
        label = relative_label(path, root)
        for entry in listed:
            if entry.shape not in hidden_shapes:
                candidates.append(_Candidate(_tier(_relation(file, entry, function), in_placed), label, file, entry))
    # Names are compared (the slow part) only among the tests that exercise the focal code, or, when
    # none does, among all.
    related = [candidate for candidate in candidates if candidate.tier != _NAMED_ALIKE]
    chosen: list[ExampleTest] = []
    for candidate in _ranked(related or candidates, _bare(name_for_test(function))):
        if len(chosen) == MAX_EXAMPLE_TESTS or (chosen and candidate.tier == _NAMED_ALIKE):
            break  # a second example only when it, too, exercises the focal code
        example = candidate.example()
        if any(same_test_code(example.code, other.code) for other in chosen):
            continue
        lines = sum(len(other.code.splitlines()) for other in chosen) + len(example.code.splitlines())
        if sum(len(other.code) for other in chosen) + len(example.code) <= MAX_EXAMPLES_CHARS \
                and lines <= MAX_EXAMPLE_LINES:
            chosen.append(example)
    return chosen


def _ranked(candidates: list[_Candidate], wanted: str):
    """`candidates` nearest first, tier by tier: the names of a tier are compared only when the
    choice reaches it."""
    for tier in sorted({candidate.tier for candidate in candidates}):
        yield from sorted((c for c in candidates if c.tier == tier), key=lambda candidate: candidate.key(wanted))


def _tier(relation: int, placed: bool) -> int:
    if relation == _CALLS:
        return _CALLS_IN_PLACED_FILE if placed else _CALLS_IN_FOLDER
    if relation == _USES_CLASS:
        return _USES_CLASS_IN_PLACED_FILE if placed else _USES_CLASS_IN_FOLDER
    return _NAMED_ALIKE


def _bare(name: str) -> str:
    """A test's name without the words every test name has, for comparing names."""
    lowered = name.lower()
    for prefix in ("test_", "test"):
        if lowered.startswith(prefix):
            lowered = lowered[len(prefix):]
            break
    return lowered.removesuffix("_test").replace("_", "")


# -- which files -----------------------------------------------------------------------------------

def _test_files(language: str, root: Path, placed: Path, placed_text: str | None):
    """(path, parsed file, its tests, whether it is the placed file): the placed test file, then the
    other test files of its folder; when neither exists yet, those of the nearest folder above that
    has any."""
    found = []
    if placed_text is not None and placed_text.strip():
        file = SourceFile(placed_text, language, placed)
        found.append((placed, file, _listed(file), True))
    else:
        indexed = _indexed(placed)
        if indexed is not None:
            found.append((placed, *indexed, True))
    suffixes = EXTENSIONS[language]
    folder = placed.parent
    siblings = _sibling_tests(folder, placed, suffixes)
    if not found and not siblings:
        root = root.resolve()
        while not folder.is_dir() and folder != root and root in folder.parents:
            folder = folder.parent
        if folder.is_dir() and (folder == root or root in folder.parents):
            siblings = sorted(path for path in project_files(folder, suffixes=suffixes)
                              if looks_like_test_file(path) and path != placed)[:MAX_TEST_FILES]
    for path in siblings:
        indexed = _indexed(path)
        if indexed is not None:
            found.append((path, *indexed, False))
    return found


def _sibling_tests(folder: Path, placed: Path, suffixes: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        return []
    paths = (path for path in folder.iterdir() if path.suffix in suffixes and path != placed and path.is_file())
    return sorted(path for path in paths if looks_like_test_file(path))[:MAX_TEST_FILES]


def _indexed(path: Path) -> tuple[SourceFile, tuple[_Listed, ...]] | None:
    """The parsed test file at `path` and its tests short enough to show; cached while the file is
    unchanged (mining asks for the same folder's files for every pair)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return _indexed_version(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=256)
def _indexed_version(path: str, mtime_ns: int, size: int) -> tuple[SourceFile, tuple[_Listed, ...]] | None:
    file = read_project_file(Path(path))
    return (file, _listed(file)) if file is not None else None


def _listed(file: SourceFile) -> tuple[_Listed, ...]:
    found = []
    for test in list_tests(file):
        if test.end_line - test.start_line + 1 <= MAX_EXAMPLE_LINES:
            text = test.source(file)
            found.append(_Listed(test, text, shape_of_test(text)))
    return tuple(found)


# -- what a test does with the focal function ------------------------------------------------------

def _relation(file: SourceFile, listed: _Listed, function: Function) -> int:
    """Whether a test calls `function` (a constructor: creates its class), only uses its class, or neither."""
    node = listed.test.function.node
    class_name = function.class_path[-1] if function.class_path else None
    if function.name not in listed.text and (class_name is None or class_name not in listed.text):
        return _NOTHING  # most tests of a folder: no need to walk their trees
    if file.language == JAVA:
        return _java_relation(file, node, function, class_name)
    calls_class_for_init = function.name == "__init__"
    related = _NOTHING
    for child in descendants(node, named_only=True):
        if child.type == "call":
            callee = child.child_by_field_name("function")
            name = _last_name(file, callee)
            if name == function.name or (calls_class_for_init and name == class_name):
                return _CALLS
        elif child.type == "identifier" and _names_focal(file, child, function, class_name):
            related = _USES_CLASS
    return related


def _names_focal(file: SourceFile, identifier: Node, function: Function, class_name: str | None) -> bool:
    """Whether an identifier names the focal method's class, or the focal function itself (not an
    attribute of that name of something else: `location.test_class_name`)."""
    text = file.node_text(identifier)
    if class_name is not None:
        return text == class_name
    parent = identifier.parent
    return text == function.name and not (parent is not None and parent.type == "attribute"
                                           and parent.child_by_field_name("attribute") == identifier)


def _java_relation(file: SourceFile, node: Node, function: Function, class_name: str | None) -> int:
    related = _NOTHING
    for child in descendants(node, named_only=True):
        if child.type == "method_invocation" and function.kind != CONSTRUCTOR:
            if file.node_text(child.child_by_field_name("name")) == function.name:
                return _CALLS
        elif child.type == "object_creation_expression" and function.kind == CONSTRUCTOR:
            created = child.child_by_field_name("type")
            if created is not None and file.node_text(created).split("<", 1)[0].rsplit(".", 1)[-1] == class_name:
                return _CALLS
        elif child.type in ("type_identifier", "identifier") and file.node_text(child) == class_name:
            related = _USES_CLASS
    return related


def _last_name(file: SourceFile, callee: Node | None) -> str | None:
    if callee is None:
        return None
    if callee.type == "attribute":
        return file.node_text(callee.child_by_field_name("attribute"))
    return file.node_text(callee) if callee.type == "identifier" else None
