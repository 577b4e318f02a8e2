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
  an object with no literal form but a text of its own (its class defines `__str__` or `__repr__`)
  is checked by that text (`assert str(v.bump_patch()) == '3.4.6'`);
- an expression that raised gets `pytest.raises(T)` (`self.assertRaises` in unittest classes), T
  the built-in base of what was raised, so no import is needed;
- a raises block whose body raised another type names that type; one whose body returned a value
  becomes an assertion of that value;
- what cannot be repaired (a value with neither a literal form nor a text of its own, different values
  on different passes of a loop, a NameError or ImportError) is removed, and a test left with no
  assertion is dropped.
Each repair is described (for `--json`) and marked in the test by a comment, so a reviewer knows
the expected value was observed, not specified. `mode="drop"` only removes what failed.
What counts as an assertion or a raises block is `unitune.assured.python_assertions`'s to say.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass, field

from unitune.assured.observing import observing_twin, statement_key  # noqa: F401  (the twin is part of repair's interface)
from unitune.assured.python_assertions import count_assertions, parse_assertion, parse_raises_block, parse_test_function
from unitune.assured.test_statements import dependents, parse_body
from unitune.settings import DROP, NO_REPAIR, OBSERVE

OBSERVED_COMMENT = "# expected value observed by running the code (regression oracle)"
RAISED_COMMENT = "# raised when the code was run (regression oracle)"
#: Exceptions that say the test is wrong, not what the code does: never turned into `pytest.raises`.
TEST_FAULTS = frozenset({"NameError", "UnboundLocalError", "ImportError", "ModuleNotFoundError", "SyntaxError",
                         "AssertionError", "RecursionError", "TimeoutError", "NotImplementedError"})
MAX_LITERAL = 300  # characters: longer observed values are not written into a test

@dataclass
class Repair:
    """A failing test after repair: its new source (None: dropped) and what was done."""

    source: str | None
    notes: list[str] = field(default_factory=list)


# -- repair --------------------------------------------------------------------------------------

def repair(source: str, name: str, observations: list[dict], mode: str = OBSERVE,
           failed_line: int | None = None) -> Repair:
    """The failing test `source` repaired from its twin's `observations` (records of this test only).

    Each statement the twin saw fail is repaired where it can be (an observed value, an expected
    raise, a misspelt attribute's unique close name), and otherwise removed with the statements that
    depend on it; the repaired test is run again by the caller, until it passes. An expected value
    written by an earlier repair that fails again was contradicted (the code does not give one
    value there): it is removed, not repaired again. `failed_line` is the line of the test where the
    run failed: a statement that failed there although its twin saw nothing wrong gives different
    results from run to run, and is removed with what depends on it."""
    body = parse_body(source)
    if body is None or mode == NO_REPAIR:
        return Repair(None, ["failed when run"])
    function = parse_test_function(source)[0]
    records: dict[str, list[dict]] = {}
    for record in observations:
        if not record.get("begin"):
            records.setdefault(str(record.get("key")), []).append(record)
    statements = _own_statements(function)
    if _shares_lines(statements):
        return Repair(None, ["failed when run; two statements share a line, so it was not repaired"])
    lines = body.lines
    edits: list[tuple[int, int, list[str] | None]] = []
    removed: set[int] = set()  # top-level statements to remove with what depends on them
    notes: list[str] = []
    arguments = function.args.posonlyargs + function.args.args
    unittest = bool(arguments) and arguments[0].arg == "self"
    gone: set[int] = set()  # `removed` and what depends on it
    for statement in sorted(statements, key=lambda node: (node.lineno, node.col_offset)):
        seen = records.get(statement_key(statement))
        top = body.enclosing(statement.lineno)
        if not seen or any(start <= statement.lineno <= end for start, end, _ in edits) or (top and top.index in gone):
            continue  # not reached, inside a statement already rewritten, or going with what it depends on
        if _marked(lines, statement) and not _held(statement, seen):
            notes.append(f"removed `{_short(_text(lines, statement))}`: the value an earlier run gave was "
                         "contradicted when run again")
            edits.append((statement.lineno - 1, statement.end_lineno, None))  # with its marker comment
            continue
        edit = _repair_statement(statement, seen, mode, lines, notes, unittest)
        if edit is REMOVE_WITH_DEPENDENTS:
            if top is not None:
                removed.add(top.index)
                gone = dependents(body, removed)
        elif edit is not None:
            edits.append(edit)
    failed = body.enclosing(failed_line) if failed_line else None
    if failed is not None and failed.index not in removed and not any(
            start <= failed.first_line <= end or failed.first_line <= start <= failed.last_line for start, end, _ in edits):
        what = ("the value an earlier run gave was contradicted when run again" if _marked(lines, failed.node)
                else "it failed when run, but not when observed: its result changes from run to run")
        notes.append(f"removed `{_short(_text(lines, failed.node))}`: {what}")
        removed.add(failed.index)
    if removed:
        gone = dependents(body, removed)
        if len(gone) > len(removed):
            notes.append(f"removed {len(gone) - len(removed)} statement(s) that depend on what was removed")
        for statement in body.statements:
            if statement.index in gone and not any(s <= statement.first_line <= e for s, e, _ in edits):
                edits.append((_with_comments(lines, statement.first_line), statement.last_line, None))
    if not edits:
        return Repair(None, notes + ["failed when run, and nothing the observing run recorded explains it"])
    edits = _without_repeats(edits, lines, notes)
    repaired = _apply(lines, edits, body.indent)
    if repaired is None:  # a block left empty: remove the whole statement around it
        for index, (start, end, new) in enumerate(edits):
            top = body.enclosing(start if new is not None else end)
            if new is None and top is not None and (top.first_line, top.last_line) != (start, end) \
                    and top.first_line < start:
                edits[index] = (_with_comments(lines, top.first_line), top.last_line, None)
        edits = _outermost(edits)
        repaired = _apply(lines, edits, body.indent)
    if repaired is None or not count_assertions(repaired):
        return Repair(None, notes + ["no assertion left after the repair"])
    return Repair(repaired, notes)


