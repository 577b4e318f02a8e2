"""Assured tests (`validate = "run"`): only tests that were run, pass reliably and add something
reach the user.

The stages, in order, for the candidates of one request (Python):
1. checks before running (`unitune.checks`): names resolve (missing imports added where clear),
   parameters are fixtures (others removed), the test calls the focal function, asserts something;
2. one sandbox session: every candidate in the test file, run once; then their observing twins
   (`unitune.oracles`), which record what each assertion's expression really gave;
3. repair of the failing ones (`repair` setting): observed values as expected values,
   `pytest.raises` for what raised; what cannot be repaired is removed; a test without an
   assertion left is dropped;
4. a second session with the survivors: run three times (the third in reverse order; a test that
   fails once is flaky and dropped), per-test coverage of the focal function (coverage.py contexts),
   and each mutant of the focal function (`training.mutants`) against them;
5. selection: the smallest set, best first, that reaches the best line and branch coverage and
   mutation score; each test says what it adds. A test that adds nothing beyond the ones before it
   is dropped.
Two sandbox sessions per request, each one copy of the project, whatever the number of candidates.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from unitune.adapters.postprocess import GeneratedTest, rate
from unitune.checks import check_python_test, conftest_fixtures
from unitune.errors import GenerationCancelled
from unitune.insertion import apply, plan_insertion
from unitune.logs import get_logger, log_event
from unitune.oracles import observing_twin, repair

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
class Assured:
    kept: list[GeneratedTest]
    rejected: list[GeneratedTest]
    notes: list[str]
    values: dict[str, TestValue]  # by test name
    statements: int = 0  # of the focal function's body
    branches: int = 0
    mutants: int = 0
    stage_counts: dict[str, int] = field(default_factory=dict)  # survivors after each stage
    uncovered: list[int] = field(default_factory=list)  # lines of the focal function no kept test runs

    def reach(self) -> tuple[int, int, int]:
        """(lines, branches, mutants killed) of the kept tests together."""
        chosen = [self.values[test.name] for test in self.kept if test.name in self.values]
        return (len(set().union(*(v.lines for v in chosen))), len(set().union(*(v.branches for v in chosen))),
                len(set().union(*(v.killed for v in chosen))))


@dataclass
class Job:
    """Everything the stages need about one request."""

    root: Path
    test_rel: str
    focal_rel: str
    focal_source: str
    function: object  # unitune.focal.Function
    location: object  # unitune.placement.TestLocation
    existing: str | None
    header: str
    framework: str
    language: str
    test_class: str | None
    unsaved: dict[str, str]
    module_import: str | None
    repair_mode: str
    python: str | None = None
    report: Callable[[str, float, str], None] = lambda stage, fraction, message: None
    cancel: threading.Event | None = None


def assure(job: Job, tests: list[GeneratedTest], stage: str) -> Assured:
    """Run the stages on `tests` (post-processed, syntax-valid candidates). Raises `SandboxError`
    (from the sandbox) when tests cannot be run here at all."""
    from unitune import sandbox
    from unitune.evaluation.mutants import mutants

    counts = {"candidates": len(tests)}
    rejected: list[GeneratedTest] = []
    checked = _check(job, tests, rejected)
    counts["checked"] = len(checked)
    if not checked:
        return Assured([], rejected, [], {}, stage_counts=counts)

    # Session 1: each candidate once, then the observing twins of all of them.
    _stop_if_cancelled(job)
    job.report(stage, 0.1, f"running {len(checked)} candidate(s) in the sandbox")
    file_text = _file_text(job, checked)
    ids = {test.name: _node_id(job, file_text, test.name) for test in checked}
    twins = [(test.name, observing_twin(test.source, test.name) or test.source) for test in checked]
    twin_text = _file_text(job, twins)
    first = sandbox.run_rounds(
        job.root, job.test_rel,
        [sandbox.Round(select=list(ids.values())),
         sandbox.Round(files={job.test_rel: twin_text}, select=list(ids.values()), observe=True)],
        {**job.unsaved, job.test_rel: file_text}, focal_file=job.focal_rel,
        focal_lines=(job.function.start_line, job.function.end_line), per_test_timeout=PER_TEST_SECONDS,
        python=job.python, timeout=60 + PER_TEST_SECONDS * len(checked) * 2)
    outcomes, observations = first.rounds[0].outcomes if first.rounds else {}, \
        first.rounds[1].observations if len(first.rounds) > 1 else []
    survivors: list[GeneratedTest] = []
    for test in checked:
        outcome, message = outcomes.get(ids[test.name], ("error", _no_result(first)))
        if outcome == "passed":
            survivors.append(test)
            continue
        fixed = repair(test.source, test.name, [o for o in observations if o.get("test") == test.name],
                       job.repair_mode)
        if fixed.source is None:
            _reject(test, f"{outcome} when run: {message}" + (f" ({'; '.join(fixed.notes)})" if fixed.notes else ""),
                    rejected)
            continue
        test.source = fixed.source
        test.repaired.extend(fixed.notes)
        rate(test, job.function.name)
        survivors.append(test)
    counts["passed or repaired"] = len(survivors)
    if not survivors:
        return Assured([], rejected, [], {}, stage_counts=counts)

    # Session 2: three runs, per-test coverage, the mutants.
    _stop_if_cancelled(job)
    job.report(stage, 0.5, f"checking {len(survivors)} test(s): {RUNS} runs, coverage, mutants")
    file_text = _file_text(job, survivors)
    ids = {test.name: _node_id(job, file_text, test.name) for test in survivors}
    found = mutants(job.focal_source, job.function.qualified_name, MUTANTS)
    rounds = [sandbox.Round(select=list(ids.values()), coverage=True)]
    rounds += [sandbox.Round(select_passed_of=list(range(run)), reverse=run % 2 == 0) for run in range(1, RUNS)]
    reliable_rounds = list(range(RUNS))
    rounds += [sandbox.Round(files={job.focal_rel: mutant.source}, select_passed_of=reliable_rounds) for mutant in found]
    second = sandbox.run_rounds(
        job.root, job.test_rel, rounds, {**job.unsaved, job.test_rel: file_text}, focal_file=job.focal_rel,
        focal_lines=(job.function.start_line, job.function.end_line), per_test_timeout=PER_TEST_SECONDS,
        python=job.python, timeout=60 + PER_TEST_SECONDS * len(survivors) * len(rounds))
    runs = second.rounds[:RUNS]
    if len(runs) < RUNS or second.status == "timeout":
        for test in survivors:
            _reject(test, f"the sandbox session did not finish: {_no_result(second)}", rejected)
        return Assured([], rejected, [], {}, stage_counts=counts)
    values: dict[str, TestValue] = {}
    reliable: list[GeneratedTest] = []
    for test in survivors:
        nodeid = ids[test.name]
        results = [run.outcomes.get(nodeid) for run in runs]
        if results[0] is None or results[0][0] != "passed":
            outcome, message = results[0] or ("error", "no result")
            _reject(test, f"{outcome} when run after repair: {message}", rejected)
            continue
        if any(result is None or result[0] != "passed" for result in results):
            failed = next(result for result in results if result is None or result[0] != "passed")
            _reject(test, f"flaky: passed, then {failed[0] if failed else 'did not run'} when run again "
                          f"({failed[1] if failed else ''})".rstrip(" ()"), rejected)
            continue
        lines, branches = runs[0].covered.get(nodeid, (set(), set()))
        killed = {index for index, run in enumerate(second.rounds[RUNS:])
                  if nodeid in run.outcomes and run.outcomes[nodeid][0] != "passed"}
        values[test.name] = TestValue(set(lines), set(branches), killed)
        reliable.append(test)
    counts["reliable"] = len(reliable)
    statements, arc_count = len(runs[0].statements), len(runs[0].branches)
    kept = _select(reliable, values, statements, arc_count, len(found), rejected)
    counts["delivered"] = len(kept)
    log_event(log, "assure.done", function=job.function.qualified_name, **{k.replace(" ", "_"): v for k, v in counts.items()})
    covered = set().union(*(values[test.name].lines for test in kept)) if kept else set()
    return Assured(kept, rejected, [], values, statements, arc_count, len(found), counts,
                   sorted(runs[0].statements - covered))


def _check(job: Job, tests: list[GeneratedTest], rejected: list[GeneratedTest]) -> list[GeneratedTest]:
    """Stage 1: names, fixtures, focal call, an assertion."""
    from unitune.focal import functions
    from unitune.source import SourceFile

    context = job.existing if job.existing and job.existing.strip() else job.header
    fixtures = conftest_fixtures(job.root / job.test_rel, job.root)
    focal_file = SourceFile(job.focal_source, "python")
    focal_names = {f.class_path[0] if f.class_path else f.name for f in functions(focal_file)}
    module = job.module_import or Path(job.focal_rel).stem
    passing = []
    for test in tests:
        checked = check_python_test(test.source, test.name, context, focal_module=module, focal_names=focal_names,
                                    fixtures=fixtures)
        if checked.problems:
            _reject(test, "; ".join(checked.problems), rejected)
            continue
        test.source = checked.source
        test.repaired.extend(checked.repaired)
        for line in checked.imports:
            if line not in job.header:
                job.header = _with_import(job.header, line)
        rate(test, job.function.name)
        if not test.calls_focal:
            _reject(test, f"does not call {job.function.name}", rejected)
        elif not test.assertions:
            _reject(test, "asserts nothing", rejected)
        else:
            passing.append(test)
    return passing


def _select(tests: list[GeneratedTest], values: dict[str, TestValue], statements: int, arcs: int, mutant_count: int,
            rejected: list[GeneratedTest]) -> list[GeneratedTest]:
    """Greedy: the test adding the most uncovered lines, branches and surviving mutants first, until
    no test adds anything; each kept test's `adds` says what it covers and kills."""
    if not statements and not mutant_count:  # nothing measured (no coverage.py there): every reliable test
        for test in tests:
            values[test.name].adds = f"passed {RUNS} runs (coverage not measured: coverage.py is missing)"
        return list(tests)
    lines: set[int] = set()
    branches: set[tuple[int, int]] = set()
    killed: set[int] = set()
    left = list(tests)
    chosen: list[GeneratedTest] = []
    while left:
        def gain(test: GeneratedTest) -> tuple[int, float]:
            value = values[test.name]
            return (len(value.lines - lines) + len(value.branches - branches) + len(value.killed - killed),
                    test.score)

        best = max(left, key=gain)
        if gain(best)[0] == 0 and chosen:
            break
        left.remove(best)
        chosen.append(best)
        value = values[best.name]
        lines |= value.lines
        branches |= value.branches
        killed |= value.killed
        value.adds = _describe(value, statements, arcs, mutant_count)
    for test in left:
        _reject(test, f"adds no line, branch or killed mutant beyond {', '.join(t.name for t in chosen)}", rejected)
    return chosen


