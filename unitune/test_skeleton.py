"""A test file with some of its tests taken out, as a person would leave it.

Mining builds a pair's prompt from its test file without the tests (`training.test_headers`), and the
evaluation judges a held-out function in a copy of the project whose test files lose the tests of the
held-out split (`evaluation.held_out`). Both read this text as a user's file: a test is removed with
the blank lines that separated it from the next one, and a Python class whose every statement was a
removed test keeps one `pass`, so that it still parses. (An earlier version left a `pass` for every
test; the prompts then showed classes of a dozen `pass` lines, which no project has.)
"""

from __future__ import annotations

from unitune.languages import PYTHON
from unitune.listing import TestFunction
from unitune.source import SourceFile


def skeleton_of(file: SourceFile, tests: list[TestFunction]) -> str:
    """The text of `file` without `tests`."""
    return without_tests(file, tests)


def without_tests(file: SourceFile, tests: list[TestFunction], dropped: list[tuple[int, int]] = ()) -> str:
    """`file` without the rows in `dropped` (0-based, inclusive) and with each test outside them taken out."""
    lines = file.text.splitlines(keepends=True)
    gone = {row for first, last in dropped for row in range(first, last + 1)}
    removed = [(test.start_line - 1, test.end_line - 1) for test in tests if test.start_line - 1 not in gone]
    inserted = _emptied_classes(lines, tests, removed) if file.language == PYTHON else {}
    for first, last in removed:
        gone.update(range(first, last + 1))
        # the blank lines that set a test apart go with it: those before it, or when there are none (the
        # first member of a class), those after it
        before = first
        while before > 0 and not lines[before - 1].strip():
            before -= 1
        after = last
        if before == first:
            while after + 1 < len(lines) and not lines[after + 1].strip():
                after += 1
        gone.update(range(before, first))
        gone.update(range(last + 1, after + 1))
    return "".join(inserted.get(row, "") + ("" if row in gone else line) for row, line in enumerate(lines))


def _emptied_classes(lines: list[str], tests: list[TestFunction], removed: list[tuple[int, int]]) -> dict[int, str]:
    """{first row of a class's first removed test: `pass` at its indentation} for each class whose body
    has no statement left once the tests are removed (comments are not statements)."""
    gone = set(removed)
    needs: dict[int, str] = {}
    for test in tests:
        block = test.node.parent
        while block is not None and block.type == "decorated_definition":
            block = block.parent
        if block is None or block.type != "block" or block.parent is None or block.parent.type != "class_definition":
            continue
        rows = [(child.start_point.row, child.end_point.row) for child in block.named_children if child.type != "comment"]
        if rows and all(any(first <= start and end <= last for first, last in gone) for start, end in rows):
            first = min(start for start, _ in rows)
            needs[first] = lines[first][: len(lines[first]) - len(lines[first].lstrip())] + "pass\n"
    return needs
