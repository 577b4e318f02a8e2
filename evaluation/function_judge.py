"""Judging a test module for one function, the same way whoever wrote it (unitune, Pynguin, a person):
one sandbox session runs the tests with coverage of the function, then against a copy of the module
rewritten by `ast.unparse` (a control: a test that fails there would "kill" every mutant), then
against each of the function's `MUTANTS_PER_FUNCTION` mutants (`unitune.assured.mutants`,
deterministic, so every tool meets the same ones).

What counts, for every tool alike:
- a test *passes* when it passes on the original module and on the control;
- line and branch coverage of the function are those of the passing tests together (coverage.py, the
  function's body only);
- the tests *for* the function are the passing tests that run at least one of its lines; their
  number and the assertions in them (`assert`, `self.assert*`, `pytest.raises` blocks) are reported;
- a mutant is killed when a passing test fails (or errors, or times out) on it;
- a check (an assertion, a raises block) of a test for the function is *idle* when it runs no line or
  branch of the function and catches no mutant beyond the checks before it in its test (what
  `unitune.assured.minimize` removes): the same session runs the tests' observing twins, on the module and on
  each mutant, to know what each statement adds.
"""

from __future__ import annotations

import ast
import time
from dataclasses import dataclass

MUTANTS_PER_FUNCTION = 12  # the real-code set's mutants per function, for unitune and Pynguin alike
SESSION_SECONDS, ROUND_SECONDS = 120, 40  # the whole session's wall-clock limit: base + per round


@dataclass
class FunctionJudgement:
    """What a test module does for one function."""

    status: str  # "passed": every judged test passed; else failed, error, timeout or "no test"
    tests: int = 0  # tests judged (those selected, else every test of the file)
    passing: int = 0  # passed on the original and the control
    covering: int = 0  # passing tests that run the function: the tests *for* it
    assertions: int = 0  # in the covering tests
    idle_checks: int = 0  # checks in the covering tests that add nothing (see the module's docstring)
    statements: int = 0  # the function's statements and branch arcs (coverage.py)
    branches: int = 0
    covered_statements: int = 0
    covered_branches: int = 0
    mutants: int = 0  # the function's mutants (the same number whatever the tests)
    mutants_killed: int = 0
    seconds: float = 0.0
    detail: str = ""  # why nothing was judged, when so

    @property
    def passed(self) -> bool:
        return self.tests > 0 and self.passing == self.tests

    @property
    def line_coverage(self) -> float | None:
        return self.covered_statements / self.statements if self.statements else None

    @property
    def branch_coverage(self) -> float | None:
        return self.covered_branches / self.branches if self.branches else None

    def figures(self) -> dict:
        """The figures as saved with a result (JSON)."""
        return {"passed": self.passed, "status": self.status, "line_coverage": self.line_coverage,
                "branch_coverage": self.branch_coverage, "statements": self.statements, "branches": self.branches,
                "mutants": self.mutants, "mutants_killed": self.mutants_killed, "tests_judged": self.tests,
                "tests_passing": self.passing, "tests_for_function": self.covering, "assertions": self.assertions,
                "idle_checks": self.idle_checks,
                "judge_seconds": round(self.seconds, 3), **({"detail": self.detail} if self.detail else {})}


def test_nodes(test_text: str) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    """The test functions of a test file by the node id pytest gives them after the file
    (`test_a`, `TestX::test_b`); only names starting with `test`."""
    try:
        tree = ast.parse(test_text)
    except (SyntaxError, ValueError):
        return {}
    found: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}

    def visit(body, classes: tuple[str, ...]) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, (*classes, node.name))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
                found["::".join((*classes, node.name))] = node

    visit(tree.body, ())
    return found


def twin_file(test_text: str, nodes: dict[str, ast.FunctionDef | ast.AsyncFunctionDef]) -> str:
    """`test_text` with each test of `nodes` replaced by its observing twin (`unitune.assured.observing`);
    a test whose twin cannot be made stays as it is."""
    from unitune.assured.observing import observing_twin

    lines = test_text.splitlines(keepends=True)
    original = list(lines)
    for node in sorted(nodes.values(), key=lambda node: node.lineno, reverse=True):
        first, last = _span(node)
        twin = observing_twin("".join(original[first - 1: last]), node.name)
        if twin is not None:
            lines[first - 1: last] = [twin]
    return "".join(lines)


def _span(node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[int, int]:
    """The first (decorators included) and last line of a test function."""
    return min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)]), node.end_lineno or node.lineno


