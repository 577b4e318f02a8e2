"""Focal methods: the testable functions of a file and the one under a position.

A *testable* function is a top-level function, or a method or constructor of a class (nested classes
included). Closures, lambdas and methods of anonymous or local classes are not testable themselves;
a position inside one resolves to the testable function that encloses it. The span of a function
includes its decorators (Python) and annotations (Java, where they are part of the declaration's
modifiers).

Python extension: a lambda assigned to a name at module or class level (`square = lambda x: x * x`)
is testable under that name, since it is called exactly like a function.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tree_sitter import Node

from unitune.errors import NoFocalMethodError
from unitune.languages import JAVA, PYTHON
from unitune.source import SourceFile

FUNCTION = "function"
METHOD = "method"
CONSTRUCTOR = "constructor"

# Nodes that keep the scope they are in (a function under `if TYPE_CHECKING:` is still top-level).
_PY_TRANSPARENT = frozenset({
    "module", "block", "if_statement", "elif_clause", "else_clause", "try_statement", "except_clause",
    "except_group_clause", "finally_clause", "with_statement", "for_statement", "while_statement",
    "match_statement", "case_clause", "ERROR",
})
_JAVA_CLASSES = frozenset({
    "class_declaration", "interface_declaration", "enum_declaration", "record_declaration",
    "annotation_type_declaration",
})
_JAVA_BODIES = frozenset({
    "program", "class_body", "interface_body", "enum_body", "enum_body_declarations",
    "annotation_type_body", "ERROR",
})
_JAVA_FUNCTIONS = frozenset({"method_declaration", "constructor_declaration", "compact_constructor_declaration"})


def called_as(name: str, class_path: tuple[str, ...] | list[str] = ()) -> tuple[str, ...]:
    """The names a Python test calls a function `name` by (see `Function.called_as`)."""
    if class_path and name.startswith("__") and name.endswith("__"):
        return (class_path[-1], name)
    return (name,)


@dataclass(eq=False)
class Function:
    """A testable function or method, with where it sits in its file."""

    language: str
    name: str
    qualified_name: str
    kind: str  # FUNCTION, METHOD or CONSTRUCTOR
    class_path: tuple[str, ...]
    start_byte: int  # span, decorators/annotations included
    end_byte: int
    start_line: int  # 1-based, inclusive
    end_line: int
    node: Node = field(repr=False)  # the definition (function_definition, method_declaration, ...)
    class_nodes: tuple[Node, ...] = field(default=(), repr=False)  # enclosing classes, outermost first
    decorators: tuple[str, ...] = ()  # decorator / annotation names, without `@`
    is_async: bool = False

    @property
    def class_name(self) -> str | None:
        """The innermost enclosing class, or None for a top-level function."""
        return self.class_path[-1] if self.class_path else None

    @property
    def called_as(self) -> tuple[str, ...]:
        """The names a test calls it by: its own, and for a constructor or another special method of a
        class (`__init__`, `__str__`, `__getitem__`: run by `Version(...)`, `str(v)`, `v[0]`), its class's."""
        return called_as(self.name, self.class_path) if self.language == "python" else (self.name,)

    @property
    def is_static(self) -> bool:
        return "staticmethod" in self.decorators or "static" in self.decorators

    def source(self, file: SourceFile) -> str:
        """The function's text, from the start of its first line (so indentation is kept)."""
        line_start = file.offset(self.start_line - 1, 0)
        return file.bytes_text(line_start, self.end_byte)

    def to_json(self, file: SourceFile) -> dict:
        return {
            "language": self.language,
            "name": self.name,
            "qualified_name": self.qualified_name,
            "class_name": self.class_name,
            "kind": self.kind,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "source": self.source(file),
        }


# -- enumeration ---------------------------------------------------------------------------------

def functions(file: SourceFile) -> list[Function]:
    """Every testable function of `file`, in document order."""
    found: list[Function] = []
    if file.language == PYTHON:
        _python_scope(file, file.tree.root_node, (), (), found)
    elif file.language == JAVA:
        _java_scope(file, file.tree.root_node, (), (), found)
    return found


