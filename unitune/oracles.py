"""Oracle repair for Python tests: observe what the code under test does, then make a failing
test's assertions say it (regression oracles, as Pynguin writes them).

A failing test is run once more as its *observing twin* (`observing_twin`): the same function with
every assertion turned into a call that evaluates both sides in the original order and records
their values (or what they raised) instead of asserting, each simple statement guarded so that
one that raises is recorded and the test goes on, and each `pytest.raises` / `assertRaises` block
recording what its body did. The records (one JSON line each, in the file named by the
`UNITUNE_OBSERVATIONS` variable that the sandbox's rounds set) then drive `repair`:

- an assertion that held is kept as written;
- a failing one whose checked expression returned a value that can be written as a literal gets
  that value as its expected value (`pytest.approx` for floats; `assert x is None`; `assert not x`);
- an expression that raised gets `pytest.raises(T)` (`self.assertRaises` in unittest classes), T
  the built-in base of what was raised, so no import is needed;
- a raises block whose body raised another type names that type; one whose body returned a value
  becomes an assertion of that value;
- what cannot be repaired (a value with no literal form, different values on different passes of a
  loop, a NameError or ImportError) is removed, and a test left with no assertion is dropped.
Each repair is described (for `--json`) and marked in the test by a comment, so a reviewer knows
the expected value was observed, not specified. `mode="drop"` only removes what failed.
What counts as an assertion or a raises block is `unitune.python_assertions`'s to say.
"""

from __future__ import annotations

import ast
import textwrap
from dataclasses import dataclass, field

from unitune.python_assertions import count_assertions, parse_assertion, parse_raises_block, parse_test_function

OBSERVE, DROP, NO_REPAIR = "observe", "drop", "none"
REPAIR_MODES = (OBSERVE, DROP, NO_REPAIR)
OBSERVED_COMMENT = "# expected value observed by running the code (regression oracle)"
RAISED_COMMENT = "# raised when the code was run (regression oracle)"
#: Exceptions that say the test is wrong, not what the code does: never turned into `pytest.raises`.
TEST_FAULTS = frozenset({"NameError", "UnboundLocalError", "ImportError", "ModuleNotFoundError", "SyntaxError",
                         "AssertionError", "RecursionError", "TimeoutError", "NotImplementedError"})
MAX_LITERAL = 300  # characters: longer observed values are not written into a test

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
    return {"type": type(error).__name__, "base": builtin, "mro": [k.__name__ for k in kinds]}

def _unitune_value(thunk):
    try:
        value = thunk()
    except Exception as error:
        return None, {"raised": _unitune_raised_record(error)}
    try:
        text = repr(value)
    except Exception:
        text = None
    return value, {"repr": text if text is None or len(text) <= 4000 else None}

def _unitune_observe(key, left, right, op):
    import operator
    value, first = _unitune_value(left)
    record = {"test": TEST_NAME, "key": key, "left": first}
    holds = False
    if right is not None:
        other, second = _unitune_value(right)
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

def _unitune_statement(key, error):
    _unitune_record({"test": TEST_NAME, "key": key, "raised": _unitune_raised_record(error)})

def _unitune_block(key, error, thunk):
    record = {"test": TEST_NAME, "key": key, "block": True}
    if error is not None:
        record["raised"] = _unitune_raised_record(error)
    elif thunk is not None:
        record.update(_unitune_value(thunk)[1])
    _unitune_record(record)
