"""The Python code of a repository as importable modules: what each module defines and imports, and
where an imported name really lives.

Mining needs this to pair a test with a function it reaches through an import: `from pkg import func`
where `pkg/__init__.py` only re-exports `from .sub import func` resolves to `func` in `pkg/sub.py`.
Only code files are modules here; test files, and files in test folders (helpers, conftest), are not,
so nothing they define can become a focal function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tree_sitter import Node

from unitune.focal import FUNCTION, Function
from unitune.project_layout import python_module_name
from unitune.python_imports import Binding, import_bindings
from unitune.source import SourceFile
from unitune.training.matching import ParsedFiles

MODULE = "module"
CLASS = "class"
_MAX_REEXPORT_DEPTH = 8  # re-export chains longer than this are cycles or not worth following
_DOTTED_RE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
# Later definitions of a name that are not the function a test exercises.
_SECONDARY_DECORATORS = (".setter", ".deleter", "overload", "typing.overload")


@dataclass(frozen=True)
class Target:
    """Where a name resolves: a module, a function, or a class (then `name` is the class name)."""

    kind: str  # MODULE, FUNCTION or CLASS
    module: str = ""
    path: Path | None = None
    function: Function | None = None
    name: str = ""


@dataclass
class ModuleSymbols:
    """The top-level names of one module."""

    functions: dict[str, Function] = field(default_factory=dict)
    classes: dict[str, dict[str, Function]] = field(default_factory=dict)  # class -> its methods by name
    imports: dict[str, Binding] = field(default_factory=dict)
    star_imports: list[str] = field(default_factory=list)


def primary_functions(functions: list[Function]) -> list[Function]:
    """`functions` with one definition per qualified name: a property's getter rather than its
    setter, an implementation rather than its `@overload` stubs, else the first definition."""
    chosen: dict[str, Function] = {}
    for function in functions:
        current = chosen.get(function.qualified_name)
        if current is None or (_is_secondary(current) and not _is_secondary(function)):
            chosen[function.qualified_name] = function
    keep = set(map(id, chosen.values()))
    return [function for function in functions if id(function) in keep]


def _is_secondary(function: Function) -> bool:
    return any(d.endswith(_SECONDARY_DECORATORS) for d in function.decorators)


class PythonModules:
    """The code files of a repository by module name, their symbols, and name resolution."""

    def __init__(self, root: Path, code_files: list[Path], parsed: ParsedFiles):
        self.root = root
        self.parsed = parsed
        self.by_name: dict[str, Path] = {}
        self.names: dict[Path, str] = {}
        for path in code_files:
            name = python_module_name(path, root)
            self.names[path] = name
            self.by_name.setdefault(name, path)
        self._symbols: dict[Path, ModuleSymbols] = {}

    def module_name(self, path: Path) -> str:
        return self.names.get(path) or python_module_name(path, self.root)

    def functions(self, path: Path) -> list[Function]:
        return primary_functions(self.parsed.functions(path))

    def symbols(self, path: Path) -> ModuleSymbols:
        if path not in self._symbols:
            symbols = ModuleSymbols()
            file = self.parsed.get(path)
            if file is not None:
                for function in self.functions(path):
                    if not function.class_path and function.kind == FUNCTION:
                        symbols.functions.setdefault(function.name, function)
                    elif len(function.class_path) == 1:
                        symbols.classes.setdefault(function.class_path[0], {}).setdefault(function.name, function)
                for node in _top_level_classes(file):
                    symbols.classes.setdefault(file.node_text(node.child_by_field_name("name")), {})
                symbols.imports, symbols.star_imports = import_bindings(
                    file, self.module_name(path), path.name == "__init__.py", anywhere=False)
            self._symbols[path] = symbols
        return self._symbols[path]

    def resolve(self, module: str, symbol: str, depth: int = 0) -> Target | None:
        """What `symbol` of `module` is, following re-exports (`from .sub import func`) and star imports."""
        if depth > _MAX_REEXPORT_DEPTH:
            return None
        path = self.by_name.get(module)
        if path is not None:
            symbols = self.symbols(path)
            if symbol in symbols.functions:
                return Target(FUNCTION, module, path, symbols.functions[symbol], symbol)
            if symbol in symbols.classes:
                return Target(CLASS, module, path, None, symbol)
            binding = symbols.imports.get(symbol)
            if binding is not None:
                found = self.resolve_binding(binding, depth + 1)
                if found is not None:
                    return found
            for star in symbols.star_imports:
                found = self.resolve(star, symbol, depth + 1)
                if found is not None:
                    return found
        submodule = f"{module}.{symbol}"
        if submodule in self.by_name:
            return Target(MODULE, submodule, self.by_name[submodule])
        return None

    def resolve_binding(self, binding: Binding, depth: int = 0) -> Target | None:
        if binding.symbol is None:
            # Kept without a file too: `import ns` of a namespace package still leads to `ns.mod`.
            return Target(MODULE, binding.module, self.by_name.get(binding.module))
        return self.resolve(binding.module, binding.symbol, depth)

    def method(self, target: Target, name: str) -> Function | None:
        """Method `name` of the class `target` (defined in that class itself)."""
        if target.kind != CLASS or target.path is None:
            return None
        return self.symbols(target.path).classes.get(target.name, {}).get(name)


def is_dotted_name(text: str) -> bool:
    return bool(_DOTTED_RE.fullmatch(text))


def _top_level_classes(file: SourceFile) -> list[Node]:
    found = []
    for node in file.tree.root_node.named_children:
        definition = node.child_by_field_name("definition") if node.type == "decorated_definition" else node
        if definition is not None and definition.type == "class_definition":
            found.append(definition)
    return found
