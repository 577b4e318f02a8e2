"""The project's Python code a focal function uses, resolved across files with tree-sitter and shown
as signature stubs in the prompt's project block (`unitune.project_context`).

Used means: the names the focal function's body calls or instantiates (`slugify(...)`, `Cart(...)`,
`money.round_cents(...)`, `Cart.empty()`), the names in its parameters' and return annotations, and,
for a method, the annotated types of the `self.` attributes it reads (`self.repo: Repository`). A
name is resolved through the focal module's own definitions and its imports of project modules,
relative or absolute, flat or under `src/`, following packages' `__init__.py` re-exports and star
imports. Only modules the project holds are followed: standard library and third-party names stay
unresolved, so nothing from outside the project is ever shown. For a focal method, its own class's
public API comes first. How they are shown is `unitune.python_stubs`'s.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tree_sitter import Node

from unitune.focal import Function
from unitune.project_code import ProjectSymbol, read_project_file, relative_label
from unitune.project_layout import looks_like_test_file, python_import_base, python_module_name
from unitune.python_imports import TOP_LEVEL_BLOCKS, Binding, import_bindings
from unitune.python_stubs import definition_name, docstring, is_secondary, python_stub
from unitune.source import SourceFile
from unitune.syntax_walk import descendants

_MAX_REEXPORT_DEPTH = 8  # re-export chains longer than this are cycles or not worth following
_DOTTED_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
_NAME_RE = re.compile(r"[A-Za-z_][\w.]*")
_SELF_NAMES = frozenset({"self", "cls"})
_TYPED_PARAMETERS = frozenset({"typed_parameter", "typed_default_parameter"})


@dataclass(frozen=True)
class _Module:
    """A module of the project: its top-level definitions and what its imports bind."""

    name: str
    path: Path
    file: SourceFile
    definitions: dict[str, Node]  # function_definition / class_definition by name
    bindings: dict[str, Binding]
    stars: tuple[str, ...]


@dataclass(frozen=True)
class _ModuleRef:
    name: str


@dataclass(frozen=True)
class _Definition:
    module: _Module
    node: Node

    @property
    def key(self) -> tuple[Path, int]:
        return self.module.path, self.node.start_byte


@dataclass
class _Uses:
    """What the focal function names: dotted names with the byte offsets of their uses, and the
    attribute names it calls (`x.save()` -> `save`), which rank the methods of a class's API."""

    names: dict[str, list[int]] = field(default_factory=dict)
    methods: Counter = field(default_factory=Counter)

    def add(self, name: str, at: int) -> None:
        self.names.setdefault(name, []).append(at)


def python_symbols(file: SourceFile, function: Function, root: Path) -> list[ProjectSymbol]:
    """The project's definitions `function` uses, its own class first, then the most used."""
    if file.path is None:
        return []
    root = Path(root).resolve()
    path = Path(file.path).resolve()
    resolver = _Resolver(root, path)
    focal = resolver.seed(file, path)
    local, _ = import_bindings(file, focal.name, path.name == "__init__.py", anywhere=False, within=function.node)
    uses = _uses(file, function)
    found: dict[tuple[Path, int], list] = {}  # key -> [definition, uses, first use]
    if function.class_nodes:
        own = _Definition(focal, function.class_nodes[-1])
        found[own.key] = [own, float("inf"), -1]
    for name, positions in uses.names.items():
        definition = resolver.dotted(focal, name, local)
        if definition is None or definition.node == function.node or looks_like_test_file(definition.module.path):
            continue
        if definition.module is focal and definition.node.type == "function_definition" and not docstring(
                focal.file, definition.node):
            continue  # the focal context shows the module's function signatures already
        entry = found.setdefault(definition.key, [definition, 0, positions[0]])
        entry[1] += len(positions)
        entry[2] = min(entry[2], positions[0])
    ranked = sorted(found.values(), key=lambda entry: (-entry[1], entry[2], str(entry[0].module.path)))
    symbols = []
    for definition, count, first in ranked:
        file_of = definition.module.file
        skip = function.node.start_byte if definition.module is focal and function.class_nodes else None
        symbols.append(ProjectSymbol(
            relative_label(definition.module.path, root), definition_name(file_of, definition.node),
            python_stub(file_of, definition.node, uses.methods, skip, function.name),
            0 if count == float("inf") else count, first))
    return symbols


