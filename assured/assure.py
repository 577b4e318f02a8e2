"""Assured tests (`validate = "run"`): only tests that were run, pass reliably and add something
reach the user, and each is as small as what it adds.

The stages, in order, for the candidates of one request (Python):
1. checks before running (`unitune.assured.checks`): names resolve (missing imports added where clear),
   parameters are fixtures (others removed), table-driven loops written out row by row, the test
   calls the focal function and asserts something;
2. one sandbox session (`unitune.assured.sessions.run_session`): every candidate once, with per-test
   coverage of the focal function. When there are many (argument variants), only the failing ones
   that reach focal lines or branches the others do not go on (`sessions.screened`). Those
   that failed run as their observing twins (`unitune.assured.observing`), which record what each statement
   and assertion really did. Those that passed run twice more (the second time in reverse order; a
   test that fails once is flaky and dropped), and their twins run with a coverage context per
   statement and against each mutant of the focal function (`unitune.assured.mutants`), so what each test
   and each statement adds is known;
3. repair (`unitune.assured.oracles`) of the failing ones: observed values, expected raises and close
   attribute names are written in, and what still fails is removed with what depends on it; the
   repaired tests go through stage 2 again, until they pass or `REPAIR_ROUNDS` sessions are spent.
   A test is dropped only when nothing that calls the focal function and asserts survives;
4. shaping (`unitune.assured.minimize`): statements that add no line, branch or caught mutant are removed,
   and a test that checks several behaviours becomes one test per behaviour; the changed tests run
   three times more, and one that does not pass falls back to what it was;
5. selection: the smallest set, best first, that reaches the best line and branch coverage and
   mutation score; each test says what it adds. A test that adds nothing beyond the ones before it
   is dropped.
Whatever the number of candidates, a request costs one session per round of repair, and one more
when shaping changed something.
"""

from __future__ import annotations

import dataclasses
import textwrap
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from unitune.assured.sessions import (  # noqa: F401  (node_in_file: part of this module's interface)
    RUNS, Measured, TestValue, node_in_file, run_session, screened, verify_session,
)
from unitune.assured.tidy import plain_names, still_relevant, with_import, without_unused_imports
from unitune.assured.postprocess import GeneratedTest, rate, unique_names
from unitune.assured.checks import check_python_test, conftest_fixtures
from unitune.assured.module_names import top_level_names
from unitune.errors import GenerationCancelled
from unitune.insertion import existing_test_names
from unitune.logs import get_logger, log_event
from unitune.assured.minimize import shape
from unitune.assured.oracles import NO_REPAIR, repair

log = get_logger("assure")

#: Sessions of run -> repair at most before a test that still fails is given up.
REPAIR_ROUNDS = 3


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
    failures: list[str] = field(default_factory=list)  # what the last failing run of each dropped test said

    def unreached(self) -> str:
        """What of the focal function the kept tests leave ("lines 3-5", "2 branches", "1 mutant"), or ""."""
        _, branches, killed = self.reach()
        if self.uncovered:
            return f"lines {line_ranges(self.uncovered)}"
        if branches < self.branches:
            return f"{self.branches - branches} branch{'es' if self.branches - branches != 1 else ''}"
        if killed < self.mutants:
            return f"{self.mutants - killed} surviving mutant{'s' if self.mutants - killed != 1 else ''}"
        return ""

    def runs_everything(self) -> bool:
        """Whether the kept tests run every line and branch of the focal function."""
        return not self.uncovered and self.reach()[1] >= self.branches

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
    added_imports: list[str] = field(default_factory=list)  # import lines the checks added to `header`
    # Candidates whose expected values are still placeholders (a variation round's): after their first
    # run, at most this many go on to repair and measurement, those that reach lines or branches the
    # others do not (`screened`); 0 takes every candidate on.
    screen: int = 0


def assure(job: Job, tests: list[GeneratedTest], stage: str) -> Assured:
    """Run the stages on `tests` (post-processed, syntax-valid candidates). Raises `SandboxError`
    (from the sandbox) when tests cannot be run here at all."""
    counts = {"candidates": len(tests)}
    rejected: list[GeneratedTest] = []
    checked = _check(job, tests, rejected)
    counts["checked"] = len(checked)
    if not checked:
        return Assured([], rejected, [], {}, stage_counts=counts)
    measured = Measured()
    reliable = _run_and_repair(job, checked, measured, rejected, stage)
    counts["reliable"] = len(reliable)
    if not reliable:
        return Assured([], rejected, [], {}, stage_counts=counts, failures=_failures(rejected))

    _stop_if_cancelled(job)
    final = _shape(job, reliable, measured, stage)
    counts["shaped"] = len(final)
    kept = select_tests(final, measured.values, measured.statements, measured.arcs, measured.mutants, rejected)
    counts["delivered"] = len(kept)
    job.header = without_unused_imports(job.header, job.added_imports, kept)
    for test in kept:
        test.repaired = still_relevant(test.repaired, test.source)
    kept = plain_names(kept, set(existing_test_names(job.existing, job.language)), measured.values,
                       job.function.called_as)
    log_event(log, "assure.done", function=job.function.qualified_name, **{k.replace(" ", "_"): v for k, v in counts.items()})
    covered = set().union(*(measured.values[test.name].lines for test in kept)) if kept else set()
    return Assured(kept, rejected, [], measured.values, measured.statements, measured.arcs, measured.mutants, counts,
                   sorted(measured.all_statements - covered))