def _python_scope(file, node: Node, path, class_nodes, found: list[Function]) -> None:
    """The functions under `node`, appended to `found` in document order. A work stack, not recursion:
    a file may nest blocks hundreds deep (`if` in `if` ...), which once crashed the lookup of any of its
    functions."""
    pending = [(child, path, class_nodes) for child in reversed(node.named_children)]
    while pending:
        child, path, class_nodes = pending.pop()
        kind = child.type
        definition = child.child_by_field_name("definition") if kind == "decorated_definition" else child
        if definition is None:
            continue
        if definition.type == "function_definition":
            found.append(_describe_python(file, definition, child, path, class_nodes))
        elif definition.type == "class_definition":
            name = _field_text(file, definition, "name")
            body = definition.child_by_field_name("body")
            if body is not None:
                pending.extend((inner, path + (name,), class_nodes + (definition,))
                               for inner in reversed(body.named_children))
        elif kind == "expression_statement":
            lam = _python_named_lambda(child)
            if lam is not None:
                found.append(_describe_python(file, lam, child, path, class_nodes))
        elif kind in _PY_TRANSPARENT:
            pending.extend((inner, path, class_nodes) for inner in reversed(child.named_children))


def _python_named_lambda(statement: Node) -> Node | None:
    """The assignment of `name = lambda ...` when `statement` is one."""
    if statement.named_child_count != 1:
        return None
    assignment = statement.named_children[0]
    if assignment.type != "assignment":
        return None
    left, right = assignment.child_by_field_name("left"), assignment.child_by_field_name("right")
    if left is not None and right is not None and left.type == "identifier" and right.type == "lambda":
        return assignment
    return None


def _describe_python(file, definition: Node, span: Node, path, class_nodes) -> Function:
    if definition.type == "assignment":  # a named lambda
        name = file.node_text(definition.child_by_field_name("left"))
        decorators: tuple[str, ...] = ()
        is_async = False
    else:
        name = _field_text(file, definition, "name")
        decorators = tuple(
            _decorator_name(file, d) for d in span.named_children if d.type == "decorator"
        ) if span.type == "decorated_definition" else ()
        is_async = any(c.type == "async" for c in definition.children)
    kind = FUNCTION if not path else (CONSTRUCTOR if name == "__init__" else METHOD)
    return _function(file, PYTHON, name, kind, path, span, definition, class_nodes, decorators, is_async)


def _decorator_name(file, decorator: Node) -> str:
    text = file.node_text(decorator).lstrip("@").strip()
    return text.split("(", 1)[0].strip()


def _java_scope(file, node: Node, path, class_nodes, found: list[Function]) -> None:
    for child in node.named_children:
        kind = child.type
        if kind in _JAVA_FUNCTIONS:
            found.append(_describe_java(file, child, path, class_nodes))
        elif kind in _JAVA_CLASSES:
            name = _field_text(file, child, "name")
            body = child.child_by_field_name("body")
            if body is not None:
                _java_scope(file, body, path + (name,), class_nodes + (child,), found)
        elif kind in _JAVA_BODIES:
            _java_scope(file, child, path, class_nodes, found)


def _describe_java(file, definition: Node, path, class_nodes) -> Function:
    name = _field_text(file, definition, "name")
    kind = METHOD if definition.type == "method_declaration" else CONSTRUCTOR
    annotations: list[str] = []
    for child in definition.children:
        if child.type == "modifiers":
            for modifier in child.children:
                if modifier.type in ("marker_annotation", "annotation"):
                    annotations.append(_field_text(file, modifier, "name"))
                elif modifier.type == "static":
                    annotations.append("static")
    return _function(file, JAVA, name, kind, path, definition, definition, class_nodes, tuple(annotations), False)


def _function(file, language, name, kind, path, span: Node, definition: Node, class_nodes, decorators, is_async):
    return Function(
        language=language,
        name=name,
        qualified_name=".".join(path + (name,)),
        kind=kind,
        class_path=tuple(path),
        start_byte=span.start_byte,
        end_byte=span.end_byte,
        start_line=span.start_point.row + 1,
        end_line=span.end_point.row + 1,
        node=definition,
        class_nodes=tuple(class_nodes),
        decorators=decorators,
        is_async=is_async,
    )


def _field_text(file, node: Node, name: str) -> str:
    child = node.child_by_field_name(name)
    return file.node_text(child) if child is not None else ""


