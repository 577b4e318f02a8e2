"""The focal context: the code around a focal method that a prompt shows the model.

Levels follow methods2test, each adding to the one before:

- `fm`           the focal method only;
- `fm+fc`        + the module's imports and the focal class header (every enclosing class of a nested
                 class, with growing indentation); Java enums also show their constants and records
                 their components here, since both belong to the type's header;
- `fm+fc+c`      + constructor signatures (Python `__init__`; a Java compact constructor is shown as
                 the canonical constructor it declares);
- `fm+fc+c+m`    + signatures of the other methods of the innermost class (for a top-level Python
                 function: of the other top-level functions);
- `fm+fc+c+m+f`  + fields: Python class attributes and the first `self.x = ...` of each attribute in
                 `__init__` (shown as the body of the `__init__` signature), module constants for a
                 top-level function; Java field and constant declarations.

Python is laid out as a Python module would be (imports, class attributes, `__init__`, methods in
source order); Java mirrors the study's prompts (focal method, constructors, methods, fields). The
output is re-indented with four spaces per class level; long values are elided with `...` and the
number of signatures is capped, so a huge class cannot blow up a prompt. The pieces of code themselves
(flattened spans, signatures, imports) come from `unitune.code_spans`.
"""

from __future__ import annotations

import re
from typing import Any

from tree_sitter import Node

from unitune.code_spans import (
    COMMENTS, definition_header, flatten_span, java_signature, module_imports, python_signature, reindent_span, signature,
)
from unitune.errors import BadSettingError
from unitune.focal import FUNCTION, Function, functions
from unitune.languages import JAVA, PYTHON
from unitune.source import SourceFile
from unitune.syntax_walk import descendants

FM = "fm"
FM_FC = "fm+fc"
FM_FC_C = "fm+fc+c"
FM_FC_C_M = "fm+fc+c+m"
FM_FC_C_M_F = "fm+fc+c+m+f"
CONTEXT_LEVELS: tuple[str, ...] = (FM, FM_FC, FM_FC_C, FM_FC_C_M, FM_FC_C_M_F)
DEFAULT_CONTEXT = FM_FC_C_M_F

INDENT = "    "
#: Values longer than this (or spanning lines) are shown as `...`.
MAX_VALUE_CHARS = 200
#: At most this many signatures (and as many fields) per context, the ones nearest the focal method.
MAX_MEMBERS = 60

_PY_INIT_BLOCKS = frozenset({
    "if_statement", "elif_clause", "else_clause", "try_statement", "except_clause", "finally_clause",
    "with_statement", "for_statement", "while_statement", "block", "expression_statement",
})


def parse_context_level(text: str) -> str:
    """The context level named by `text` (spaces and case ignored), or `BadSettingError`."""
    level = re.sub(r"\s+", "", str(text)).lower()
    if level not in CONTEXT_LEVELS:
        raise BadSettingError(f"context level {text!r} is not one of: {', '.join(CONTEXT_LEVELS)}")
    return level


# -- helpers -------------------------------------------------------------------------------------

def _indent_lines(text: str, indent: str) -> str:
    return "\n".join(indent + line if line else line for line in text.split("\n"))


def _nearest(items: list[tuple[int, Any]], anchor: int, limit: int = MAX_MEMBERS) -> list[tuple[int, Any]]:
    """At most `limit` of (position, item) pairs, those nearest `anchor`, in source order."""
    if len(items) <= limit:
        return items
    kept = sorted(items, key=lambda item: abs(item[0] - anchor))[:limit]
    return sorted(kept, key=lambda item: item[0])


def _python_assignment(file: SourceFile, statement: Node) -> str:
    """An assignment statement on one line; a long or multi-line value becomes `...`."""
    text = flatten_span(file, statement, statement.start_byte, statement.end_byte)
    if len(text) <= MAX_VALUE_CHARS and "\n" not in file.node_text(statement):
        return text
    assignment = statement.named_children[0]
    left = assignment.child_by_field_name("left")
    typed = assignment.child_by_field_name("type")
    head = file.node_text(left)
    if typed is not None:
        head += ": " + flatten_span(file, typed, typed.start_byte, typed.end_byte)
    if len(head) > MAX_VALUE_CHARS:
        return ""
    return head + " = ..." if assignment.child_by_field_name("right") is not None else head


def _simple_assignment(statement: Node, targets=("identifier", "pattern_list", "tuple_pattern")) -> Node | None:
    """The assignment of an `expression_statement` that binds plain names (not a named lambda)."""
    if statement.type != "expression_statement" or statement.named_child_count != 1:
        return None
    assignment = statement.named_children[0]
    if assignment.type != "assignment":
        return None
    left, right = assignment.child_by_field_name("left"), assignment.child_by_field_name("right")
    if left is None or left.type not in targets or (right is not None and right.type == "lambda"):
        return None
    return assignment


