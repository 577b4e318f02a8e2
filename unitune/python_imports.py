"""What a Python module's imports bind: each imported name to a module, or to a name inside a module,
with relative imports made absolute. Mining (`unitune.training.python_modules`) and the project part
of a prompt (`unitune.python_symbols`) both resolve names through these bindings.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from tree_sitter import Node, Query, QueryCursor

from unitune.languages import PYTHON, tree_sitter_language
from unitune.source import SourceFile
from unitune.syntax_walk import descendants

# Statements whose blocks still belong to the module's top level (`try: from x import y`).
TOP_LEVEL_BLOCKS = frozenset({
    "if_statement", "elif_clause", "else_clause", "try_statement", "except_clause", "finally_clause",
    "block", "with_statement",
})


@dataclass(frozen=True)
class Binding:
    """What an import binds a name to: a module (`symbol` None) or a name inside a module."""

    module: str
    symbol: str | None = None


def import_bindings(file: SourceFile, module_name: str, is_package: bool, *, anywhere: bool,
                    within: Node | None = None) -> tuple[dict[str, Binding], list[str]]:
    """The names `file`'s imports bind, and the modules it star-imports. `anywhere` also reads imports
    inside functions (a test file's), not only the module's top level (a re-export's); `within`
    reads only the imports under that node (a function's own)."""
    bindings: dict[str, Binding] = {}
    stars: list[str] = []
    for node in _import_statements(file, anywhere, within):
        if node.type == "import_statement":
            for item in node.named_children:
                if item.type == "aliased_import":
                    bindings[file.node_text(item.child_by_field_name("alias"))] = Binding(file.node_text(item.child_by_field_name("name")))
                elif item.type == "dotted_name":
                    head = file.node_text(item).split(".", 1)[0]
                    bindings[head] = Binding(head)
        elif node.type == "import_from_statement":
            source = _from_module(file, node, module_name, is_package)
            if source is None:
                continue
            for item in node.children_by_field_name("name"):
                if item.type == "aliased_import":
                    bound = file.node_text(item.child_by_field_name("alias"))
                    name = file.node_text(item.child_by_field_name("name"))
                else:
                    bound = name = file.node_text(item)
                bindings[bound] = Binding(source, name)
            if any(child.type == "wildcard_import" for child in node.named_children):
                stars.append(source)
    return bindings, stars


@functools.cache
def _import_query() -> Query:
    return Query(tree_sitter_language(PYTHON), "[(import_statement) (import_from_statement)] @import")


def _import_statements(file: SourceFile, anywhere: bool, within: Node | None = None) -> list[Node]:
    """The import statements of `file` in document order: all of them (under `within`, if given), or
    those of the module's top level."""
    if anywhere or within is not None:  # a query walks the tree in C: test files are big
        found = QueryCursor(_import_query()).captures(within or file.tree.root_node).get("import", [])
        return sorted(found, key=lambda node: node.start_byte)
    inside = descendants(file.tree.root_node, named_only=True, descend_into=lambda node: node.type in TOP_LEVEL_BLOCKS)
    return [node for node in inside if node.type in ("import_statement", "import_from_statement")]


def _from_module(file: SourceFile, node: Node, module_name: str, is_package: bool) -> str | None:
    """The absolute module of a `from X import ...` (relative imports resolved against `module_name`)."""
    module = node.child_by_field_name("module_name")
    if module is None:
        return None
    if module.type != "relative_import":
        return file.node_text(module)
    prefix = next((c for c in module.named_children if c.type == "import_prefix"), None)
    dotted = next((c for c in module.named_children if c.type == "dotted_name"), None)
    level = len(file.node_text(prefix).strip()) if prefix is not None else 1
    parts = module_name.split(".") if module_name else []
    if not is_package:
        parts = parts[:-1]
    if level - 1 > len(parts):
        return None
    base = parts[: len(parts) - (level - 1)]
    if dotted is not None:
        base += file.node_text(dotted).split(".")
    return ".".join(base) or None
