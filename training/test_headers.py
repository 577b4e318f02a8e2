"""The existing test file a mined prompt is built from (`existing_test_source` of
`unitune.prompt.training_example`).

At inference the prompt shows the header of the test file the new test goes into: its imports,
fixtures, and for a test in a class the class header, attributes and set-up. A mined test's prompt
shows the same from its own test file, taken without its tests (`unitune.test_skeleton`): what a header shows does not
depend on the tests, and the tests are the bulk of a test file.

`header_source` goes one step further for Python, because every prompt re-parses this text and big
test files would dominate mining time: it also leaves out the top-level statements a header never
reads (helper functions, other classes, module code), keeping imports, `if`/`try` blocks (which may
hold imports), decorated definitions (fixtures) and the test's own class. Files with syntax errors are
kept whole, since taking statements out could change how the rest parses.
"""

from __future__ import annotations

from tree_sitter import Node

from unitune.languages import PYTHON
from unitune.listing import TestFunction
from unitune.source import SourceFile
from unitune.test_skeleton import skeleton_of, without_tests

# Top-level Python statements a test-file header may read from.
_KEPT_STATEMENTS = frozenset({
    "import_statement", "import_from_statement", "future_import_statement", "if_statement", "try_statement",
    "decorated_definition",
})


def header_source(file: SourceFile, tests: list[TestFunction], test_class: str | None) -> str:
    """What the prompts of the tests in `test_class` (None: module-level tests) of `file` are built
    from: the skeleton of the file, without the top-level statements no header reads."""
    if file.language != PYTHON or file.tree.root_node.has_error:
        return skeleton_of(file, tests)
    return without_tests(file, tests, _unread_statements(file, test_class))


def _unread_statements(file: SourceFile, test_class: str | None) -> list[tuple[int, int]]:
    """Rows (0-based, inclusive) of the top-level statements a header of `test_class` never reads."""
    statements = file.tree.root_node.named_children
    unread = []
    for index, node in enumerate(statements):
        if node.type in _KEPT_STATEMENTS or node.type == "comment" or _class_name(file, node) == test_class:
            continue
        # Only statements on lines of their own: in `x = 1; import y` the import must stay.
        before = statements[index - 1].end_point.row if index else -1
        after = statements[index + 1].start_point.row if index + 1 < len(statements) else None
        if before < node.start_point.row and (after is None or after > node.end_point.row):
            unread.append((node.start_point.row, node.end_point.row))
    return unread


def _class_name(file: SourceFile, node: Node) -> str | None:
    if node.type != "class_definition":
        return None
    name = node.child_by_field_name("name")
    return file.node_text(name) if name is not None else None