# -- what the focal function names ---------------------------------------------------------------

def _uses(file: SourceFile, function: Function) -> _Uses:
    uses = _Uses()
    node = function.node
    attribute_types = _attribute_types(file, function.class_nodes[-1]) if function.class_nodes else {}
    for child in descendants(node, named_only=True):
        if child.type == "call":
            callee = child.child_by_field_name("function")
            if callee is None:
                continue
            if callee.type == "attribute":
                uses.methods[file.node_text(callee.child_by_field_name("attribute"))] += 1
            text = file.node_text(callee)
            if callee.type in ("identifier", "attribute") and _DOTTED_RE.fullmatch(text):
                if text.split(".", 1)[0] not in _SELF_NAMES:
                    uses.add(text, child.start_byte)
        elif child.type == "attribute" and attribute_types:
            owner = child.child_by_field_name("object")
            if owner is not None and owner.type == "identifier" and file.node_text(owner) in _SELF_NAMES:
                for name in attribute_types.get(file.node_text(child.child_by_field_name("attribute")), ()):
                    uses.add(name, child.start_byte)
    for annotation in _annotations(node):
        for name in _NAME_RE.findall(file.node_text(annotation)):
            uses.add(name.rstrip("."), annotation.start_byte)
    return uses


def _annotations(definition: Node) -> list[Node]:
    """The annotations of a function's parameters and its return type."""
    found = []
    parameters = definition.child_by_field_name("parameters")
    for parameter in parameters.named_children if parameters is not None else []:
        if parameter.type in _TYPED_PARAMETERS and parameter.child_by_field_name("type") is not None:
            found.append(parameter.child_by_field_name("type"))
    returns = definition.child_by_field_name("return_type")
    return found + ([returns] if returns is not None else [])


def _attribute_types(file: SourceFile, class_node: Node) -> dict[str, list[str]]:
    """The names in the annotated types of a class's attributes: class-level `x: T`, `self.x: T = ...`
    in `__init__`, and `self.x = param` of an annotated `__init__` parameter."""
    types: dict[str, str] = {}
    body = class_node.child_by_field_name("body")
    for child in body.named_children if body is not None else []:
        assignment = child.named_children[0] if child.type == "expression_statement" and child.named_children else None
        if assignment is not None and assignment.type == "assignment" and assignment.child_by_field_name("type"):
            left = assignment.child_by_field_name("left")
            if left is not None and left.type == "identifier":
                types.setdefault(file.node_text(left), file.node_text(assignment.child_by_field_name("type")))
        definition = child.child_by_field_name("definition") if child.type == "decorated_definition" else child
        is_function = definition is not None and definition.type == "function_definition"
        if is_function and definition_name(file, definition) == "__init__":
            _init_attribute_types(file, definition, types)
    return {name: [found.rstrip(".") for found in _NAME_RE.findall(text)] for name, text in types.items()}


def _init_attribute_types(file: SourceFile, init: Node, types: dict[str, str]) -> None:
    parameters = {}
    listed = init.child_by_field_name("parameters")
    for parameter in listed.named_children if listed is not None else []:
        if parameter.type not in _TYPED_PARAMETERS:
            continue
        name = parameter.child_by_field_name("name") or next(
            (child for child in parameter.named_children if child.type == "identifier"), None)
        typed = parameter.child_by_field_name("type")
        if name is not None and typed is not None:
            parameters[file.node_text(name)] = file.node_text(typed)
    for node in descendants(init, named_only=True):
        if node.type != "assignment":
            continue
        left, right = node.child_by_field_name("left"), node.child_by_field_name("right")
        if left is None or left.type != "attribute" or file.node_text(left.child_by_field_name("object")) != "self":
            continue
        attribute = file.node_text(left.child_by_field_name("attribute"))
        if node.child_by_field_name("type") is not None:
            types.setdefault(attribute, file.node_text(node.child_by_field_name("type")))
        elif right is not None and right.type == "identifier" and file.node_text(right) in parameters:
            types.setdefault(attribute, parameters[file.node_text(right)])