def _describe(value: TestValue, statements: int, arcs: int, mutant_count: int) -> str:
    parts = []
    if statements:
        parts.append(f"covers {len(value.lines)}/{statements} lines")
    if arcs:
        parts.append(f"{len(value.branches)}/{arcs} branches")
    if mutant_count:
        parts.append(f"kills {len(value.killed)}/{mutant_count} mutants")
    return ", ".join(parts) or "passes"


def _reject(test: GeneratedTest, problem: str, rejected: list[GeneratedTest]) -> None:
    test.valid = False
    test.problems.append(problem)
    rejected.append(test)


def _file_text(job: Job, tests) -> str:
    plan = plan_insertion(job.location, job.existing, tests, language=job.language, framework=job.framework,
                          header=job.header, test_class=job.test_class)
    return apply(job.existing, plan)


def _node_id(job: Job, text: str, name: str) -> str:
    return f"{job.test_rel}::{node_in_file(text, name)}"


def node_in_file(text: str, name: str) -> str:
    """The test `name` in the test file `text` as pytest selects it (`Class::name` inside classes)."""
    import ast

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


def _with_import(header: str, line: str) -> str:
    """`header` with the import `line` after its last import line (at its start when it has none)."""
    lines = header.split("\n")
    last = max((i for i, text in enumerate(lines) if text.startswith(("import ", "from "))), default=-1)
    lines.insert(last + 1, line)
    return "\n".join(lines)


def _no_result(result) -> str:
    if result.status == "timeout":
        return f"timed out after {result.duration:.0f}s"
    return result.summary()


def _stop_if_cancelled(job: Job) -> None:
    if job.cancel is not None and job.cancel.is_set():
        raise GenerationCancelled("generation cancelled; nothing was changed")