#: `_repair_statement`'s answer for a statement that cannot be repaired: remove it with its dependents.
REMOVE_WITH_DEPENDENTS = object()


def _apply(lines: list[str], edits, indent: str) -> str | None:
    """The dedented `lines` with `edits` applied, indented back; None when the result does not parse."""
    result = list(lines)
    for start, end, new in sorted(edits, key=lambda edit: -edit[0]):
        result[start - 1:end] = new or []
    text = "\n".join(result).rstrip("\n") + "\n"
    try:
        ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    return textwrap.indent(text, indent) if indent else text


def _outermost(edits):
    """The edits without those inside another one."""
    ordered = sorted(edits, key=lambda edit: (edit[0], -edit[1]))
    kept = []
    for edit in ordered:
        if kept and kept[-1][0] <= edit[0] and edit[1] <= kept[-1][1]:
            continue
        kept.append(edit)
    return kept


def _with_comments(lines: list[str], first: int) -> int:
    """The first line of a statement starting at `first`, with the marker comment right above it."""
    if first >= 2 and lines[first - 2].strip() in (OBSERVED_COMMENT, RAISED_COMMENT):
        return first - 1
    return first


def _marked(lines: list[str], statement: ast.stmt) -> bool:
    """Whether an earlier repair wrote this statement (its marker comment is right above it)."""
    return statement.lineno >= 2 and lines[statement.lineno - 2].strip() in (OBSERVED_COMMENT, RAISED_COMMENT)


def _held(statement: ast.stmt, seen: list[dict]) -> bool:
    """Whether what the twin saw of `statement` agrees with the test as written."""
    if parse_assertion(statement) is not None:
        return all(record.get("holds") for record in seen)
    block = parse_raises_block(statement)
    if block is not None:
        raised = seen[0].get("raised")
        return bool(raised) and ast.unparse(block[0]).split(".")[-1] in raised.get("mro", ())
    return not any(record.get("raised") for record in seen)