def assertions_in(test_text: str, node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    from unitune.assured.python_assertions import count_assertions

    return count_assertions(ast.get_source_segment(test_text, node, padded=True) or "")


def _node_key(nodeid: str, test_rel: str) -> str:
    # `tests/test_x.py::TestX::test_b[1-2]` -> `TestX::test_b`
    return nodeid.removeprefix(f"{test_rel}::").split("[", 1)[0]


def judge_function_tests(project, focal_rel: str, module_source: str, qualified_name: str,
                         lines: tuple[int, int], test_rel: str, test_text: str, names: list[str] | None = None,
                         mutant_count: int = MUTANTS_PER_FUNCTION, python=None) -> FunctionJudgement:
    """Judge the tests `names` of the test file `test_rel` (text `test_text`, written into a sandbox
    copy of `project`), or every test of it when `names` is None, for the function `qualified_name`
    of `focal_rel` (`lines`: its span)."""
    from unitune.assured.mutants import mutants
    from unitune.focal import called_as
    from unitune.assured.minimize import idle_checks, measure_statements
    from unitune.assured.sandbox import Round, SandboxError, run_rounds

    started = time.perf_counter()
    nodes = test_nodes(test_text)
    found = mutants(module_source, qualified_name, mutant_count)
    judgement = FunctionJudgement(status="no test", mutants=len(found))
    if names is None:
        keys = list(nodes)
    else:
        keys = [next((key for key in nodes if key.split("::")[-1] == name), name) for name in names]
    judgement.tests = len(keys)
    if not keys:
        judgement.detail = "the test file holds no test"
        judgement.seconds = time.perf_counter() - started
        return judgement
    select = [f"{test_rel}::{key}" for key in keys] if names is not None else None
    control = ast.unparse(ast.parse(module_source))
    twins = twin_file(test_text, nodes)
    rounds = ([Round(select=select, coverage=True), Round(files={focal_rel: control}, select_passed_of=[0])]
              + [Round(files={focal_rel: mutant.source}, select_passed_of=[0, 1]) for mutant in found])
    twin_rounds = [Round(files={test_rel: twins}, select_passed_of=[0, 1], coverage=True, observe=True)] + [
        Round(files={test_rel: twins, focal_rel: mutant.source}, select_passed_of=[0, 1], observe=True)
        for mutant in found]
    try:
        session = run_rounds(project, test_rel, rounds + twin_rounds, {test_rel: test_text}, focal_file=focal_rel,
                             focal_lines=lines, timeout=SESSION_SECONDS + ROUND_SECONDS * (len(rounds) + len(twin_rounds)),
                             python=python)
    except SandboxError as error:
        judgement.status, judgement.detail = "error", str(error)[:500]
        judgement.seconds = time.perf_counter() - started
        return judgement
    if len(session.rounds) < 2:  # the session never got to its rounds (the project cannot be run)
        judgement.status = session.status if session.status != "passed" else "error"
        judgement.detail = session.summary()
        judgement.seconds = time.perf_counter() - started
        return judgement
    first, controlled = session.rounds[0], session.rounds[1]
    passing = sorted(first.passed() & controlled.passed())
    judgement.passing = len(passing)
    if names is None:
        judgement.tests = max(len(keys), len(first.outcomes))  # parametrized tests count once per case
    outcomes = [first.outcomes.get(f"{test_rel}::{key}", ("error", "not run"))[0] for key in keys]
    judgement.status = ("passed" if judgement.passed else next(
        (o for o in ("timeout", "error", "failed") if o in outcomes), "failed"))
    judgement.statements, judgement.branches = len(first.statements), len(first.branches)
    covered_lines: set[int] = set()
    covered_arcs: set[tuple[int, int]] = set()
    observed = session.rounds[len(rounds):]
    file_lines = test_text.splitlines(keepends=True)
    focal_names = called_as(qualified_name.split(".")[-1], qualified_name.split(".")[:-1])
    for nodeid in passing:
        test_lines, test_arcs = first.covered.get(nodeid, (set(), set()))
        covered_lines |= test_lines
        covered_arcs |= test_arcs
        if test_lines:
            judgement.covering += 1
            node = nodes.get(_node_key(nodeid, test_rel))
            judgement.assertions += assertions_in(test_text, node) if node is not None else 0
            if node is not None and len(observed) == 1 + len(found):
                start, end = _span(node)
                source = "".join(file_lines[start - 1: end])
                values = measure_statements(source, node.name, nodeid, observed[0], observed[1:])
                judgement.idle_checks += idle_checks(source, focal_names, values)
    judgement.covered_statements, judgement.covered_branches = len(covered_lines), len(covered_arcs)
    # A round without outcomes crashed (a mutant the module cannot import with: killed), unless the
    # session ran out of time, when it may never have started.
    timed_out = session.status == "timeout"
    if timed_out:
        judgement.detail = "the session ran out of time; mutants it did not reach count as not killed"
    if judgement.covering:
        judgement.mutants_killed = sum(
            run.ran and (any(outcome != "passed" for outcome, _ in run.outcomes.values())
                         or (not run.outcomes and not timed_out))
            for run in session.rounds[2:len(rounds)])
    judgement.seconds = time.perf_counter() - started
    return judgement
