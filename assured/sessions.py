"""The sandbox sessions of the assured pipeline (`adapters.assure`), each one copy of the project:

- `run_session`: the tests once (with per-test coverage of the focal function); the observing twins
  (`unitune.assured.observing`) of those that failed, for repair; for those that passed, two more runs (the
  second in reverse order: a test that fails once is flaky), their twins with a coverage context per
  statement, and the twins against each mutant of the focal function. So a test that passes at once
  is run, measured and judged in one session, and what each of its statements adds is known;
- `screened`: after a first run of many candidates, the failing ones worth observing and repairing;
- `verify_session`: tests that minimization or splitting changed, three times with coverage.
A test is named by its function's name throughout; the node ids pytest needs are made here.
"""

from __future__ import annotations

import ast
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from unitune.insertion import apply, plan_insertion
from unitune.logs import get_logger, log_event
from unitune.assured.minimize import StatementValue, measure_statements
from unitune.assured.observing import observing_twin

if TYPE_CHECKING:
    from unitune.assured.postprocess import GeneratedTest

log = get_logger("assure")

RUNS = 3  # a test is kept only when it passes this many times in a row
MUTANTS = 6
PER_TEST_SECONDS = 10.0


@dataclass
class TestValue:
    """What a kept test was measured to give, and what it adds to the tests before it."""

    __test__ = False

    lines: set[int] = field(default_factory=set)
    branches: set[tuple[int, int]] = field(default_factory=set)
    killed: set[int] = field(default_factory=set)
    adds: str = ""


@dataclass
class Failure:
    """How a test failed its first run, and what its twin recorded (for repair)."""

    outcome: str
    message: str
    observations: list[dict] = field(default_factory=list)
    line: int | None = None  # the line of the test (1 = its first) where it failed, when known
    # The focal lines and branch arcs the failing run went through before it failed: what a variant whose
    # expected value is still a placeholder reaches (`screened`).
    reached: tuple[set[int], set[tuple[int, int]]] = field(default_factory=lambda: (set(), set()))


@dataclass
class Measured:
    """What the sessions found: the reliable tests' values and their statements', how the others failed."""

    values: dict[str, TestValue] = field(default_factory=dict)
    statement_values: dict[str, dict[int, StatementValue]] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)  # failed the first run: repair may help
    problems: dict[str, str] = field(default_factory=dict)  # passed once, then not: flaky
    statements: int = 0  # of the focal function's body
    arcs: int = 0
    mutants: int = 0
    all_statements: set[int] = field(default_factory=set)
    unfinished: str = ""  # the session did not finish: why


def run_session(job, tests, measured: Measured, *, observe_failures: bool = True) -> None:
    """Run, observe what failed, and measure what passed, in one session; results go into `measured`."""
    from unitune.assured import sandbox
    from unitune.assured.mutants import mutants

    text = file_text(job, tests)
    ids = {test.name: f"{job.test_rel}::{node_in_file(text, test.name)}" for test in tests}
    twin_text = file_text(job, [(t.name, observing_twin(t.source, t.name) or t.source) for t in tests])
    found = mutants(job.focal_source, job.function.qualified_name, MUTANTS)
    reliable = list(range(RUNS))
    rounds = [sandbox.Round(select=list(ids.values()), coverage=True),
              sandbox.Round(select_passed_of=[0]), sandbox.Round(select_passed_of=[0, 1], reverse=True),
              sandbox.Round(files={job.test_rel: twin_text}, select_passed_of=reliable, coverage=True, observe=True)]
    rounds += [sandbox.Round(files={job.test_rel: twin_text, job.focal_rel: mutant.source},
                             select_passed_of=reliable, observe=True) for mutant in found]
    if observe_failures:
        rounds.append(sandbox.Round(files={job.test_rel: twin_text}, select=list(ids.values()), select_failed_of=0,
                                    observe=True))
    session = _session(job, text, rounds, len(tests), "run", {
        "first_run": slice(0, 1), "reruns": slice(1, RUNS), "statement_coverage": slice(RUNS, RUNS + 1),
        "mutants": slice(RUNS + 1, RUNS + 1 + len(found)),
        "observe_failures": slice(RUNS + 1 + len(found), None)})
    measured.mutants = len(found)
    runs = session.rounds[:RUNS]
    if len(runs) < RUNS or session.status == "timeout":
        measured.unfinished = no_result(session)
        return
    first = runs[0]
    if first.statements:
        measured.statements, measured.arcs, measured.all_statements = len(first.statements), len(first.branches), \
            set(first.statements)
    twin_round = session.rounds[RUNS]
    mutant_rounds = session.rounds[RUNS + 1: RUNS + 1 + len(found)]
    failure_twins = session.rounds[-1].observations if observe_failures else []
    for test in tests:
        nodeid = ids[test.name]
        outcome, message = first.outcomes.get(nodeid, ("error", no_result(session)))
        if outcome != "passed":
            start = _first_line(text, test.name)
            line = first.failed_lines.get(nodeid)
            measured.failures[test.name] = Failure(
                outcome, message, [o for o in failure_twins if o.get("test") == test.name],
                line - start + 1 if line is not None and start is not None else None,
                tuple(map(set, first.covered.get(nodeid, (set(), set())))))
            continue
        failed = next((run.outcomes.get(nodeid) for run in runs[1:]
                       if run.outcomes.get(nodeid, ("",))[0] != "passed"), False)
        if failed is not False:
            measured.problems[test.name] = (f"flaky: passed, then {failed[0] if failed else 'did not run'} when run "
                                            f"again ({failed[1] if failed else ''})").rstrip(" ()")
            continue
        lines, branches = first.covered.get(nodeid, (set(), set()))
        statement_values = measure_statements(test.source, test.name, nodeid, twin_round, mutant_rounds)
        killed = set().union(*(value.killed for value in statement_values.values())) if statement_values else set()
        measured.values[test.name] = TestValue(set(lines), set(branches), killed)
        measured.statement_values[test.name] = statement_values


