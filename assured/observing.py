"""The observing twin of a Python test: the same test, rewritten to record what each statement and
each assertion really did instead of failing at the first surprise.

In the twin:
- every top-level statement is announced (a `begin` record) and, where coverage.py is measuring,
  gets a coverage context of its own (`<node id>@<key>`), so coverage is known per statement;
- every assertion (`assert`, unittest's `self.assert*`) evaluates both sides in the original order
  and records their values (or what they raised) and whether the assertion holds, and goes on;
- every `pytest.raises` / `assertRaises` block records what its body raised, or what its single
  expression returned;
- every other top-level statement is guarded: what it raises is recorded and the twin goes on
  (an `AttributeError` records the object's close names, so a misspelt method can be repaired);
  a `TimeoutError` (the sandbox's limit per test) is recorded and ends the twin.
The records (one JSON line each, in the file named by `UNITUNE_OBSERVATIONS`, which the sandbox's
observing rounds set) drive oracle repair (`unitune.assured.oracles`) on the code as it is, and minimization
(`unitune.assured.minimize`) on the code and on its mutants. A statement is named by its key, `line:column`
in the dedented test, as `unitune.assured.test_statements` names it.
"""

from __future__ import annotations

import ast
import textwrap

from unitune.assured.python_assertions import parse_assertion, parse_raises_block, parse_test_function

#: Separates a test's node id from a statement's key in a coverage context name.
CONTEXT_SEPARATOR = "@"

_OBSERVER = '''
def _unitune_record(record):
    import json, os
    path = os.environ.get("UNITUNE_OBSERVATIONS")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\\n")

def _unitune_raised_record(error):
    kinds = type(error).__mro__
    builtin = next((k.__name__ for k in kinds if k.__module__ == "builtins"), "Exception")
    record = {"type": type(error).__name__, "base": builtin, "mro": [k.__name__ for k in kinds],
              "message": str(error)[:200]}
    if isinstance(error, AttributeError) and getattr(error, "name", None) and hasattr(error, "obj"):
        import difflib
        try:
            names = [n for n in dir(error.obj) if not n.startswith("__")]
        except Exception:
            names = []
        record["attribute"] = error.name
        record["close"] = difflib.get_close_matches(error.name, names, n=3, cutoff=0.7)
    return record

def _unitune_begin(key):
    import os
    _unitune_record({"test": TEST_NAME, "key": key, "begin": True})
    try:
        import coverage
        current = coverage.Coverage.current()
    except Exception:
        current = None
    if current is not None:
        node = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
        current.switch_context(node + SEPARATOR + key)

def _unitune_value(thunk):
    try:
        value = thunk()
    except Exception as error:
        return None, {"raised": _unitune_raised_record(error)}, error
    try:
        text = repr(value)
    except Exception:
        text = None
    outcome = {"repr": text if text is None or len(text) <= 4000 else None}
    kind = type(value)
    if kind.__str__ is not object.__str__ or kind.__repr__ is not object.__repr__:  # its own text, not an address
        try:
            shown = str(value)
        except Exception:
            shown = None
        if shown is not None and len(shown) <= 4000 and " at 0x" not in shown:
            outcome["str"] = shown
    return value, outcome, None

def _unitune_observe(key, left, right, op):
    import operator
    value, first, error = _unitune_value(left)
    record = {"test": TEST_NAME, "key": key, "left": first}
    holds = False
    if right is not None and not isinstance(error, TimeoutError):
        other, second, error = _unitune_value(right)
        record["right"] = second
        if "raised" not in first and "raised" not in second:
            compare = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
                       ">": operator.gt, ">=": operator.ge, "is": operator.is_, "is not": operator.is_not,
                       "in": lambda a, b: a in b, "not in": lambda a, b: a not in b,
                       "approx": lambda a, b: round(a - b, 7) == 0,
                       "count": lambda a, b: sorted(a) == sorted(b)}.get(op)
            try:
                holds = bool(compare(value, other)) if compare else False
            except Exception:
                holds = False
    elif "raised" not in first:
        try:
            holds = {"truth": bool(value), "falsity": not value, "none": value is None,
                     "not none": value is not None}.get(op, False)
        except Exception:
            holds = False
    record["holds"] = holds
    _unitune_record(record)
    if isinstance(error, TimeoutError):
        raise error

def _unitune_statement(key, error):
    _unitune_record({"test": TEST_NAME, "key": key, "raised": _unitune_raised_record(error)})
    if isinstance(error, TimeoutError):
        raise error

def _unitune_block(key, error, thunk):
    record = {"test": TEST_NAME, "key": key, "block": True}
    if error is not None:
        record["raised"] = _unitune_raised_record(error)
    elif thunk is not None:
        _, outcome, error = _unitune_value(thunk)
        record.update(outcome)
    _unitune_record(record)
    if isinstance(error, TimeoutError):
        raise error
'''