# -- rendering -----------------------------------------------------------------------------------

def render_context(file: SourceFile, function: Function, level: str = DEFAULT_CONTEXT) -> str:
    """The focal context of `function` at `level`, as code ending with a newline."""
    level = parse_context_level(level)
    parts = frozenset(level.split("+"))
    if level == FM:
        return reindent_span(file, function.node, function.start_byte, function.end_byte, "") + "\n"
    imports = module_imports(file)
    if file.language == PYTHON:
        blocks = ["\n".join(imports)] if imports else []
        if function.class_nodes:
            blocks.append(_python_class_context(file, function, parts))
        else:
            blocks.extend(_python_module_context(file, function, parts))
        return "\n\n\n".join(blocks) + "\n"
    blocks = []
    package = [line for line in imports if line.startswith("package ")]
    others = [line for line in imports if not line.startswith("package ")]
    if package:
        blocks.append("\n".join(package))
    if others:
        blocks.append("\n".join(others))
    blocks.append(_java_class_context(file, function, parts))
    return "\n\n".join(blocks) + "\n"


def _python_module_context(file: SourceFile, function: Function, parts) -> list[str]:
    blocks = []
    if "f" in parts:
        # the nearest are chosen by position before any is rendered: a module of a million lines renders
        # only what the prompt can show
        statements = [(statement.start_byte, statement) for statement in file.tree.root_node.named_children
                      if _simple_assignment(statement) is not None]
        constants = [(at, _python_assignment(file, statement)) for at, statement in _nearest(statements, function.start_byte)]
        constants = [(at, text) for at, text in constants if text]
        if constants:
            blocks.append("\n".join(text for _, text in constants))
    others = []
    if "m" in parts:
        neighbours = [(other.start_byte, other) for other in functions(file)
                      if other.kind == FUNCTION and other.start_byte != function.start_byte]
        others = [(at, signature(file, other)) for at, other in _nearest(neighbours, function.start_byte)]
    focal = (function.start_byte, reindent_span(file, function.node, function.start_byte, function.end_byte, ""))
    blocks.extend(text for _, text in sorted(_nearest(others, function.start_byte) + [focal]))
    return blocks


def _python_class_context(file: SourceFile, function: Function, parts) -> str:
    lines = []
    for depth, class_node in enumerate(function.class_nodes):
        indent = INDENT * depth
        header = definition_header(file, class_node)
        lines.extend(indent + line for line in header.split("\n"))
    indent = INDENT * len(function.class_nodes)
    innermost = function.class_nodes[-1]
    blocks = []
    if "f" in parts:
        body = innermost.child_by_field_name("body")
        attributes = [
            _python_assignment(file, statement)
            for statement in (body.named_children if body is not None else [])
            if _simple_assignment(statement, ("identifier",)) is not None
        ]
        attributes = [text for text in attributes if text][:MAX_MEMBERS]
        if attributes:
            blocks.append((-1, "\n".join(indent + text for text in attributes)))
    members = []
    for method in functions(file):
        if not method.class_nodes or method.class_nodes[-1] != innermost:
            continue
        if method.start_byte == function.start_byte:
            blocks.append((method.start_byte, reindent_span(file, method.node, method.start_byte, method.end_byte, indent)))
        elif method.name == "__init__":
            if "c" in parts:
                blocks.append((method.start_byte, _indent_lines(_python_init(file, method, "f" in parts), indent)))
        elif "m" in parts:
            members.append((method.start_byte, _indent_lines(signature(file, method), indent)))
    blocks.extend(_nearest(members, function.start_byte))
    blocks.sort(key=lambda block: block[0])
    return "\n".join(lines) + "\n" + "\n\n".join(text for _, text in blocks)


def _python_init(file: SourceFile, init: Function, with_fields: bool) -> str:
    """`__init__`'s signature, followed by its first assignment to each `self.x` when fields are shown."""
    header = python_signature(file, init)
    assignments = _self_assignments(file, init.node) if with_fields else []
    if not assignments:
        return header + " ..."
    return header + "\n" + "\n".join(INDENT + text for text in assignments)