def screened(tests: list[GeneratedTest], measured: Measured, most: int) -> list[GeneratedTest]:
    """`tests` after their first run, without the failing ones that reach no focal line or branch
    beyond what the passing tests (an earlier round's, run again beside them) and the failing ones
    chosen before them reach; at most `most` failing ones, the one adding most first. Observing and
    repairing a candidate and measuring it against every mutant is what a round spends its time on:
    a variant whose placeholder check failed has already run the focal function, so what it reaches
    is known before that, and many variants can be tried for the price of a few. The ones left out
    are not listed as rejected: they are inputs tried, not tests anyone wrote."""
    lines = set().union(*(value.lines for value in measured.values.values()))
    arcs = set().union(*(value.branches for value in measured.values.values()))
    failing = [test.name for test in tests if test.name in measured.failures]
    chosen: list[str] = []

    def gain(name: str) -> int:
        reached_lines, reached_arcs = measured.failures[name].reached
        return len(reached_lines - lines) + len(reached_arcs - arcs)

    while len(chosen) < most:
        best = max((name for name in failing if name not in chosen), key=gain, default=None)
        if best is None or gain(best) == 0:
            break
        chosen.append(best)
        lines |= measured.failures[best].reached[0]
        arcs |= measured.failures[best].reached[1]
    dropped = set(failing) - set(chosen)
    for name in dropped:
        measured.failures.pop(name)
    return [test for test in tests if test.name not in dropped]


def verify_session(job, tests) -> dict[str, tuple[set[int], set[tuple[int, int]]]]:
    """The tests that passed three runs (the third in reverse order), with the focal lines and arcs each ran."""
    from unitune.assured import sandbox

    text = file_text(job, tests)
    ids = {test.name: f"{job.test_rel}::{node_in_file(text, test.name)}" for test in tests}
    rounds = [sandbox.Round(select=list(ids.values()), coverage=True)]
    rounds += [sandbox.Round(select_passed_of=list(range(run)), reverse=run % 2 == 0) for run in range(1, RUNS)]
    session = _session(job, text, rounds, len(tests), "verify", {"runs": slice(0, RUNS)})
    runs = session.rounds[:RUNS]
    if len(runs) < RUNS or session.status == "timeout":
        return {}
    return {test.name: runs[0].covered.get(ids[test.name], (set(), set())) for test in tests
            if all(run.outcomes.get(ids[test.name], ("",))[0] == "passed" for run in runs)}


def _session(job, text: str, rounds, tests: int, kind: str, parts: dict[str, slice]):
    """One sandbox session of `rounds`; `-v` logs where its time went: `parts` names slices of its rounds,
    `setup` is the rest (the project's copy, the isolation, pytest's import)."""
    from unitune.assured import sandbox

    started = time.perf_counter()
    session = sandbox.run_rounds(
        job.root, job.test_rel, rounds, {**job.unsaved, job.test_rel: text}, focal_file=job.focal_rel,
        focal_lines=(job.function.start_line, job.function.end_line), per_test_timeout=PER_TEST_SECONDS,
        python=job.python, timeout=60 + PER_TEST_SECONDS * tests * len(rounds))
    seconds = time.perf_counter() - started
    spent = {name: round(sum(result.seconds for result in session.rounds[part]), 3) for name, part in parts.items()}
    log_event(log, "assure.session", kind=kind, tests=tests, rounds=len(session.rounds),
              seconds=round(seconds, 3), setup=round(seconds - sum(spent.values()), 3), **spent)
    return session


def file_text(job, tests) -> str:
    """The test file with `tests` (generated tests, or (name, source) pairs) placed as they would be."""
    plan = plan_insertion(job.location, job.existing, tests, language=job.language, framework=job.framework,
                          header=job.header, test_class=job.test_class)
    return apply(job.existing, plan)


def node_in_file(text: str, name: str) -> str:
    """The test `name` in the test file `text` as pytest selects it (`Class::name` inside classes)."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return name
    found: list[str] = []

    def visit(body, classes: tuple[str, ...]) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, (*classes, node.name))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                found.append("::".join((*classes, name)))

    visit(tree.body, ())
    return found[-1] if found else name


def _first_line(text: str, name: str) -> int | None:
    """The first line (decorators included) of the test function `name` in the test file `text`."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    found = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
             and node.name == name]
    if not found:
        return None
    node = found[-1]
    return min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])


def no_result(result) -> str:
    if result.status == "timeout":
        return f"timed out after {result.duration:.0f}s"
    return result.summary()