def _check(job: Job, tests: list[GeneratedTest], rejected: list[GeneratedTest]) -> list[GeneratedTest]:
    """Stage 1: names, fixtures, tables, focal call, an assertion."""
    context = job.existing if job.existing and job.existing.strip() else job.header
    fixtures = conftest_fixtures(job.root / job.test_rel, job.root)
    focal_names = top_level_names(job.focal_source)
    module = job.module_import or Path(job.focal_rel).stem
    passing = []
    for test in tests:
        checked = check_python_test(test.source, test.name, context, focal_module=module, focal_names=focal_names,
                                    fixtures=fixtures)
        if checked.problems:
            reject(test, "; ".join(checked.problems), rejected)
            continue
        test.source = checked.source
        test.repaired.extend(checked.repaired)
        for line in checked.imports:
            if line not in job.header:
                job.header = with_import(job.header, line)
                job.added_imports.append(line)
        if _callable(test, job.function, rejected):
            passing.append(test)
    return passing


def _callable(test: GeneratedTest, function, rejected: list[GeneratedTest]) -> bool:
    """Whether `test` still calls the focal function (by a name it is called by) and asserts something
    (else it is rejected)."""
    rate(test, function.called_as)
    if not test.calls_focal and not _calls_a_close_name(test.source, function.called_as):
        reject(test, f"does not call {function.called_as[0]}", rejected)
    elif not test.assertions:
        reject(test, "asserts nothing", rejected)
    else:
        return True
    return False


def _calls_a_close_name(source: str, names: tuple[str, ...]) -> bool:
    """Whether the test calls a method whose name is close to one of `names` (`deposits` for `deposit`):
    a misspelling the run will show and repair can rename."""
    import ast
    import difflib

    try:
        tree = ast.parse(textwrap.dedent(source))
    except SyntaxError:
        return False
    called = {node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
              for node in ast.walk(tree) if isinstance(node, ast.Call)}
    return any(difflib.get_close_matches(name, list(called), n=1, cutoff=0.8) for name in names)


def _run_and_repair(job: Job, tests: list[GeneratedTest], measured: Measured, rejected: list[GeneratedTest],
                    stage: str) -> list[GeneratedTest]:
    """Stages 2 and 3: run (and measure what passes); repair what failed from its twin's records; run
    the repaired ones again; until they pass or `REPAIR_ROUNDS` sessions are spent. The tests that
    passed three runs, measured into `measured`."""
    reliable: list[GeneratedTest] = []
    pending = list(tests)
    for number in range(1, REPAIR_ROUNDS + 1):
        _stop_if_cancelled(job)
        job.report(stage, 0.1 + 0.2 * (number - 1), f"running {len(pending)} test(s) in the sandbox: {RUNS} runs, "
                   "coverage, mutants" + (f" (repair round {number})" if number > 1 else ""))
        run_session(job, pending, measured, observe_failures=job.repair_mode != NO_REPAIR)
        if measured.unfinished:
            for test in pending:
                reject(test, f"the sandbox session did not finish: {measured.unfinished}", rejected)
            return reliable
        if number == 1 and job.screen:
            pending = screened(pending, measured, job.screen)
        still_failing = []
        for test in pending:
            if test.name in measured.values:
                reliable.append(test)
                continue
            if test.name in measured.problems:
                reject(test, measured.problems[test.name], rejected)
                continue
            failure = measured.failures.pop(test.name)
            said = f"{failure.outcome} when run: {failure.message}"
            if number == REPAIR_ROUNDS:
                reject(test, f"{said} (still failing after {REPAIR_ROUNDS} rounds of repair)", rejected)
                continue
            fixed = repair(test.source, test.name, failure.observations, job.repair_mode, failed_line=failure.line)
            if fixed.source is None or fixed.source == test.source:
                why = "; ".join(fixed.notes) if fixed.notes else "nothing could be repaired"
                reject(test, f"{said} ({why})", rejected)
                continue
            test.source = fixed.source
            test.repaired.extend(fixed.notes)
            if _callable(test, job.function, rejected):
                still_failing.append(test)
            else:
                test.problems[-1] += f" once repair removed what failed ({said})"
        pending = still_failing
        if not pending:
            break
    return reliable


