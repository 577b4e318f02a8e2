"""The directions between unitune's homes (docs/architecture.md), read from every module's imports,
those inside functions included: the core imports none of the parts (the command line's entry point,
`unitune/cli.py`, reaches each subcommand lazily), the language server never imports training or
evaluation, no two packages import each other through any path, and no module imports another's
private name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
CORE = "unitune"
#: the one module of the core that may import the parts: it dispatches to each subcommand
CORE_EXCEPTIONS = {"unitune.cli"}
#: what each package may import besides itself: the table of docs/architecture.md
MAY_IMPORT = {
    CORE: set(),
    "unitune.adapters": {CORE},
    "unitune.assured": {CORE},
    "unitune.runtime": {"unitune.adapters", CORE},
    "unitune.generation": {"unitune.runtime", "unitune.assured", "unitune.adapters", CORE},
    "unitune.training": {"unitune.runtime", "unitune.adapters", CORE},
    "unitune.evaluation": {"unitune.training", "unitune.generation", "unitune.runtime", "unitune.assured",
                           "unitune.adapters", CORE},
    "unitune.server": {"unitune.generation", "unitune.runtime", "unitune.adapters", CORE},
}


def _modules() -> dict[str, Path]:
    """Every module by its import name, as pyproject.toml maps the folders."""
    found = {}
    for package, folder in PACKAGE_DIRS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join([package, *(part for part in parts if part != "__init__")])
            if name.startswith(CORE + ".models"):
                continue
            found.setdefault(name, path)
    return found


MODULES = _modules()


def home_of(module: str) -> str:
    """The top-level part a module belongs to: `unitune.runtime.loading` -> `unitune.runtime`."""
    parts = [package for package in PACKAGE_DIRS if package != CORE and (module == package or module.startswith(package + "."))]
    return max(parts, key=len) if parts else CORE


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names imported from it, line) for each import of a unitune module in the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.split(".")[0] == CORE:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in MODULES:  # `from unitune.assured import sandbox`
                    found.append((submodule, [], node.lineno))
                else:
                    found.append((node.module, [alias.name], node.lineno))
        elif isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names if alias.name.split(".")[0] == CORE]
    return found


def _edges() -> list[tuple[str, str, list[str], str]]:
    """(importing module, imported module, names, where) for every import between unitune's modules."""
    return [(module, imported, names, f"{path.relative_to(ROOT)}:{line}")
            for module, path in MODULES.items() for imported, names, line in _imports(path)]


EDGES = _edges()


def test_the_homes_are_read_from_pyproject():
    assert home_of("unitune.runtime.loading") == "unitune.runtime"
    assert home_of("unitune.assured.sandbox.driver") == "unitune.assured"
    assert home_of("unitune.focal") == CORE
    assert {"unitune.runtime", "unitune.generation", "unitune.assured", "unitune.commands"} <= set(PACKAGE_DIRS)
    assert len(EDGES) > 500


def test_the_core_imports_none_of_the_parts():
    wrong = [f"{where}: {module} imports {imported}" for module, imported, _, where in EDGES
             if home_of(module) == CORE and module not in CORE_EXCEPTIONS and home_of(imported) != CORE]
    assert not wrong, "\n".join(wrong)


def test_the_language_server_never_imports_training_evaluation_or_the_command_line():
    wrong = [f"{where}: {module} imports {imported}" for module, imported, _, where in EDGES
             if home_of(module) == "unitune.server"
             and home_of(imported) in {"unitune.training", "unitune.evaluation", "unitune.commands"}]
    assert not wrong, "\n".join(wrong)


def test_each_package_imports_only_what_the_architecture_allows():
    assert set(MAY_IMPORT) | {"unitune.commands"} == set(PACKAGE_DIRS), "a package the table does not place"
    wrong = [f"{where}: {module} imports {imported}" for module, imported, _, where in EDGES
             if module not in CORE_EXCEPTIONS and home_of(module) in MAY_IMPORT
             and home_of(imported) not in MAY_IMPORT[home_of(module)] | {home_of(module)}]
    assert not wrong, "\n".join(wrong)


def test_no_two_packages_import_each_other():
    graph: dict[str, dict[str, str]] = {}
    for module, imported, _, where in EDGES:
        source, target = home_of(module), home_of(imported)
        if source != target and module not in CORE_EXCEPTIONS:
            graph.setdefault(source, {}).setdefault(target, f"{where}: {module} imports {imported}")

    def path_between(start: str, goal: str) -> list[str] | None:
        seen, stack = set(), [(start, [])]
        while stack:
            node, trail = stack.pop()
            for following, why in graph.get(node, {}).items():
                if following == goal:
                    return trail + [why]
                if following not in seen:
                    seen.add(following)
                    stack.append((following, trail + [why]))
        return None

    cycles = []
    for package in sorted(graph):
        cycle = path_between(package, package)
        if cycle:
            cycles.append(f"{package} reaches itself:\n  " + "\n  ".join(cycle))
    assert not cycles, "\n".join(cycles)


def test_no_module_imports_another_modules_private_name():
    wrong = [f"{where}: {module} imports {name} from {imported}" for module, imported, names, where in EDGES
             for name in names if name.startswith("_") and not name.startswith("__") and imported != module]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("module", ["unitune.server.server", "unitune.cli", "unitune.focal"])
def test_the_parts_the_editor_waits_on_start_without_torch(module):
    """Nothing imports torch at module import time in the core or the server: they answer code actions
    before any model is loaded."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", f"import sys, {module}; print('torch' in sys.modules)"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"


def test_every_imported_unitune_module_exists():
    """An import inside a function runs only when the function does: one of a module that was moved away
    would fail in front of a user, not at start-up."""
    missing = [f"{where}: {module} imports {imported}, which does not exist" for module, imported, _, where in EDGES
               if imported not in MODULES]
    assert not missing, "\n".join(missing)
