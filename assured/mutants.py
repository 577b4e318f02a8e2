"""Simple mutants of a Python function, for the mutation score: does a passing test notice when
the code under test is wrong?

Each mutant changes one spot of the focal function with a classic operator: a comparison flipped
(`<` to `<=`, `==` to `!=`), an arithmetic operator swapped (`+` to `-`, `*` to `/`), a boolean
operator swapped (`and` to `or`), a condition negated, a number constant changed by one, or a returned
value replaced by None. Mutants are picked deterministically, spread over the function.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass

_COMPARE_SWAP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                 ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
_BINARY_SWAP = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult,
                ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult}
_BOOL_SWAP = {ast.And: ast.Or, ast.Or: ast.And}


@dataclass(frozen=True)
class Mutant:
    description: str
    source: str  # the whole module with the one change


def _sites(function: ast.AST) -> list[tuple[str, ast.AST]]:
    sites = []
    for node in ast.walk(function):
        if isinstance(node, ast.Compare) and type(node.ops[0]) in _COMPARE_SWAP:
            sites.append(("compare", node))
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY_SWAP:
            sites.append(("binary", node))
        elif isinstance(node, ast.BoolOp) and type(node.op) in _BOOL_SWAP:
            sites.append(("bool", node))
        elif isinstance(node, (ast.If, ast.While)):
            sites.append(("negate", node))
        elif isinstance(node, ast.Constant) and type(node.value) in (int, float) and not isinstance(node.value, bool):
            sites.append(("constant", node))
        elif isinstance(node, ast.Return) and node.value is not None:
            sites.append(("return", node))
    return sites


def _apply(kind: str, node: ast.AST) -> str:
    if kind == "compare":
        old = type(node.ops[0])
        node.ops[0] = _COMPARE_SWAP[old]()
        return f"line {node.lineno}: {old.__name__} -> {type(node.ops[0]).__name__}"
    if kind == "binary":
        old = type(node.op)
        node.op = _BINARY_SWAP[old]()
        return f"line {node.lineno}: {old.__name__} -> {type(node.op).__name__}"
    if kind == "bool":
        old = type(node.op)
        node.op = _BOOL_SWAP[old]()
        return f"line {node.lineno}: {old.__name__} -> {type(node.op).__name__}"
    if kind == "negate":
        node.test = ast.UnaryOp(op=ast.Not(), operand=node.test)
        return f"line {node.lineno}: condition negated"
    if kind == "constant":
        node.value = node.value + 1
        return f"line {node.lineno}: constant + 1"
    node.value = ast.Constant(value=None)
    return f"line {node.lineno}: return None"


def mutants(module_source: str, function_name: str, limit: int = 6) -> list[Mutant]:
    """Up to `limit` mutants of `function_name` in `module_source`: a top-level function, or a
    method by its qualified name (`Account.deposit`)."""
    try:
        tree = ast.parse(module_source)
    except SyntaxError:
        return []
    function = _find(tree, function_name)
    if function is None:
        return []
    site_count = len(_sites(function))
    if site_count == 0:
        return []
    # Spread the picks over the function rather than taking the first few spots.
    picks = sorted({round(i * (site_count - 1) / max(1, limit - 1)) for i in range(min(limit, site_count))})
    found: list[Mutant] = []
    seen: set[str] = set()
    for pick in picks:
        mutated = copy.deepcopy(tree)
        kind, node = _sites(_find(mutated, function_name))[pick]
        description = _apply(kind, node)
        ast.fix_missing_locations(mutated)
        source = ast.unparse(mutated)
        if source not in seen:
            seen.add(source)
            found.append(Mutant(description, source))
    return found


def _find(tree: ast.Module, qualified_name: str) -> ast.AST | None:
    """The function or method `qualified_name` (`Outer.Inner.method`) defined in `tree`."""
    scope: ast.AST = tree
    for part in qualified_name.split("."):
        scope = next((node for node in getattr(scope, "body", []) if isinstance(
            node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == part), None)
        if scope is None:
            return None
    return scope if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)) else None
