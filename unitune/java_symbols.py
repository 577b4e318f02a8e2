"""The project's Java types a focal method uses, as public signatures for the prompt's project block
(`unitune.project_context`).

Used means: the types the method names (parameters, return, locals, `new Cart(...)`, static calls
`Money.of(...)`) and the types of its class's fields that it reads. A type is found in the focal
class's package (its folder) or through the file's single-type and on-demand imports, under the same
source root; the JDK and libraries are never followed, since only the project's own files are read.
A class is shown as its header and its public constructors and methods (those the focal method calls
first), an interface with all its methods, an enum with its constants.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tree_sitter import Node

from unitune.code_spans import flatten_span, java_signature
from unitune.context import INDENT
from unitune.focal import Function
from unitune.listing import java_imports, java_package
from unitune.project_code import (
    MAX_CLASS_METHODS, MAX_SYMBOL_CHARS, ProjectSymbol, read_project_file, relative_label,
)
from unitune.source import SourceFile
from unitune.syntax_walk import descendants

_TYPES = frozenset({
    "class_declaration", "interface_declaration", "enum_declaration", "record_declaration",
})
_MEMBERS = frozenset({"constructor_declaration", "method_declaration"})


def java_symbols(file: SourceFile, function: Function, root: Path) -> list[ProjectSymbol]:
    """The project's types `function` uses, the most used first."""
    if file.path is None:
        return []
    root = Path(root).resolve()
    path = Path(file.path).resolve()
    package = java_package(file)
    source_root = _source_root(path, package)
    single, on_demand = {}, [package]
    for name in java_imports(file):
        if name.endswith(".*"):
            on_demand.append(name[:-2])
        else:
            single[name.rsplit(".", 1)[-1]] = name
    declared = {file.node_text(node.child_by_field_name("name"))
                for node in descendants(file.tree.root_node, named_only=True) if node.type in _TYPES}
    uses, called = _uses(file, function)
    symbols = []
    for name, positions in sorted(uses.items(), key=lambda item: (-len(item[1]), item[1][0])):
        if name in declared:
            continue
        candidates = [single[name]] if name in single else [f"{p}.{name}" if p else name for p in on_demand]
        for qualified in candidates:
            found = source_root.joinpath(*qualified.split(".")).with_suffix(".java")
            other = read_project_file(found) if found.resolve() != path else None
            node = _type_named(other, name) if other is not None else None
            if node is not None:
                symbols.append(ProjectSymbol(relative_label(found, root), qualified, _stub(other, node, called),
                                             len(positions), positions[0]))
                break
    return symbols


def _source_root(path: Path, package: str) -> Path:
    """The folder the package path starts in (the file's folder when it does not mirror the package)."""
    parts = package.split(".") if package else []
    folder = path.parent
    if parts and list(folder.parts[-len(parts):]) == parts:
        return Path(*folder.parts[: -len(parts)])
    return folder


def _uses(file: SourceFile, function: Function) -> tuple[dict[str, list[int]], Counter]:
    """Type names the method uses, with the offsets of their uses, and the method names it calls."""
    uses: dict[str, list[int]] = {}
    called: Counter = Counter()
    fields = _field_types(file, function.class_nodes[-1]) if function.class_nodes else {}
    for node in descendants(function.node, named_only=True):
        if node.type == "type_identifier":
            uses.setdefault(file.node_text(node), []).append(node.start_byte)
        elif node.type == "method_invocation":
            called[file.node_text(node.child_by_field_name("name"))] += 1
            owner = node.child_by_field_name("object")
            if owner is not None and owner.type == "identifier" and file.node_text(owner)[:1].isupper():
                uses.setdefault(file.node_text(owner), []).append(owner.start_byte)
        elif node.type == "identifier" and file.node_text(node) in fields:
            for name in fields[file.node_text(node)]:
                uses.setdefault(name, []).append(node.start_byte)
    return uses, called


def _field_types(file: SourceFile, class_node: Node) -> dict[str, list[str]]:
    """The type names of a class's fields, by field name."""
    body = class_node.child_by_field_name("body")
    types: dict[str, list[str]] = {}
    for member in body.named_children if body is not None else []:
        if member.type != "field_declaration":
            continue
        typed = member.child_by_field_name("type")
        names = [file.node_text(n) for n in descendants(typed, named_only=True) if n.type == "type_identifier"] \
            if typed is not None else []
        if typed is not None and typed.type == "type_identifier":
            names = [file.node_text(typed)]
        for declarator in member.children_by_field_name("declarator"):
            types[file.node_text(declarator.child_by_field_name("name"))] = names
    return types


def _type_named(file: SourceFile, name: str) -> Node | None:
    return next((node for node in file.tree.root_node.named_children
                 if node.type in _TYPES and file.node_text(node.child_by_field_name("name")) == name), None)


def _stub(file: SourceFile, node: Node, called: Counter) -> str:
    """A type's header and public API, within `MAX_SYMBOL_CHARS`."""
    body = node.child_by_field_name("body")
    header = flatten_span(file, node, node.start_byte, body.start_byte if body is not None else node.end_byte) + " {"
    interface = node.type == "interface_declaration"
    members: list[tuple[str, Node]] = []
    constants = []
    for member in _members(body):
        if member.type == "enum_constant":
            constants.append(file.node_text(member.child_by_field_name("name")))
        elif member.type in _MEMBERS and (interface or _is_public(file, member)):
            members.append((file.node_text(member.child_by_field_name("name")), member))
    chosen = sorted(members, key=lambda item: (-called[item[0]], item[1].type != "constructor_declaration",
                                               item[1].start_byte))[:MAX_CLASS_METHODS]
    lines = [INDENT + ", ".join(constants[:20]) + ";"] if constants else []
    in_source_order = sorted(chosen, key=lambda item: item[1].start_byte)
    lines += [INDENT + java_signature(file, member) for _, member in in_source_order]
    text = header
    for line in lines:
        if len(text) + len(line) + 3 > MAX_SYMBOL_CHARS:
            text += "\n" + INDENT + "// ..."
            break
        text += "\n" + line
    return text + "\n}"


def _members(body: Node | None) -> list[Node]:
    if body is None:
        return []
    found = []
    for child in body.named_children:
        found.extend(child.named_children if child.type == "enum_body_declarations" else [child])
    return found


def _is_public(file: SourceFile, member: Node) -> bool:
    modifiers = next((child for child in member.children if child.type == "modifiers"), None)
    return modifiers is not None and "public" in file.node_text(modifiers).split()
