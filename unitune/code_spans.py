"""Code of a parsed file as prompt text: a span flattened to one line (`flatten_span`) or re-based to
another indentation (`reindent_span`), a module's imports, and signatures and definition headers without
their bodies."""

from __future__ import annotations

import re

from tree_sitter import Node

from unitune.focal import Function
from unitune.languages import JAVA, PYTHON
from unitune.source import UTF8, SourceFile
from unitune.syntax_walk import descendants

#: Comment node types, by language.
COMMENTS = {PYTHON: frozenset({"comment"}), JAVA: frozenset({"line_comment", "block_comment"})}
_MULTILINE_STRINGS = {PYTHON: frozenset({"string"}), JAVA: frozenset({"string_literal"})}
_PY_IMPORTS = frozenset({"import_statement", "import_from_statement", "future_import_statement"})
# Statements whose blocks still belong to the module's top level (`if TYPE_CHECKING:`, `try:`).
_PY_IMPORT_BLOCKS = frozenset({
    "if_statement", "elif_clause", "else_clause", "try_statement", "except_clause", "finally_clause",
    "block",
})


# -- spans ---------------------------------------------------------------------------------------

def flatten_span(file: SourceFile, node: Node, start: int, end: int) -> str:
    """The code in bytes [start, end) of `node` on one line: comments dropped, line breaks collapsed."""
    drop = sorted((c.start_byte, c.end_byte) for c in _descendants_in(node, start, end, COMMENTS[file.language]))
    pieces, cursor = [], start
    for comment_start, comment_end in drop:
        pieces.append(file.bytes_text(cursor, comment_start))
        cursor = comment_end
    pieces.append(file.bytes_text(cursor, end))
    text = "".join(pieces)
    text = re.sub(r"[ \t]*\\\r?\n\s*", " ", text)  # Python line continuations
    text = re.sub(r"([(\[{])\s*\n\s*", r"\1", text)
    text = re.sub(r",?\s*\n\s*([)\]}])", r"\1", text)  # a trailing comma only exists for the line break
    text = re.sub(r"\s*\n\s*", " ", text)
    return text.strip()


def reindent_span(file: SourceFile, node: Node, start: int, end: int, indent: str) -> str:
    """Bytes [start, end) of `node` as lines re-based to `indent`; lines inside multi-line strings are
    kept as they are, since their indentation is part of the string's value (docstrings and other
    bare string statements move with the code: nothing reads their indentation)."""
    first_row = file.position(start, UTF8)[0]
    line_prefix = file.bytes_text(file.offset(first_row, 0), start)
    base = line_prefix[: len(line_prefix) - len(line_prefix.lstrip())]
    verbatim: set[int] = set()
    for string in _descendants_in(node, start, end, _MULTILINE_STRINGS[file.language]):
        parent = string.parent
        if parent is not None and parent.type == "expression_statement" and parent.named_child_count == 1:
            continue
        verbatim.update(range(string.start_point.row + 1, string.end_point.row + 1))
    lines = file.bytes_text(start, end).split("\n")
    out = [indent + lines[0].rstrip("\r")]
    for row, line in enumerate(lines[1:], first_row + 1):
        line = line.rstrip("\r")
        if row in verbatim:
            out.append(line)
        elif not line.strip():
            out.append("")
        elif line.startswith(base):
            out.append(indent + line[len(base):])
        else:
            out.append(indent + line.lstrip())
    return "\n".join(out)


def _descendants_in(node: Node, start: int, end: int, types: frozenset[str]) -> list[Node]:
    """The outermost nodes of one of `types` that overlap bytes [start, end): `node` itself, or its
    descendants."""
    def overlaps(current: Node) -> bool:
        return current.end_byte > start and current.start_byte < end

    if not overlaps(node):
        return []
    if node.type in types:
        return [node]
    inside = descendants(node, descend_into=lambda current: current.type not in types and overlaps(current))
    return [current for current in inside if current.type in types and overlaps(current)]


# -- imports and signatures ----------------------------------------------------------------------

def module_imports(file: SourceFile) -> list[str]:
    """The module's imports, one line each, in order and without duplicates.

    Python: `import`/`from` statements at module level, including those under `if TYPE_CHECKING:`
    and in `try`/`except` blocks. Java: the package declaration, then the imports."""
    root = file.tree.root_node
    found: list[str] = []
    if file.language == PYTHON:
        for node in descendants(root, named_only=True, descend_into=lambda node: node.type in _PY_IMPORT_BLOCKS):
            if node.type in _PY_IMPORTS:
                found.append(flatten_span(file, node, node.start_byte, node.end_byte))
    else:
        for node in root.named_children:
            if node.type in ("package_declaration", "import_declaration"):
                found.append(flatten_span(file, node, node.start_byte, node.end_byte))
    return list(dict.fromkeys(found))


def signature(file: SourceFile, function: Function) -> str:
    """The function's signature as unindented code: Python `@decorators` + `def name(params) -> ret: ...`,
    Java modifiers, annotations, type, name, parameters and throws ending in `;`."""
    if function.language == PYTHON:
        return python_signature(file, function) + " ..."
    return java_signature(file, function.node)


def python_signature(file: SourceFile, function: Function) -> str:
    """Decorators and `def ...:` line(s), without a body."""
    node = function.node
    if node.type == "assignment":  # `name = lambda params: ...`
        lam = node.child_by_field_name("right")
        params = lam.child_by_field_name("parameters")
        params_text = flatten_span(file, params, params.start_byte, params.end_byte) if params else ""
        return f"def {function.name}({params_text}):"
    return definition_header(file, node)


def definition_header(file: SourceFile, node: Node) -> str:
    """A `def` or `class` header with its decorators, one per line, ending in `:`."""
    lines = []
    parent = node.parent
    if parent is not None and parent.type == "decorated_definition":
        lines = [flatten_span(file, d, d.start_byte, d.end_byte) for d in parent.named_children if d.type == "decorator"]
    return "\n".join(lines + [flatten_span(file, node, node.start_byte, _python_colon_end(node))])


def _python_colon_end(node: Node) -> int:
    """End of the `:` that closes a def's or class's header."""
    body = node.child_by_field_name("body")
    colon_end = body.start_byte if body is not None else node.end_byte
    for child in node.children:
        if child.type == ":":
            colon_end = child.end_byte
        if body is not None and child.start_byte >= body.start_byte:
            break
    return colon_end


def java_signature(file: SourceFile, node: Node) -> str:
    """A Java method's or constructor's declaration without its body, ending in `;`."""
    body = node.child_by_field_name("body")
    end = body.start_byte if body is not None else node.end_byte
    return flatten_span(file, node, node.start_byte, end).rstrip(";").rstrip() + ";"