def _text(lines: list[str], statement: ast.stmt) -> str:
    return "\n".join(lines[statement.lineno - 1:statement.end_lineno]).strip()


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
    """An edit (first line, last line, new lines or None to remove), None to keep it, or
    `REMOVE_WITH_DEPENDENTS`."""
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
        renamed = _renamed(statement, outcome.get("raised"), lines, pad, notes)
        if renamed is not None:
            return renamed
        new = None if mode == DROP else _oracle(actual_text, outcome, unittest)
        if new is None:
            notes.append(f"removed `{_short(text)}`: it failed and its value cannot be written as a literal"
                         if mode == OBSERVE else f"removed `{_short(text)}`: it failed")
            keep = [pad + line for line in actual_text.split("\n")] if _has_call(actual) and "raised" not in outcome else None
            return statement.lineno, statement.end_lineno, keep
        comment, code = new
        if isinstance(right, ast.Constant) and right.value is None and op == "==":  # a placeholder: nothing was expected
            notes.append(f"`{_short(actual_text)}` raised {outcome['raised']['base']} when run" if "raised" in outcome
                         else f"`{_short(code)}`: the value observed when run")
        else:
            notes.append(f"`{_short(text)}` now expects {outcome['raised']['base']}, as raised when run"
                         if "raised" in outcome else f"`{_short(text)}` now expects `{_short(code)}`, the value observed when run")
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
        renamed = _renamed(statement, raised, lines, pad, notes)
        if renamed is not None:
            return renamed
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
    raised = next((record.get("raised") for record in seen if record.get("raised")), None)
    if raised is None:
        return None
    renamed = _renamed(statement, raised, lines, pad, notes)
    if renamed is not None:
        return renamed
    if isinstance(statement, ast.Expr) and raised.get("type") not in TEST_FAULTS and mode == OBSERVE \
            and _has_call(statement.value):
        context = "self.assertRaises" if self_style else "pytest.raises"
        notes.append(f"`{_short(text)}` raised {raised['type']} when run; now expected to")
        return statement.lineno, statement.end_lineno, [pad + RAISED_COMMENT, f"{pad}with {context}({raised['base']}):"] + [
            pad + "    " + line for line in text.split("\n")]
    message = f": {_short(raised.get('message', ''), 80)}" if raised.get("message") else ""
    notes.append(f"removed `{_short(text)}`: it raised {raised.get('type')}{message}")
    return REMOVE_WITH_DEPENDENTS


def _renamed(statement: ast.stmt, raised: dict | None, lines: list[str], pad: str, notes: list[str]):
    """The statement with a missing attribute renamed to the one close name the object has, when the
    twin saw an AttributeError with exactly one (`EmailMessage.set_content_type` -> `set_content`)."""
    if not raised or raised.get("type") != "AttributeError" or len(raised.get("close") or ()) != 1:
        return None
    missing, close = raised.get("attribute"), raised["close"][0]
    text = "\n".join(lines[statement.lineno - 1:statement.end_lineno])
    renamed = re.sub(rf"\.{re.escape(missing)}\b", f".{close}", text)
    if renamed == text:
        return None
    notes.append(f"`.{missing}` does not exist; renamed to `.{close}`, the one close name it has")
    return statement.lineno, statement.end_lineno, renamed.split("\n")


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
        return _as_text(actual, outcome.get("str"), unittest)
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


def _as_text(actual: str, shown: str | None, unittest: bool) -> tuple[str, str] | None:
    """An object with no literal form (`Version(major=3, ...)`) checked by the text it shows:
    `assert str(v.bump_patch()) == '3.4.6'`, when that text is its own (not an address) and short."""
    if shown is None or len(shown) > MAX_LITERAL:
        return None
    if unittest:
        return OBSERVED_COMMENT, f"self.assertEqual(str({actual}), {shown!r})"
    return OBSERVED_COMMENT, f"assert str({actual}) == {shown!r}"


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


def _own_statements(function: ast.FunctionDef) -> list[ast.stmt]:
    """The statements the test runs as its own steps: a function or class it defines is one statement,
    its body is not (that runs when called, and a one-line helper such as `def f(): ...` would otherwise
    count as two statements on one line)."""
    found: list[ast.stmt] = []
    pending: list[ast.AST] = list(function.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.stmt):
            found.append(node)
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            pending.extend(ast.iter_child_nodes(node))
    return found


def _shares_lines(statements: list[ast.stmt]) -> bool:
    starts: dict[int, int] = {}
    for statement in statements:
        starts[statement.lineno] = starts.get(statement.lineno, 0) + 1
    simple = [s for s in statements if not hasattr(s, "body")]
    return any(starts[s.lineno] > 1 for s in simple)


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