'''


@dataclass
class Repair:
    """A failing test after repair: its new source (None: dropped) and what was done."""

    source: str | None
    notes: list[str] = field(default_factory=list)


# -- the observing twin --------------------------------------------------------------------------

def observing_twin(source: str, name: str) -> str | None:
    """The observing twin of the test function `source` (indented as in its file), or None when it
    cannot be parsed."""
    parsed = parse_test_function(source)
    if parsed is None:
        return None
    function, indent = parsed
    helpers = ast.parse(_OBSERVER.replace("TEST_NAME", repr(name))).body
    function.body = helpers + _twin_body(function.body, top=True)
    function.decorator_list = [d for d in function.decorator_list if "parametrize" in ast.unparse(d)]
    text = ast.unparse(ast.fix_missing_locations(function))
    return textwrap.indent(text, indent) + "\n"


def _twin_body(body: list[ast.stmt], top: bool) -> list[ast.stmt]:
    result: list[ast.stmt] = []
    for statement in body:
        assertion = parse_assertion(statement)
        if assertion is not None:
            left, right, op, _ = assertion
            call = _call("_unitune_observe", [ast.Constant(_key(statement)), _thunk(left),
                                              _thunk(right) if right is not None else ast.Constant(None),
                                              ast.Constant(op)])
            result.append(ast.Expr(call))
        elif parse_raises_block(statement) is not None:
            result.append(_twin_block(statement))
        elif top and isinstance(statement, (ast.Expr, ast.Assign, ast.AugAssign, ast.AnnAssign)):
            result.append(_guarded(statement))
        else:
            for attribute in ("body", "orelse", "finalbody"):
                inner = getattr(statement, attribute, None)
                if isinstance(inner, list) and inner and not isinstance(statement, (ast.FunctionDef, ast.ClassDef,
                                                                                   ast.AsyncFunctionDef)):
                    setattr(statement, attribute, _twin_body(inner, top=False))
            result.append(statement)
    return result


def _guarded(statement: ast.stmt) -> ast.stmt:
    handler = ast.ExceptHandler(type=ast.Name("Exception", ast.Load()), name="_unitune_error", body=[
        ast.Expr(_call("_unitune_statement", [ast.Constant(_key(statement)), ast.Name("_unitune_error", ast.Load())]))])
    return ast.Try(body=[statement], handlers=[handler], orelse=[], finalbody=[])


def _twin_block(statement: ast.With) -> ast.stmt:
    """try: <body> except Exception as e: record e, else: record what the body's one expression gave."""
    body = _twin_body(statement.body, top=False)
    value = statement.body[0].value if len(statement.body) == 1 and isinstance(statement.body[0], ast.Expr) else None
    key = ast.Constant(_key(statement))
    if value is not None:
        body = []  # the expression runs inside the record's thunk, once
    handler = ast.ExceptHandler(type=ast.Name("Exception", ast.Load()), name="_unitune_error", body=[
        ast.Expr(_call("_unitune_block", [key, ast.Name("_unitune_error", ast.Load()), ast.Constant(None)]))])
    returned = ast.Expr(_call("_unitune_block", [key, ast.Constant(None),
                                                 _thunk(value) if value is not None else ast.Constant(None)]))
    if value is not None:
        # the thunk runs inside `_unitune_value`, which records a raise itself
        return returned
    return ast.Try(body=body or [ast.Pass()], handlers=[handler], orelse=[returned], finalbody=[])


def _thunk(expression: ast.expr) -> ast.Lambda:
    arguments = ast.arguments(posonlyargs=[], args=[], vararg=None, kwonlyargs=[], kw_defaults=[], kwarg=None,
                              defaults=[])
    return ast.Lambda(arguments, expression)


def _call(name: str, args: list[ast.expr]) -> ast.Call:
    return ast.Call(ast.Name(name, ast.Load()), args, [])


def _key(statement: ast.stmt) -> str:
    return f"{statement.lineno}:{statement.col_offset}"


# -- repair --------------------------------------------------------------------------------------

def repair(source: str, name: str, observations: list[dict], mode: str = OBSERVE) -> Repair:
    """The failing test `source` repaired from its twin's `observations` (records of this test only)."""
    parsed = parse_test_function(source)
    if parsed is None or mode == NO_REPAIR:
        return Repair(None, ["failed when run"])
    function, indent = parsed
    dedented = textwrap.dedent(source).split("\n")
    records: dict[str, list[dict]] = {}
    for record in observations:
        records.setdefault(str(record.get("key")), []).append(record)
    statements = [node for node in ast.walk(function) if isinstance(node, ast.stmt) and node is not function]
    if _shares_lines(statements):
        return Repair(None, ["failed when run; two statements share a line, so it was not repaired"])
    edits: list[tuple[int, int, list[str] | None]] = []
    notes: list[str] = []
    arguments = function.args.posonlyargs + function.args.args
    unittest = bool(arguments) and arguments[0].arg == "self"
    for statement in statements:
        seen = records.get(_key(statement))
        if not seen or any(start <= statement.lineno <= end for start, end, _ in edits):
            continue  # not reached, or inside a statement already rewritten
        edit = _repair_statement(statement, seen, mode, dedented, notes, unittest)
        if edit is False:
            return Repair(None, notes)
        if edit is not None:
            edits.append(edit)
    if not edits:
        return Repair(None, notes + ["failed when run, and nothing that failed could be repaired"])
    edits = _without_repeats(edits, dedented, notes)
    for start, end, lines in sorted(edits, key=lambda edit: -edit[0]):
        dedented[start - 1:end] = lines or []
    repaired = textwrap.indent("\n".join(dedented).rstrip("\n") + "\n", indent)
    if not count_assertions(repaired):
        return Repair(None, notes + ["no assertion left after the repair"])
    return Repair(repaired, notes)


def _without_repeats(edits: list[tuple[int, int, list[str] | None]], lines: list[str], notes: list[str]):
    """The edits with a repaired assertion removed where it would repeat the one just before it (a model
    that writes `f(x) == a`, `f(x) == b`, ... gets the same observed value every time: one says it)."""
    kept: list[tuple[int, int, list[str] | None]] = []
    previous: list[str] | None = None  # what the last edit wrote, carried over the repeats it removed
    for start, end, new in sorted(edits, key=lambda edit: edit[0]):
        if kept and new and new == previous and _only_blank(lines[kept[-1][1]:start - 1]):
            kept.append((start, end, None))
            notes.append(f"removed `{_short(new[-1].strip())}`: it repeats the assertion before it")
            continue
        kept.append((start, end, new))
        previous = new
    return kept


def _only_blank(lines: list[str]) -> bool:
    return all(not line.strip() or line.strip().startswith("#") for line in lines)


def _repair_statement(statement, seen, mode, lines, notes, self_style):
    """An edit (first line, last line, new lines or None to remove), None to keep, False to drop the test."""
    text = ast.get_source_segment("\n".join(lines), statement) or ""
    pad = " " * statement.col_offset
    assertion = parse_assertion(statement)
    block = parse_raises_block(statement)
    if assertion is not None:
        if all(record.get("holds") for record in seen):
            return None
        left, right, op, unittest = assertion
        actual_is_left = right is None or _has_call(left) or not _has_call(right)
        actual = left if actual_is_left else right
        side = "left" if actual_is_left else "right"
        actual_text = ast.get_source_segment("\n".join(lines), actual) or ast.unparse(actual)
        outcome = _consistent([record.get(side) or {} for record in seen])
        new = None if mode == DROP else _oracle(actual_text, outcome, unittest)
        if new is None:
            notes.append(f"removed `{_short(text)}`: it failed and its value cannot be written as a literal"
                         if mode == OBSERVE else f"removed `{_short(text)}`: it failed")
            keep = [pad + line for line in actual_text.split("\n")] if _has_call(actual) and "raised" not in outcome else None
            return statement.lineno, statement.end_lineno, keep
        comment, code = new
        notes.append(f"`{_short(text)}` now expects {outcome['raised']['base']}, as raised when run" if "raised" in outcome
                     else f"`{_short(text)}` now expects `{_short(code)}`, the value observed when run")
        return statement.lineno, statement.end_lineno, [pad + comment] + [pad + line for line in code.split("\n")]
    if block is not None:
        expected, unittest = block
        record = seen[0]
        raised = record.get("raised")
        wanted = ast.unparse(expected)
        if raised and wanted.split(".")[-1] in raised.get("mro", ()):
            return None
        if mode == DROP:
            notes.append(f"removed a `{_short(wanted)}` check: the code did not raise it")
            return statement.lineno, statement.end_lineno, None
        if raised and raised.get("type") not in TEST_FAULTS:
            head = lines[statement.lineno - 1].replace(wanted, raised["base"], 1)
            notes.append(f"expects {raised['base']} instead of {wanted}, as raised when run")
            return statement.lineno, statement.lineno, [pad + RAISED_COMMENT, head]
        body = statement.body
        if not raised and len(body) == 1 and isinstance(body[0], ast.Expr):
            expression = ast.get_source_segment("\n".join(lines), body[0].value) or ast.unparse(body[0].value)
            new = _oracle(expression, record, unittest)
            if new is not None:
                notes.append(f"`{_short(expression)}` did not raise {wanted}; now expects its observed value")
                return statement.lineno, statement.end_lineno, [pad + new[0]] + [pad + l for l in new[1].split("\n")]
        notes.append(f"removed a `{_short(wanted)}` check that did not hold")
        return statement.lineno, statement.end_lineno, None
    raised = seen[0].get("raised")
    if raised is None:
        return None
    if isinstance(statement, ast.Expr) and raised.get("type") not in TEST_FAULTS and mode == OBSERVE:
        context = "self.assertRaises" if self_style else "pytest.raises"
        notes.append(f"`{_short(text)}` raised {raised['type']} when run; now expected to")
        return statement.lineno, statement.end_lineno, [pad + RAISED_COMMENT, f"{pad}with {context}({raised['base']}):"] + [
            pad + "    " + line for line in text.split("\n")]
    if isinstance(statement, ast.Expr) and mode == DROP:
        notes.append(f"removed `{_short(text)}`: it raised {raised.get('type')}")
        return statement.lineno, statement.end_lineno, None
    notes.append(f"`{_short(text)}` raised {raised.get('type')} when run; the test was dropped")
    return False


def _oracle(actual: str, outcome: dict, unittest: bool) -> tuple[str, str] | None:
    """(comment, the assertion) that `actual` gives what was observed, or None."""
    raised = outcome.get("raised")
    if raised:
        if raised.get("type") in TEST_FAULTS:
            return None
        body = "\n".join("    " + line for line in actual.split("\n"))
        context = "self.assertRaises" if unittest else "pytest.raises"
        return RAISED_COMMENT, f"with {context}({raised['base']}):\n{body}"
    literal = _literal(outcome.get("repr"))
    if literal is None:
        return None
    value, text = literal
    if unittest:
        if value is None:
            return OBSERVED_COMMENT, f"self.assertIsNone({actual})"
        if isinstance(value, bool):
            return OBSERVED_COMMENT, f"self.assert{value}({actual})"
        method = "assertAlmostEqual" if isinstance(value, float) else "assertEqual"
        return OBSERVED_COMMENT, f"self.{method}({actual}, {text})"
    if value is None or isinstance(value, bool):
        return OBSERVED_COMMENT, f"assert {actual} is {text}"
    if _needs_approx(value):
        return OBSERVED_COMMENT, f"assert {actual} == pytest.approx({text})"
    return OBSERVED_COMMENT, f"assert {actual} == {text}"


def _literal(text: str | None):
    """(value, its literal) when `text` (a repr) round-trips as a Python literal."""
    if text is None or len(text) > MAX_LITERAL:
        return None
    if text == "set()":
        return set(), text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return (value, text) if repr(value) == text else None


def _needs_approx(value) -> bool:
    if isinstance(value, float):
        return True
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    items = list(items)
    return bool(items) and any(isinstance(v, float) for v in items) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in items)


def _consistent(outcomes: list[dict]) -> dict:
    """The one outcome of an expression observed several times (a loop), else {} (not repairable)."""
    first = outcomes[0] if outcomes else {}
    return first if all(o == first for o in outcomes) else {}


def _has_call(node: ast.AST) -> bool:
    return any(isinstance(inner, ast.Call) for inner in ast.walk(node))


def _shares_lines(statements: list[ast.stmt]) -> bool:
    starts: dict[int, int] = {}
    for statement in statements:
        starts[statement.lineno] = starts.get(statement.lineno, 0) + 1
    simple = [s for s in statements if not hasattr(s, "body")]
    return any(starts[s.lineno] > 1 for s in simple)


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
