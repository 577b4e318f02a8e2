"""Tests a person would keep: a passing Python test minimized to the statements that add something,
and split into one small test per behaviour, each named for what it checks.

Minimization works from what the observing twin measured (`unitune.assured.observing`; `measure_statements`
reads its runs): per top-level statement, the lines and branch arcs of the focal function it ran,
and the mutants of the focal function it caught. Going through the test in order, a check (an
assertion, a raises block, or a block holding one) is kept, with the set-up it needs
(`unitune.assured.test_statements.needed_by`), only when together they run a line or a branch, or catch a
mutant, that nothing kept before did; then a call
of the focal function that no kept check needs is kept on the same terms (it shows the call does not
raise). So an assertion repeated with other constants along the same path goes, as Pynguin
minimizes its assertions. A test whose checks add nothing keeps its first check on the focal
function.

Splitting: the kept checks are grouped by the branch arcs they take (the same path is the same
behaviour); with two groups or more, each becomes a test of its own, with its own set-up, named after
what tells it apart (`test_parse_quantity_dozen`, `test_parse_quantity_raises_value_error`).

`idle_checks` counts what minimization would remove, so a judge can tell whether any tool's tests
(the delivered ones, Pynguin's) hold checks that add nothing.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from unitune.assured.observing import CONTEXT_SEPARATOR
from unitune.assured.python_assertions import parse_assertion, parse_raises_block
from unitune.assured.test_statements import Statement, TestBody, needed_by, parse_body, render

#: A derived test name's part after the original name, at most this long.
MAX_NAME_PART = 30


@dataclass
class StatementValue:
    """What one top-level statement of a test added when it ran: focal lines, branch arcs, mutants caught."""

    lines: set[int] = field(default_factory=set)
    arcs: set[tuple[int, int]] = field(default_factory=set)
    killed: set[int] = field(default_factory=set)


@dataclass
class Shaped:
    """A test after minimization and splitting: `minimized`, the test with only what adds something
    (None: nothing to remove); `split`, one test per behaviour (name -> source; empty: one behaviour);
    and what was done to get each."""

    name: str
    minimized: str | None
    split: dict[str, str]
    minimized_notes: list[str] = field(default_factory=list)
    split_note: str = ""
    statements: dict[str, set[int]] = field(default_factory=dict)  # test name -> the original statements it keeps

    @property
    def changed(self) -> bool:
        return self.minimized is not None or bool(self.split)


def shape(source: str, focal_names: tuple[str, ...], values: dict[int, StatementValue]) -> Shaped | None:
    """`source` (a test that passes) minimized and split, from `values` by top-level statement
    index; None when it cannot be read. `focal_names` are the names the focal function is called by
    (`Function.called_as`; the first names it in notes)."""
    focal_name = focal_names[0]
    body = parse_body(source)
    if body is None or not body.statements:
        return None
    kept, reasons = _keep(body, focal_names, values)
    checks = [s for s in body.statements if s.checks]
    if not reasons:
        return None
    notes = []
    dropped_checks = [s for s in checks if s.index not in kept]
    dropped_calls = [s for s in body.statements if not s.checks and s.index not in kept]
    if dropped_checks:
        notes.append(f"removed {_count(len(dropped_checks), 'assertion')} that ran no new line or branch of "
                     f"{focal_name} and caught no new mutant")
    if dropped_calls and not dropped_checks:
        notes.append(f"removed {_count(len(dropped_calls), 'statement')} that added nothing")
    minimized = render(body, kept) if len(kept) < len(body.statements) else None
    statements = {body.name: kept}
    groups = _behaviours(body, reasons)
    split: dict[str, str] = {}
    if len(groups) >= 2:
        for effects in groups:
            base = re.sub(r"_\d+$", "", body.name)  # a later candidate's number says nothing about its behaviour
            choices = [f"{base}_{part}" for part in _behaviour_names(body, effects, focal_names)]
            name = next((choice for choice in choices if choice not in split), None) or _unique(choices[0], split)
            statements[name] = needed_by(body, set(effects), through_checks=False)
            split[name] = render(body, statements[name], name=name)
    note = f"split from {body.name}, one test per behaviour: {', '.join(split)}" if split else ""
    return Shaped(body.name, minimized, split, notes, note, statements)


def idle_checks(source: str, focal_names: tuple[str, ...], values: dict[int, StatementValue]) -> int:
    """How many checks of the test `source` (a test that passes) add nothing: no line or branch of the
    focal function and no mutant caught beyond the checks before them (those `shape` removes)."""
    body = parse_body(source)
    if body is None:
        return 0
    kept, _ = _keep(body, focal_names, values)
    return sum(1 for statement in body.statements if statement.checks and statement.index not in kept) if kept else 0


def measure_statements(source: str, name: str, nodeid: str, twin_round,
                       mutant_rounds: list) -> dict[int, StatementValue]:
    """By top-level statement of the test `name` (`source`; `nodeid` as pytest ran it): the focal
    lines and arcs it ran (the contexts of its observing twin's run, `twin_round`), and the mutants it
    caught (the twin's records on each mutant, a sandbox round each: an assertion that no longer
    holds, a raises block whose body no longer raises what it expects, a statement that raised)."""
    body = parse_body(source)
    if body is None:
        return {}
    values: dict[int, StatementValue] = {}
    if twin_round is not None:
        for context, (lines, arcs) in twin_round.covered.items():
            node, _, key = context.partition(CONTEXT_SEPARATOR)
            statement = body.by_key(key) if node == nodeid else None
            if statement is not None:
                value = values.setdefault(statement.index, StatementValue())
                value.lines |= lines
                value.arcs |= arcs
    expected = _expected_raises(body)
    for index, run in enumerate(mutant_rounds):
        records = [o for o in run.observations if o.get("test") == name]
        caught = None
        for record in records:
            statement = body.enclosing(int(str(record.get("key", "0:0")).split(":")[0] or 0))
            if not record.get("begin") and statement is not None and _catches(record, expected.get(record.get("key"))):
                caught = statement
                break
        if caught is None and nodeid in run.outcomes and run.outcomes[nodeid][0] != "passed":
            begun = [r for r in records if r.get("begin")]
            caught = body.by_key(str(begun[-1]["key"])) if begun else None  # it stopped there (a time-out)
        if caught is not None:
            values.setdefault(caught.index, StatementValue()).killed.add(index)
    return values


def _catches(record: dict, expected: str | None) -> bool:
    """Whether a twin's record on a mutant shows the test would fail there."""
    if record.get("block"):
        raised = record.get("raised")
        return not raised or (expected is not None and expected not in raised.get("mro", ()))
    if "holds" in record:
        return not record["holds"]
    return bool(record.get("raised"))


def _expected_raises(body) -> dict[str, str]:
    """The exception each raises block of the test expects, by the block's key."""
    found = {}
    for statement in body.statements:
        for node in ast.walk(statement.node):
            block = parse_raises_block(node) if isinstance(node, ast.stmt) else None
            if block is not None:
                found[f"{node.lineno}:{node.col_offset}"] = ast.unparse(block[0]).split(".")[-1]
    return found


def _keep(body: TestBody, focal_names: tuple[str, ...],
          values: dict[int, StatementValue]) -> tuple[set[int], dict[int, tuple[frozenset, frozenset]]]:
    """The statements minimization keeps, and per kept effect (a check, or a call of the focal
    function) the arcs and lines it added; empty when the test has no check."""
    kept: set[int] = set()
    lines: set[int] = set()
    arcs: set[tuple[int, int]] = set()
    killed: set[int] = set()
    reasons: dict[int, tuple[frozenset, frozenset]] = {}  # kept effect -> (its arcs, its lines)

    def consider(statement: Statement) -> None:
        group = needed_by(body, {statement.index}) - kept
        value = _sum(values, group)
        if value.lines - lines or value.arcs - arcs or value.killed - killed:
            kept.update(group)
            lines.update(value.lines)
            arcs.update(value.arcs)
            killed.update(value.killed)
            reasons[statement.index] = (frozenset(value.arcs), frozenset(value.lines))

    checks = [s for s in body.statements if s.checks]
    for statement in checks:
        consider(statement)
    for statement in body.statements:
        if not statement.checks and statement.index not in kept and _calls(statement.node, focal_names):
            consider(statement)
    if not any(body.statements[i].checks for i in reasons):
        first = next((s for s in checks if _calls(s.node, focal_names)), checks[0] if checks else None)
        if first is None:
            return set(), {}
        kept |= needed_by(body, {first.index})
        reasons[first.index] = (frozenset(_sum(values, {first.index}).arcs), frozenset())
    return kept, reasons


def _sum(values: dict[int, StatementValue], indices: set[int]) -> StatementValue:
    total = StatementValue()
    for index in indices:
        value = values.get(index)
        if value is not None:
            total.lines |= value.lines
            total.arcs |= value.arcs
            total.killed |= value.killed
    return total


def _behaviours(body: TestBody, reasons: dict[int, tuple[frozenset, frozenset]]) -> list[list[int]]:
    """The kept effects grouped by the path they take (their arcs; lines where the function has no
    branch), in the order of their first statement."""
    groups: dict[frozenset, list[int]] = {}
    for index in sorted(reasons):
        statement_arcs, statement_lines = reasons[index]
        groups.setdefault(statement_arcs or statement_lines, []).append(index)
    return sorted(groups.values(), key=lambda effects: effects[0])


def _calls(node: ast.AST, focal_names: tuple[str, ...]) -> bool:
    return any(isinstance(inner, ast.Call) and _own_call(inner, focal_names) for inner in ast.walk(node))


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' if number != 1 else ''}"


def _unique(name: str, taken: dict[str, str]) -> str:
    candidate, number = name, 2
    while candidate in taken:
        candidate, number = f"{name}_{number}", number + 1
    return candidate


# -- names ---------------------------------------------------------------------------------------

def behaviour_names(source: str, focal_names: tuple[str, ...]) -> list[str]:
    """What tells a whole test's behaviour apart, as a name's part, best first (`raises_value_error`,
    `returns_24`): for a test whose plain name another test already has."""
    body = parse_body(source)
    checks = [statement.index for statement in body.statements if statement.checks] if body is not None else []
    return _behaviour_names(body, checks, focal_names) if checks else []


def _behaviour_names(body: TestBody, effects: list[int], focal_names: tuple[str, ...]) -> list[str]:
    """What tells a behaviour apart, as a name's part, best first: the exception a raises block expects;
    else the focal call's literal arguments, then what the check expects (`returns_24`)."""
    nodes = [body.statements[i].node for i in effects]
    setup = [body.statements[i].node for i in sorted(needed_by(body, set(effects), through_checks=False))]
    for node in nodes:
        for inner in ast.walk(node):
            if isinstance(inner, ast.stmt) and parse_raises_block(inner) is not None:
                raises = "raises_" + _snake(ast.unparse(parse_raises_block(inner)[0]).split(".")[-1])
                words = _input_words(inner, focal_names)
                return [raises] + ([_clip(f"{words}_{raises}")] if words else [])  # the second when one raises already
    names = []
    for node in setup:
        for inner in ast.walk(node):
            if isinstance(inner, ast.Call) and _own_call(inner, focal_names):
                words = [word for argument in inner.args[:2] if (word := _literal_words(argument))]
                if words and not names:
                    names.append(_clip("_".join(words)))
    for node in nodes:
        for inner in ast.walk(node):
            assertion = parse_assertion(inner) if isinstance(inner, ast.stmt) else None
            if assertion is not None and len(names) < 2:
                expected = assertion[1]
                if assertion[2] in ("none", "truth", "falsity"):
                    names.append({"none": "returns_none", "truth": "is_true", "falsity": "is_false"}[assertion[2]])
                elif expected is not None and (word := _literal_words(expected)):
                    names.append(_clip("returns_" + word))
    return names or ["case"]


def _input_words(block: ast.stmt, focal_names: tuple[str, ...]) -> str:
    """What a raises block gives the focal function, as words: the literal arguments of its call by the
    function's own name (`parse('x')` -> `x`), else the literal index of a subscript (`v[-1]`)."""
    for node in ast.walk(block):
        if isinstance(node, ast.Call) and _own_call(node, focal_names[-1:]):
            words = [word for argument in node.args[:2] if (word := _literal_words(argument))]
            if words:
                return "_".join(words)
    index = next((node.slice for node in ast.walk(block) if isinstance(node, ast.Subscript)), None)
    return (_literal_words(index) or "") if isinstance(index, (ast.Constant, ast.UnaryOp)) else ""


def _own_call(call: ast.Call, focal_names: tuple[str, ...]) -> bool:
    """Whether `call` calls the focal function by one of its names (compared as test names are made)."""
    called = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
    return called.replace("_", "").lower() in {name.replace("_", "").lower() for name in focal_names}


def _literal_words(node: ast.expr) -> str | None:
    """A literal argument as words for a name: `"2 dozen"` -> `2_dozen`, `-1` -> `negative`, `[]` -> `empty`."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        return "negative"
    if isinstance(node, ast.Constant):
        value = node.value
        if value is None or isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (int, float)):
            return "zero" if value == 0 else _snake(str(value).replace(".", "_").replace("-", "negative_"))
        if isinstance(value, str):
            words = re.findall(r"[A-Za-z0-9]+", value)
            return _snake("_".join(words[:3])) if words else ("empty" if not value else "blank")
        return None
    if isinstance(node, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
        elements = node.keys if isinstance(node, ast.Dict) else node.elts
        return "empty" if not elements else None
    return None


def _snake(text: str) -> str:
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", text)
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _clip(text: str) -> str:
    text = _snake(text)
    if len(text) <= MAX_NAME_PART:
        return text or "case"
    return text[:MAX_NAME_PART].rsplit("_", 1)[0] or text[:MAX_NAME_PART]