def _self_assignments(file: SourceFile, init: Node) -> list[str]:
    params = init.child_by_field_name("parameters")
    first = params.named_children[0] if params is not None and params.named_children else None
    self_name = file.node_text(first) if first is not None and first.type == "identifier" else "self"
    body = init.child_by_field_name("body")
    if body is None:
        return []
    seen: set[str] = set()
    found: list[str] = []
    # In source order, not into nested functions or classes.
    for node in descendants(body, named_only=True, descend_into=lambda node: node.type in _PY_INIT_BLOCKS):
        if node.type == "expression_statement" and node.named_child_count == 1 and node.named_children[0].type == "assignment":
            left = node.named_children[0].child_by_field_name("left")
            targets = left.named_children if left is not None and left.type in ("pattern_list", "tuple_pattern") else [left]
            names = {
                file.node_text(target.child_by_field_name("attribute"))
                for target in targets
                if target is not None and target.type == "attribute"
                and file.node_text(target.child_by_field_name("object")) == self_name
            }
            if names - seen:
                seen |= names
                text = _python_assignment(file, node)
                if text:
                    found.append(text)
    return found[:MAX_MEMBERS]


def _java_class_context(file: SourceFile, function: Function, parts) -> str:
    if not function.class_nodes:
        return reindent_span(file, function.node, function.start_byte, function.end_byte, "")
    depth = len(function.class_nodes)
    opening = []
    for level, class_node in enumerate(function.class_nodes):
        body = class_node.child_by_field_name("body")
        end = body.start_byte if body is not None else class_node.end_byte
        opening.append(INDENT * level + flatten_span(file, class_node, class_node.start_byte, end) + " {")
    indent = INDENT * depth
    innermost = function.class_nodes[-1]
    groups: list[list[str]] = []
    if innermost.type == "enum_declaration":
        groups.append([indent + _java_enum_constants(file, innermost)])
    groups.append([reindent_span(file, function.node, function.start_byte, function.end_byte, indent)])
    constructors, methods, fields = [], [], []
    for member in _java_members(innermost):
        if member.start_byte == function.start_byte:
            continue
        if member.type == "constructor_declaration":
            constructors.append((member.start_byte, java_signature(file, member)))
        elif member.type == "compact_constructor_declaration":
            constructors.append((member.start_byte, _java_compact_constructor(file, member, innermost)))
        elif member.type == "method_declaration":
            methods.append((member.start_byte, java_signature(file, member)))
        elif member.type in ("field_declaration", "constant_declaration"):
            fields.append((member.start_byte, _java_field(file, member)))
    for flag, items in (("c", constructors), ("m", methods), ("f", fields)):
        if flag in parts and items:
            groups.append([indent + text for _, text in _nearest(items, function.start_byte)])
    lines = []
    for level, header in enumerate(opening):
        lines += [header, ""]
    lines.append("\n\n".join("\n".join(group) for group in groups if group))
    for level in reversed(range(depth)):
        lines += ["", INDENT * level + "}"]
    return "\n".join(lines)


def _java_members(type_node: Node) -> list[Node]:
    body = type_node.child_by_field_name("body")
    if body is None:
        return []
    members = []
    for child in body.named_children:
        if child.type == "enum_body_declarations":
            members.extend(child.named_children)
        else:
            members.append(child)
    return members


def _java_enum_constants(file: SourceFile, enum: Node) -> str:
    body = enum.child_by_field_name("body")
    constants = []
    for constant in (body.named_children if body is not None else []):
        if constant.type != "enum_constant":
            continue
        text = _field_text(file, constant, "name")
        arguments = constant.child_by_field_name("arguments")
        if arguments is not None:
            text += flatten_span(file, arguments, arguments.start_byte, arguments.end_byte)
        constants.append(text)
    return ", ".join(constants[:MAX_MEMBERS]) + ";"


def _java_compact_constructor(file: SourceFile, constructor: Node, record: Node) -> str:
    """A record's compact constructor as the canonical constructor it declares: `Point(int x, int y);`."""
    body = constructor.child_by_field_name("body")
    head = flatten_span(file, constructor, constructor.start_byte, body.start_byte if body else constructor.end_byte)
    components = record.child_by_field_name("parameters")
    params = flatten_span(file, components, components.start_byte, components.end_byte) if components else "()"
    return f"{head}{params};"


def _java_field(file: SourceFile, field: Node) -> str:
    text = flatten_span(file, field, field.start_byte, field.end_byte)
    if len(text) <= MAX_VALUE_CHARS:
        return text
    # Too long to show: keep the declaration, drop the initializers.
    head = [
        flatten_span(file, child, child.start_byte, child.end_byte)
        for child in field.children
        if child.type not in ("variable_declarator", ",", ";") and child.type not in COMMENTS[JAVA]
    ]
    names = [_field_text(file, d, "name") for d in field.children_by_field_name("declarator")]
    return " ".join(head) + " " + ", ".join(names) + ";"


def _field_text(file: SourceFile, node: Node, name: str) -> str:
    child = node.child_by_field_name(name)
    return file.node_text(child) if child is not None else ""