# -- resolving names across the project ----------------------------------------------------------

class _Resolver:
    """Modules of the project by dotted name, found on demand under its import bases (the focal
    file's, `src/`, the root), and names resolved through them."""

    def __init__(self, root: Path, focal_path: Path):
        bases = (python_import_base(focal_path, root), root / "src", root)
        self.bases = [base for base in dict.fromkeys(bases) if base.is_dir()]
        self.root = root
        self._modules: dict[Path, _Module | None] = {}

    def seed(self, file: SourceFile, path: Path) -> _Module:
        """The focal module, from `file` as given (an editor's unsaved text wins over the disk)."""
        module = _module(file, python_module_name(path, self.root), path)
        self._modules[path] = module
        return module

    def module_path(self, name: str) -> Path | None:
        parts = name.split(".")
        if not all(part.isidentifier() for part in parts):
            return None
        for base in self.bases:
            for path in (base.joinpath(*parts[:-1], parts[-1] + ".py"), base.joinpath(*parts, "__init__.py")):
                if path.is_file():
                    return path.resolve()
        return None

    def module(self, path: Path, name: str) -> _Module | None:
        if path not in self._modules:
            file = read_project_file(path)
            self._modules[path] = _module(file, name, path) if file is not None else None
        return self._modules[path]

    def resolve(self, module_name: str, symbol: str, depth: int = 0) -> _Definition | _ModuleRef | None:
        """What `symbol` of the module `module_name` is, following re-exports and star imports."""
        if depth > _MAX_REEXPORT_DEPTH:
            return None
        path = self.module_path(module_name)
        module = self.module(path, module_name) if path is not None else None
        if module is not None:
            found = self.lookup(module, symbol, depth)
            if found is not None:
                return found
        submodule = f"{module_name}.{symbol}"
        return _ModuleRef(submodule) if self.module_path(submodule) is not None else None

    def lookup(self, module: _Module, name: str, depth: int = 0,
               local: dict[str, Binding] | None = None) -> _Definition | _ModuleRef | None:
        """`name` as code in `module` sees it: a function's own import, a definition of the module, or
        what the module's imports bind it to."""
        if local and name in local:
            return self.follow(local[name], depth + 1)
        if name in module.definitions:
            return _Definition(module, module.definitions[name])
        if name in module.bindings:
            return self.follow(module.bindings[name], depth + 1)
        for star in module.stars:
            found = self.resolve(star, name, depth + 1)
            if isinstance(found, _Definition):
                return found
        return None

    def follow(self, binding: Binding, depth: int) -> _Definition | _ModuleRef | None:
        if binding.symbol is None:
            return _ModuleRef(binding.module)  # kept without a file: `import ns` of a namespace package
        return self.resolve(binding.module, binding.symbol, depth)

    def dotted(self, module: _Module, text: str, local: dict[str, Binding]) -> _Definition | None:
        """The definition a dotted name names (`money.round_cents`); a class for `Cart.empty`."""
        head, *rest = text.split(".")
        target = self.lookup(module, head, 0, local)
        while rest and isinstance(target, _ModuleRef):
            target = self.resolve(target.name, rest.pop(0))
        if not isinstance(target, _Definition):
            return None
        if not rest or (len(rest) == 1 and target.node.type == "class_definition"):
            return target
        return None


def _module(file: SourceFile, name: str, path: Path) -> _Module:
    definitions: dict[str, Node] = {}
    top_level = descendants(file.tree.root_node, named_only=True,
                            descend_into=lambda node: node.type in TOP_LEVEL_BLOCKS)
    for node in top_level:
        definition = node.child_by_field_name("definition") if node.type == "decorated_definition" else node
        if definition is None or definition.type not in ("function_definition", "class_definition"):
            continue
        defined = definition_name(file, definition)
        if defined not in definitions or is_secondary(file, definitions[defined]):
            definitions[defined] = definition
    bindings, stars = import_bindings(file, name, path.name == "__init__.py", anywhere=False)
    return _Module(name, path, file, definitions, bindings, tuple(stars))
