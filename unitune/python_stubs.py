"""Python definitions as stubs for the prompt's project block: a function as its decorators and `def`
line with its docstring's first paragraph; a class as its decorators and header, its docstring's first
paragraph, its public fields, the `__init__` signature and its public methods (those the focal function
calls first), each with its docstring's first sentence, within `MAX_SYMBOL_CHARS` (a focal method's own
class: `MAX_OWN_CLASS_CHARS`).
"""

from __future__ import annotations

from collections import Counter

from tree_sitter import Node

from unitune.code_spans import definition_header, flatten_span
from unitune.context import INDENT
from unitune.project_code import (
    MAX_CLASS_FIELDS, MAX_CLASS_METHODS, MAX_OWN_CLASS_CHARS, MAX_SYMBOL_CHARS, first_paragraph, first_sentence,
)
from unitune.source import SourceFile

_SECONDARY_DECORATORS = (".setter", ".deleter", "overload")
_MORE = INDENT + "# ..."  # the last line of a class some of whose API did not fit
# What of a class's API is kept first when not all of it fits.
_INIT, _CALLED, _ALTERNATIVE_CONSTRUCTOR, _FIELD, _NAMED_ALIKE, _OTHER = range(6)
#: A field's value longer than this is shown as `...`.
_MAX_FIELD_CHARS = 80
#: Special methods a test does not call: not worth a line of a class's API.
_PLUMBING = frozenset({
    "__post_init__", "__repr__", "__hash__", "__del__", "__init_subclass__", "__getattr__",
    "__getattribute__", "__setattr__", "__delattr__", "__getstate__", "__setstate__", "__reduce__",
    "__reduce_ex__", "__class_getitem__", "__format__", "__sizeof__", "__dir__", "__copy__", "__deepcopy__",
})


def definition_name(file: SourceFile, definition: Node) -> str:
    """The name a `def` or `class` defines."""
    return file.node_text(definition.child_by_field_name("name"))


def is_secondary(file: SourceFile, definition: Node) -> bool:
    """A property's setter or deleter, or an `@overload` stub: not the definition to show."""
    parent = definition.parent
    if parent is None or parent.type != "decorated_definition":
        return False
    return any(file.node_text(d).split("(", 1)[0].endswith(_SECONDARY_DECORATORS)
               for d in parent.named_children if d.type == "decorator")


def python_stub(file: SourceFile, node: Node, called: Counter, skip: int | None = None, focal_name: str = "") -> str:
    """A function's or class's stub. A class lists first the methods in `called` (how often the focal
    function calls each name), then its alternative constructors (`@classmethod`s), its fields, the
    methods named like `focal_name` (`bump_build` for `bump_prerelease`), the rest; never the method
    that starts at byte `skip` (the focal one)."""
    if node.type == "class_definition":
        return _class_stub(file, node, called, skip, set(focal_name.lower().split("_")) - {""})
    return _function_stub(file, node, "", first_paragraph)


def _function_stub(file: SourceFile, node: Node, indent: str, summary) -> str:
    lines = [indent + line for line in definition_header(file, node).split("\n")]
    doc = docstring(file, node)
    text = summary(doc) if doc else ""
    if text:
        return "\n".join(lines + [indent + INDENT + _quoted(text)])
    lines[-1] += " ..."
    return "\n".join(lines)


def _class_stub(file: SourceFile, node: Node, called: Counter, skip: int | None, words: set[str]) -> str:
    """The class's header, docstring and as much of its public API as fits, in `python_stub`'s order
    of preference, shown in source order."""
    head = definition_header(file, node).split("\n")
    doc = docstring(file, node)
    if doc and first_paragraph(doc):
        head.append(INDENT + _quoted(first_paragraph(doc)))
    ranked: list[tuple[tuple, int, str]] = []  # (rank, position, text)
    fields = methods = 0
    body = node.child_by_field_name("body")
    for child in body.named_children if body is not None else []:
        definition = child.child_by_field_name("definition") if child.type == "decorated_definition" else child
        field = _field(file, child) if child.type == "expression_statement" else ""
        if field and fields < MAX_CLASS_FIELDS:
            fields += 1
            ranked.append(((_FIELD,), child.start_byte, INDENT + field))
        if definition is None or definition.type != "function_definition" or definition.start_byte == skip \
                or is_secondary(file, definition):
            continue
        name = definition_name(file, definition)
        public = not name.startswith("_") or (name.startswith("__") and name.endswith("__") and name not in _PLUMBING)
        if name == "__init__" or public:
            rank = _method_rank(file, definition, name, called, words)
            ranked.append((rank, child.start_byte, _function_stub(file, definition, INDENT, first_sentence)))
    # The focal method's own class is what the test works with most: it gets more room.
    limit = MAX_OWN_CLASS_CHARS if skip is not None else MAX_SYMBOL_CHARS
    kept, size, left_out = [], len("\n".join(head)), False
    for rank, position, text in sorted(ranked):
        if rank[0] != _FIELD and methods == MAX_CLASS_METHODS or size + len(text) + 1 > limit - len(_MORE):
            left_out = True
            continue
        methods += rank[0] != _FIELD
        kept.append((position, text))
        size += len(text) + 1
    lines = head + [text for _, text in sorted(kept)] + ([_MORE] if left_out else [])
    return "\n".join(lines) if len(lines) > 1 else lines[0] + " ..."


def _method_rank(file: SourceFile, definition: Node, name: str, called: Counter, words: set[str]) -> tuple:
    if name == "__init__":
        return (_INIT,)
    if called[name]:
        return _CALLED, -called[name]
    parent = definition.parent
    decorators = parent.named_children if parent is not None and parent.type == "decorated_definition" else []
    if any(file.node_text(d).strip() == "@classmethod" for d in decorators):
        return (_ALTERNATIVE_CONSTRUCTOR,)
    if words & set(name.lower().split("_")):
        return (_NAMED_ALIKE,)
    return _OTHER, name.startswith("__")


def _field(file: SourceFile, statement: Node) -> str:
    """A class-level assignment or annotation on one line (a long value as `...`), else ""."""
    if statement.named_child_count != 1 or statement.named_children[0].type != "assignment":
        return ""
    assignment = statement.named_children[0]
    left = assignment.child_by_field_name("left")
    if left is None or left.type != "identifier" or file.node_text(left).startswith("_"):
        return ""  # a private attribute (or `__test__`, `__slots__`) is no part of the API
    text = flatten_span(file, statement, statement.start_byte, statement.end_byte)
    if len(text) <= _MAX_FIELD_CHARS:
        return text
    typed = assignment.child_by_field_name("type")
    head = file.node_text(left) + (": " + flatten_span(file, typed, typed.start_byte, typed.end_byte) if typed else "")
    return head + " = ..." if len(head) <= _MAX_FIELD_CHARS else ""


def docstring(file: SourceFile, definition: Node) -> str:
    """The source text inside a function's or class's docstring quotes, or ""."""
    body = definition.child_by_field_name("body")
    first = body.named_children[0] if body is not None and body.named_children else None
    if first is None or first.type != "expression_statement" or first.named_child_count != 1:
        return ""
    string = first.named_children[0]
    if string.type != "string":
        return ""
    start = next((c for c in string.children if c.type == "string_start"), None)
    end = next((c for c in string.children if c.type == "string_end"), None)
    if start is None or end is None:
        return ""
    return file.bytes_text(start.end_byte, end.start_byte)


def _quoted(text: str) -> str:
    text = text.replace('"""', '\\"\\"\\"')
    return f'"""{text}{" " if text.endswith(chr(34)) else ""}"""'
