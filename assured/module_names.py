"""The names a Python module binds: at its top level, for a test to import from the focal module
(`top_level_names`), and anywhere, for the checks to know what a test file already defines
(`module_names`)."""

from __future__ import annotations

import ast


def top_level_names(module_source: str) -> set[str]:
    """The names a module binds at its top level, that a test may import from it: its functions and
    classes (an exception class with no method too), its assignments (private constants such as
    `_COOKIE_LENGTH` too), and what it imports (`import datetime as dt` binds `dt`)."""
    try:
        tree = ast.parse(module_source)
    except (SyntaxError, ValueError, RecursionError):
        return set()
    names: set[str] = set()
    pending = list(tree.body)
    while pending:  # top level, and the blocks a module's top level runs (`if`, `try`, `with`)
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Import):
            names.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.update(alias.asname or alias.name for alias in node.names if alias.name != "*")
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(inner.id for target in targets for inner in ast.walk(target)
                         if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store))
        elif isinstance(node, (ast.If, ast.Try, ast.With, ast.ExceptHandler)):
            pending.extend(ast.iter_child_nodes(node))
    return names


def module_names(context: str) -> tuple[set[str], bool]:
    """(names the module `context` binds at top level, whether it has a star import)."""
    try:
        tree = ast.parse(context)
    except (SyntaxError, ValueError):
        return set(), True  # cannot tell: assume everything resolves
    names: set[str] = set()
    star = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.asname or alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                star = star or alias.name == "*"
                names.add(alias.asname or alias.name)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.For, ast.With, ast.If, ast.Try)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Name) and isinstance(inner.ctx, ast.Store):
                    names.add(inner.id)
    return names, star
