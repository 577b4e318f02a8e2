"""What a Python test checks: its assertions, and the names bound to calls that they read.

Mining's third rule (`training.python_matching`) pairs a test that calls several of the project's
functions with the one whose result it checks; this module finds the checks and the bindings in a test
body's syntax tree.
"""

from __future__ import annotations

from unitune.source import SourceFile
from unitune.syntax_walk import descendants

#: Calls whose arguments a test checks (unittest's assertion methods, pytest's old `raises(E, f, ...)`).
_CHECK_CALL_PREFIXES = ("self.assert", "self.fail", "pytest.raises", "pytest.warns", "assert_")
#: `with` items whose body is checked for what it raises or warns.
_CHECK_CONTEXTS = ("raises(", "assertRaises", "assertWarns", "warns(")


def checks(file: SourceFile, body) -> list:
    """The nodes of a test body whose values it checks: `assert` statements, the argument lists of
    assertion calls, the bodies of `with pytest.raises(...)` and the like."""
    found = []
    for node in descendants(body, named_only=True):
        if node.type == "assert_statement":
            found.append(node)
        elif node.type == "call":
            function = node.child_by_field_name("function")
            if function is not None and file.node_text(function).startswith(_CHECK_CALL_PREFIXES):
                found.append(node.child_by_field_name("arguments"))
        elif node.type == "with_statement":
            clause = next((child for child in node.named_children if child.type == "with_clause"), None)
            if clause is not None and any(marker in file.node_text(clause) for marker in _CHECK_CONTEXTS):
                found.append(node.child_by_field_name("body"))
    return [node for node in found if node is not None]


def bound_calls(file: SourceFile, body) -> list[tuple[str, object]]:
    """(name, call) for each name a test binds to a call's result: `x = f(...)`, `x = await f(...)`,
    `with f(...) as x` (and `async with`)."""
    bound = []
    for node in descendants(body, named_only=True):
        if node.type == "assignment":
            left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        elif node.type == "as_pattern":
            left = node.child_by_field_name("alias")
            right = node.named_children[0] if node.named_children else None
        else:
            continue
        if right is not None and right.type == "await" and right.named_children:
            right = right.named_children[0]
        if left is None or right is None or right.type != "call":
            continue
        names = [left] if left.type == "identifier" else [n for n in descendants(left, named_only=True) if n.type == "identifier"]
        bound += [(file.node_text(name), right) for name in names]
    return bound