def observing_twin(source: str, name: str) -> str | None:
    """The observing twin of the test function `source` (indented as in its file), or None when it
    cannot be parsed."""
    parsed = parse_test_function(source)
    if parsed is None:
        return None
    function, indent = parsed
    helpers = ast.parse(_OBSERVER.replace("TEST_NAME", repr(name)).replace(
        "SEPARATOR", repr(CONTEXT_SEPARATOR))).body
    function.body = helpers + _twin_body(function.body, top=True)
    function.decorator_list = [d for d in function.decorator_list if "parametrize" in ast.unparse(d)]
    text = ast.unparse(ast.fix_missing_locations(function))
    return textwrap.indent(text, indent) + "\n"


def statement_key(statement: ast.stmt) -> str:
    """A statement's name in the records: `line:column` in the dedented test."""
    return f"{statement.lineno}:{statement.col_offset}"


def _twin_body(body: list[ast.stmt], top: bool) -> list[ast.stmt]:
    result: list[ast.stmt] = []
    for statement in body:
        if top:
            result.append(ast.Expr(_call("_unitune_begin", [ast.Constant(statement_key(statement))])))
        assertion = parse_assertion(statement)
        if assertion is not None:
            left, right, op, _ = assertion
            call = _call("_unitune_observe", [ast.Constant(statement_key(statement)), _thunk(left),
                                              _thunk(right) if right is not None else ast.Constant(None),
                                              ast.Constant(op)])
            result.append(ast.Expr(call))
        elif parse_raises_block(statement) is not None:
            result.append(_twin_block(statement))
        else:
            for attribute in ("body", "orelse", "finalbody"):
                inner = getattr(statement, attribute, None)
                if isinstance(inner, list) and inner and not isinstance(statement, (ast.FunctionDef, ast.ClassDef,
                                                                                   ast.AsyncFunctionDef)):
                    setattr(statement, attribute, _twin_body(inner, top=False))
            result.append(_guarded(statement) if top else statement)
    return result


def _guarded(statement: ast.stmt) -> ast.stmt:
    handler = ast.ExceptHandler(type=ast.Name("Exception", ast.Load()), name="_unitune_error", body=[
        ast.Expr(_call("_unitune_statement", [ast.Constant(statement_key(statement)),
                                              ast.Name("_unitune_error", ast.Load())]))])
    return ast.Try(body=[statement], handlers=[handler], orelse=[], finalbody=[])


def _twin_block(statement: ast.With) -> ast.stmt:
    """try: <body> except Exception as e: record e, else: record what the body's one expression gave."""
    key = ast.Constant(statement_key(statement))
    if len(statement.body) == 1 and isinstance(statement.body[0], ast.Expr):
        # the expression runs inside the record's thunk, once; what it raises is recorded there
        return ast.Expr(_call("_unitune_block", [key, ast.Constant(None), _thunk(statement.body[0].value)]))
    body = _twin_body(statement.body, top=False)
    handler = ast.ExceptHandler(type=ast.Name("Exception", ast.Load()), name="_unitune_error", body=[
        ast.Expr(_call("_unitune_block", [key, ast.Name("_unitune_error", ast.Load()), ast.Constant(None)]))])
    returned = ast.Expr(_call("_unitune_block", [key, ast.Constant(None), ast.Constant(None)]))
    return ast.Try(body=body or [ast.Pass()], handlers=[handler], orelse=[returned], finalbody=[])


def _thunk(expression: ast.expr) -> ast.Lambda:
    arguments = ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None,
                              defaults=[])
    return ast.Lambda(arguments, expression)


def _call(name: str, args: list[ast.expr]) -> ast.Call:
    return ast.Call(ast.Name(name, ast.Load()), args, [])