# -- lookup --------------------------------------------------------------------------------------

def focal_at(file: SourceFile, offset: int) -> Function | None:
    """The innermost testable function whose span holds byte `offset`, or None.

    Walks up from the node at the offset (O(depth), no enumeration) so it stays fast on big files.
    A cursor just after the last character of a function (end of its last line) still counts, and so
    does a cursor in the indentation before its first line."""
    found = _focal_at(file, offset)
    # Only when the cursor is not on a token of its own (`}   |int x;` is on the field, not the method).
    if found is None and (offset >= len(file.data) or file.data[offset] in b" \t\r\n"):
        for nudged in (_first_code_byte_after_indent(file, offset), _last_code_byte_before(file, offset)):
            if nudged is not None and nudged != offset:
                found = _focal_at(file, nudged)
                if found is not None:
                    break
    return found


def require_focal_at(file: SourceFile, offset: int) -> Function:
    """`focal_at`, raising `NoFocalMethodError` with the position when there is none."""
    found = focal_at(file, offset)
    if found is None:
        line, column = file.position(offset)
        raise NoFocalMethodError(
            f"{file.name}:{line + 1}:{column + 1}: no function or method here; put the cursor inside one"
        )
    return found


def _first_code_byte_after_indent(file: SourceFile, offset: int) -> int | None:
    """The offset of the first non-blank byte of the line of `offset` when `offset` is in its indentation."""
    data = file.data
    start = data.rfind(b"\n", 0, offset) + 1
    if data[start:offset].strip(b" \t"):
        return None
    index = offset
    while index < len(data) and data[index] in b" \t":
        index += 1
    if index >= len(data) or data[index] in b"\r\n":
        return None
    return index


def _last_code_byte_before(file: SourceFile, offset: int) -> int | None:
    """The offset of the last non-blank byte on the line of `offset`, before it."""
    data = file.data
    index = min(offset, len(data)) - 1
    while index >= 0 and data[index] in b" \t\r":
        index -= 1
    if index < 0 or data[index] == 0x0A:
        return None
    return index


def _focal_at(file: SourceFile, offset: int) -> Function | None:
    node = file.tree.root_node.descendant_for_byte_range(offset, offset)
    if node is None:
        return None
    chain: list[Node] = []
    while node is not None:
        chain.append(node)
        node = node.parent
    chain.reverse()  # root first
    if file.language == PYTHON:
        return _python_focal(file, chain)
    return _java_focal(file, chain)


def _python_focal(file, chain: list[Node]) -> Function | None:
    path: tuple[str, ...] = ()
    class_nodes: tuple[Node, ...] = ()
    for index, node in enumerate(chain):
        kind = node.type
        if kind == "decorated_definition":
            definition = node.child_by_field_name("definition")
            if definition is not None and definition.type == "function_definition":
                return _describe_python(file, definition, node, path, class_nodes)
            continue  # a decorated class: its definition follows in the chain
        if kind == "function_definition":
            return _describe_python(file, node, node, path, class_nodes)
        if kind == "class_definition":
            path += (_field_text(file, node, "name"),)
            class_nodes += (node,)
            continue
        if kind == "expression_statement":
            lam = _python_named_lambda(node)
            if lam is not None:
                return _describe_python(file, lam, node, path, class_nodes)
            return None
        if kind in _PY_TRANSPARENT or kind == "decorator":
            if kind == "decorator":
                return None  # a decorator of a class
            continue
        return None
    return None


def _java_focal(file, chain: list[Node]) -> Function | None:
    path: tuple[str, ...] = ()
    class_nodes: tuple[Node, ...] = ()
    for node in chain:
        kind = node.type
        if kind in _JAVA_FUNCTIONS:
            return _describe_java(file, node, path, class_nodes)
        if kind in _JAVA_CLASSES:
            path += (_field_text(file, node, "name"),)
            class_nodes += (node,)
            continue
        if kind in _JAVA_BODIES:
            continue
        # Anything else on the way down (a field's initializer, an enum constant's body, a class
        # header) is not inside a testable method.
        if kind in ("modifiers", "identifier", "type_identifier", "superclass", "super_interfaces",
                    "type_parameters", "formal_parameters", "record_declaration"):
            return None
        return None
    return None
