"""Reading a unittest test method for its rewrite as a pytest function
(`unitune.training.unittest_to_pytest`): its definition in the syntax tree, calls on `self` and their
arguments, the lines a statement stands on, and the check a rewritten function must pass to be kept
(`is_standalone_function`).
"""

from __future__ import annotations

import warnings

from tree_sitter import Node

from unitune.languages import PYTHON
from unitune.source import SourceFile
from unitune.syntax_walk import descendants


def method_definition(source: SourceFile) -> Node | None:
    """The test's function definition: the file's only top-level statement; None for async tests."""
    statements = [n for n in source.tree.root_node.named_children if n.type != "comment"]
    if len(statements) != 1:
        return None
    node = statements[0]
    node = node.child_by_field_name("definition") if node.type == "decorated_definition" else node
    if node is None or node.type != "function_definition" or any(c.type == "async" for c in node.children):
        return None
    return node


def decorated_span(definition: Node) -> Node:
    """The definition with its decorators, if it has any."""
    parent = definition.parent
    return parent if parent is not None and parent.type == "decorated_definition" else definition


def takes_only_self(source: SourceFile, definition: Node) -> bool:
    """Whether the method's one parameter is `self`."""
    parameters = [p for p in definition.child_by_field_name("parameters").named_children if p.type != "comment"]
    return len(parameters) == 1 and parameters[0].type == "identifier" and source.node_text(parameters[0]) == "self"


def self_attribute(source: SourceFile, node: Node | None) -> str | None:
    """`assertEqual` for `self.assertEqual`, else None."""
    if node is None or node.type != "attribute":
        return None
    target = node.child_by_field_name("object")
    if target.type != "identifier" or source.node_text(target) != "self":
        return None
    return source.node_text(node.child_by_field_name("attribute"))


def self_method(source: SourceFile, call: Node | None) -> str | None:
    """`assertEqual` for a call `self.assertEqual(...)`, else None."""
    return self_attribute(source, call.child_by_field_name("function")) if call is not None and call.type == "call" else None


def is_field_name(node: Node) -> bool:
    """Whether an identifier names an attribute (`x.name`) or a keyword argument (`f(name=1)`)
    rather than a variable."""
    parent = node.parent
    return (parent.type == "attribute" and parent.child_by_field_name("attribute") == node) or (
        parent.type == "keyword_argument" and parent.child_by_field_name("name") == node)


def call_arguments(source: SourceFile, call: Node) -> tuple[list[Node], dict[str, Node]] | None:
    """(positional, keyword) arguments of a call; None when it splats or passes a bare generator."""
    arguments = call.child_by_field_name("arguments")
    if arguments is None or arguments.type != "argument_list":
        return None
    positional, keywords = [], {}
    for argument in arguments.named_children:
        if argument.type == "comment":
            continue
        if argument.type in ("list_splat", "dictionary_splat") or (keywords and argument.type != "keyword_argument"):
            return None
        if argument.type == "keyword_argument":
            keywords[source.node_text(argument.child_by_field_name("name"))] = argument.child_by_field_name("value")
        else:
            positional.append(argument)
    return positional, keywords


def line_bounds(source: SourceFile, node: Node) -> tuple[str, str, int]:
    """(text before `node` on its first line, text after it on its last line, end of that line
    including its line break)."""
    line_start = source.offset(node.start_point.row, 0)
    last = node.end_point.row
    line_end = source.offset(last, 0) + len(source.line_bytes(last))
    following = source.offset(last + 1, 0) if last + 1 < source.line_count else len(source.data)
    return source.bytes_text(line_start, node.start_byte), source.bytes_text(node.end_byte, line_end), following


# -- the rewritten function ------------------------------------------------------------------------

def is_standalone_function(text: str) -> bool:
    """A function that parses, compiles, and keeps nothing of the test class: no `self` but a
    nested function's own, no `super()`, `__class__` or private (class-mangled) names outside a
    nested class, no `yield` (pytest does not run generator tests), no string expecting a
    `<locals>` qualified name (the test class's name was part of it)."""
    parsed = SourceFile(text, PYTHON)
    definition = method_definition(parsed)
    if parsed.tree.root_node.has_error or definition is None:
        return False
    for node in descendants(definition):
        if node.type == "yield" and _enclosing_function(node) == definition:
            return False
        if node.type == "string_content" and "<locals>" in parsed.node_text(node):
            return False  # expects a qualified name with the test class in it
        if node.type != "identifier":
            continue
        name = parsed.node_text(node)
        if name == "self" and not is_field_name(node) and not _bound_self(parsed, node, definition):
            return False
        private = name.startswith("__") and not name.endswith("__")
        if (private or (name in ("super", "__class__") and not is_field_name(node))) and not _in_nested_class(node, definition):
            return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. `assert x is 1`: as legal as `assertIs(x, 1)` was
            compile(text, "<pytest variant>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _enclosing_function(node: Node) -> Node | None:
    node = node.parent
    while node is not None and node.type not in ("function_definition", "lambda"):
        node = node.parent
    return node


def _bound_self(source: SourceFile, node: Node, definition: Node) -> bool:
    """Whether a `self` inside the test is a parameter of a function nested in it."""
    scope = _enclosing_function(node)
    while scope is not None and scope != definition:
        parameters = scope.child_by_field_name("parameters")
        for parameter in parameters.named_children if parameters is not None else ():
            name = parameter if parameter.type == "identifier" else parameter.child_by_field_name("name")
            if name is None and parameter.named_children:
                name = parameter.named_children[0]
            if name is not None and source.node_text(name) == "self":
                return True
        scope = _enclosing_function(scope)
    return False


def _in_nested_class(node: Node, definition: Node) -> bool:
    node = node.parent
    while node is not None and node != definition:
        if node.type == "class_definition":
            return True
        node = node.parent
    return False