def _shape(job: Job, tests: list[GeneratedTest], measured: Measured, stage: str) -> list[GeneratedTest]:
    """Stage 4: each reliable test minimized and split (`unitune.assured.minimize`). The changed ones run
    again, in one session: a test becomes its split tests when they all pass reliably, else its
    minimized self when that does, else it stays as it was measured. What a shaped test kills is what
    its statements caught in the measured test."""
    plans = {}
    for test in tests:
        result = shape(test.source, job.function.called_as, measured.statement_values.get(test.name, {}))
        if result is not None and result.changed:
            plans[test.name] = result
    if not plans:
        return list(tests)
    taken = set(existing_test_names(job.existing, job.language)) | {test.name for test in tests}
    splits: dict[str, list[GeneratedTest]] = {}
    minimized: dict[str, GeneratedTest] = {}
    kept_statements: dict[int, set[int]] = {}  # id(shaped test) -> the original's statements it keeps
    for test in tests:
        plan = plans.get(test.name)
        if plan is None:
            continue
        if plan.minimized is not None:
            minimized[test.name] = _variant(test, test.name, plan.minimized, [*test.repaired, *plan.minimized_notes],
                                            job.function.called_as)
            kept_statements[id(minimized[test.name])] = plan.statements[test.name]
        if plan.split:
            # each part keeps the repair notes about the code it holds (`still_relevant`); the
            # notes about the whole test go with the first
            quoting = [note for note in test.repaired if "`" in note]
            parts = [_variant(test, name, source, [*test.repaired, *plan.minimized_notes, plan.split_note]
                              if number == 0 else [*quoting, plan.split_note], job.function.called_as)
                     for number, (name, source) in enumerate(plan.split.items())]
            renamed = unique_names(parts, taken)
            for part, original_name in zip(renamed, plan.split):
                kept_statements[id(part)] = plan.statements[original_name]
            splits[test.name] = renamed
            taken |= {part.name for part in renamed}
    trying = [*minimized.values(), *(part for parts in splits.values() for part in parts)]
    job.report(stage, 0.8, f"checking {len(trying)} minimized or split test(s)")
    covered = verify_session(job, trying)
    final: list[GeneratedTest] = []
    for test in tests:
        parts = splits.get(test.name, [])
        if parts and all(part.name in covered for part in parts):
            chosen = parts
        elif test.name in minimized and test.name in covered:
            chosen = [minimized[test.name]]
        else:
            final.append(test)  # unchanged, or what shaping made of it did not pass reliably
            continue
        statement_values = measured.statement_values.get(test.name, {})
        for part in chosen:
            killed = set().union(*(statement_values[i].killed for i in kept_statements[id(part)] if i in statement_values))
            measured.values[part.name] = TestValue(*map(set, covered[part.name]), killed)
        final.extend(chosen)
    return final


def _variant(test: GeneratedTest, name: str, source: str, notes: list[str], focal_name: tuple[str, ...]) -> GeneratedTest:
    variant = dataclasses.replace(test, name=name, source=source, repaired=list(notes), problems=list(test.problems),
                                  numbered_from=None)
    rate(variant, focal_name)
    return variant


def select_tests(tests: list[GeneratedTest], values: dict[str, TestValue], statements: int, arcs: int, mutant_count: int,
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
        if gain(best)[0] == 0:
            break  # the first one too: a test that runs none of the function's lines does not test it
        left.remove(best)
        chosen.append(best)
        value = values[best.name]
        lines |= value.lines
        branches |= value.branches
        killed |= value.killed
        value.adds = _describe(value, statements, arcs, mutant_count)
    for test in left:
        reject(test, f"adds no line, branch or killed mutant beyond {', '.join(t.name for t in chosen)}" if chosen
                else "runs none of the function's lines and catches no mutant", rejected)
    order = {id(test): position for position, test in enumerate(tests)}
    return sorted(chosen, key=lambda test: order[id(test)])  # as written: a split test's behaviours in order


def _describe(value: TestValue, statements: int, arcs: int, mutant_count: int) -> str:
    parts = []
    if statements:
        parts.append(f"covers {len(value.lines)}/{statements} lines")
    if arcs:
        parts.append(f"{len(value.branches)}/{arcs} branches")
    if mutant_count:
        parts.append(f"kills {len(value.killed)}/{mutant_count} mutants")
    return ", ".join(parts) or "passes"


def reject(test: GeneratedTest, problem: str, rejected: list[GeneratedTest]) -> None:
    test.valid = False
    test.problems.append(problem)
    rejected.append(test)


def _failures(rejected: list[GeneratedTest]) -> list[str]:
    return [f"{test.name}: {test.problems[-1]}" for test in rejected if test.problems]


def _lines(source: str) -> int:
    return source.rstrip("\n").count("\n") + 1


def _stop_if_cancelled(job: Job) -> None:
    if job.cancel is not None and job.cancel.is_set():
        raise GenerationCancelled("generation cancelled; nothing was changed")


def line_ranges(numbers: list[int]) -> str:
    """`[3, 4, 5, 9]` -> `3-5, 9`."""
    parts: list[str] = []
    for number in numbers:
        if parts and parts[-1][1] == number - 1:
            parts[-1][1] = number
        else:
            parts.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)
