"""New Python tests from delivered ones, by changing one argument of their call to the focal function.

A small model writes the happy path it saw in the docstring and rarely finds the input that reaches a
guard (`raise TypeError` for a wrong type, the branch for an empty string, zero or a negative number);
a search-based tool finds those by trying values. This module makes the candidates for such a round,
without the model: for each delivered test, the first top-level statement that calls the focal
function, with one argument replaced by a value of another kind or an edge of its own kind (`0`, `-1`,
`""`, `None`, an empty collection), as `assert <call> == None` after the set-up it needs. The value
`None` is a placeholder: the assured pipeline runs each candidate, observes what the call really gives
or raises, writes that as the expected value or a `pytest.raises` block (`unitune.oracles`), and keeps
a candidate only when it runs lines or branches, or catches mutants, that the tests before it do not.
"""

from __future__ import annotations

import ast
import textwrap

from unitune.python_assertions import parse_test_function
from unitune.test_statements import needed_by, parse_body, render

#: Candidates at most per round: each one is run, observed and measured in the sandbox.
MAX_VARIANTS = 12


def varied_bodies(tests: list[tuple[str, str]], called_as: tuple[str, ...], indent: str,
                  limit: int = MAX_VARIANTS) -> list[str]:
    """Test bodies (indented by `indent`, to follow a `def` line) for the tests `(source, name)`, each
    calling the focal function (named `called_as` in a test) with one argument changed. One argument
    after another and one value after another, so that a `limit` still tries every argument."""
    per_call: list[list[str]] = []
    for source, name in tests:
        variants = _variants_of(source, name, called_as)
        if variants:
            per_call.append(variants)
    bodies = list(dict.fromkeys(_interleaved(per_call)))
    return [textwrap.indent(body, indent) for body in bodies[:limit]]


def _interleaved(lists: list[list]) -> list:
    """The first item of each list, then the second of each, and so on."""
    return [items[turn] for turn in range(max(map(len, lists), default=0)) for items in lists if turn < len(items)]


def _variants_of(source: str, name: str, called_as: tuple[str, ...]) -> list[str]:
    parsed, body = parse_test_function(source), parse_body(source)
    if parsed is None or body is None or _takes_self(parsed[0]):
        return []  # a unittest method runs through its class's set-up: not rebuilt here
    found = next(((statement, call) for statement in body.statements
                  if (call := _focal_call(statement.node, called_as)) is not None), None)
    if found is None:
        return []
    statement, call = found
    prefix = _body_of(render(body, needed_by(body, {statement.index}) - {statement.index}))  # as written
    literals = _literal_names(body.statements[: statement.index])
    by_argument = [[_with_argument(call, position, value)
                    for value in _replacements(literals.get(_name(argument), argument))]
                   for position, argument in _arguments(call)]
    variants = [_without_unused_setup(f"{prefix}assert {ast.unparse(call)} == None\n")
                for call in _interleaved(by_argument)]
    return list(dict.fromkeys(variants))


def _without_unused_setup(body: str) -> str:
    """`body` without the set-up statements its last one no longer needs (the argument a set-up
    statement made may be the one that was replaced)."""
    test = parse_body("def variant():\n" + textwrap.indent(body, "    "))
    if test is None:
        return body
    return _body_of(render(test, needed_by(test, {len(test.statements) - 1})))


def _body_of(test: str) -> str:
    """The body of a one-test source that `render` made, dedented ("" when empty)."""
    definition, _, body = textwrap.dedent(test).partition(":\n")
    return textwrap.dedent(body) if body.strip() else ""


def _literal_names(statements) -> dict[str, ast.expr]:
    """The names the set-up binds to a literal (`amount = 50`): an argument named so is varied as that
    literal is (`0`, `-1`, ...), not as an unknown object."""
    literals: dict[str, ast.expr] = {}
    for statement in statements:
        node = statement.node
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            literals.pop(node.targets[0].id, None)
            if isinstance(node.value, ast.Constant) or (isinstance(node.value, ast.UnaryOp)
                                                          and isinstance(node.value.operand, ast.Constant)):
                literals[node.targets[0].id] = node.value
        else:
            for bound in statement.binds:
                literals.pop(bound, None)
    return literals


def _name(argument: ast.expr) -> str | None:
    return argument.id if isinstance(argument, ast.Name) else None


def _takes_self(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    arguments = function.args.posonlyargs + function.args.args
    return bool(arguments) and arguments[0].arg == "self"


def _focal_call(node: ast.stmt, called_as: tuple[str, ...]) -> ast.Call | None:
    """The first call to the focal function in `node` (by name, or as an attribute: `Version.parse`)
    that has an argument to change."""
    for child in ast.walk(node):
        if isinstance(child, ast.Call) and (child.args or child.keywords):
            function = child.func
            called = function.id if isinstance(function, ast.Name) else (
                function.attr if isinstance(function, ast.Attribute) else None)
            if called in called_as and not any(isinstance(a, ast.Starred) for a in child.args) \
                    and all(keyword.arg for keyword in child.keywords):
                return child
    return None


def _arguments(call: ast.Call) -> list[tuple[int | str, ast.expr]]:
    return [*enumerate(call.args), *((keyword.arg, keyword.value) for keyword in call.keywords)]


def _with_argument(call: ast.Call, position: int | str, value: object) -> ast.Call:
    replacement = ast.Constant(value) if not isinstance(value, ast.expr) else value
    args = [replacement if index == position else argument for index, argument in enumerate(call.args)]
    keywords = [ast.keyword(keyword.arg, replacement if keyword.arg == position else keyword.value)
                for keyword in call.keywords]
    return ast.Call(call.func, args, keywords)


def _replacements(argument: ast.expr) -> list[object]:
    """Values to try instead of `argument`: the edges of its own kind first, then other kinds."""
    if isinstance(argument, ast.UnaryOp) and isinstance(argument.op, ast.USub) \
            and isinstance(argument.operand, ast.Constant) and type(argument.operand.value) in (int, float):
        argument = ast.Constant(-argument.operand.value)
    if isinstance(argument, ast.Constant):
        value = argument.value
        if isinstance(value, bool):
            choices = [not value, None]
        elif isinstance(value, int):
            choices = [0, -1, None, "1"]
        elif isinstance(value, float):
            choices = [0.0, -1.5, None]
        elif isinstance(value, str):
            choices = ["", "x", None, 1]
        elif isinstance(value, bytes):
            choices = [b"", None]
        elif value is None:
            choices = [0, ""]
        else:
            choices = [None]
        return [choice for choice in choices if choice != value or type(choice) is not type(value)]
    if isinstance(argument, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
        empty = {ast.List: "[]", ast.Tuple: "()", ast.Set: "set()", ast.Dict: "{}"}[type(argument)]
        has_items = bool(argument.keys if isinstance(argument, ast.Dict) else argument.elts)
        return ([ast.parse(empty, mode="eval").body] if has_items else []) + [None]
    return [None, "x"]
