"""What a sandbox run gives: the result types (`SandboxResult`, `Round`, `RoundResult`,
`TestOutcome`), `SandboxError`, and reading what the run left behind: the JUnit report, the output
(head and tail), the focal function's coverage from coverage.py's JSON report."""

from __future__ import annotations

import ast
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from unitune.errors import UnituneError

PASSED, FAILED, ERROR, TIMEOUT = "passed", "failed", "error", "timeout"
NETWORK_MESSAGE = "network disabled by unitune's sandbox"
OUTPUT_HEAD, OUTPUT_TAIL = 2_000, 10_000  # characters of the run's output kept


class SandboxError(UnituneError):
    """The tests cannot be run at all (no pytest, a project too large to copy, a bad path)."""


@dataclass
class TestOutcome:
    """One test case of a run, as the JUnit report gives it."""

    __test__ = False  # a data class, not a pytest test class

    name: str
    classname: str
    outcome: str  # passed, failed, error or skipped
    message: str = ""


@dataclass
class Round:
    """One pytest run of a `run_rounds` session. `files` (relative path -> text) are written over
    the copy for this round only; the tests run are `select` (node ids, `tests/test_x.py::test_a`),
    else those that passed in every round listed in `select_passed_of`, else the whole test file.
    `select_failed_of` narrows `select` to the tests that did not pass in that earlier round (a
    round that only needs the failures, such as observing them)."""

    files: Mapping[str, str] = field(default_factory=dict)
    select: Sequence[str] | None = None
    select_passed_of: Sequence[int] | None = None
    select_failed_of: int | None = None
    reverse: bool = False  # run the tests in reverse order (a test that needs another's leftovers fails)
    coverage: bool = False  # per-test coverage of the focal function
    observe: bool = False  # collect what observing tests (`unitune.assured.oracles`) record


@dataclass
class RoundResult:
    """What one round gave: each test's (outcome, message) by node id; with coverage, the focal
    function's statements and branch arcs and, per test, the ones it ran."""

    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)
    ran: bool = True  # False: nothing was selected
    statements: set[int] = field(default_factory=set)
    branches: set[tuple[int, int]] = field(default_factory=set)
    covered: dict[str, tuple[set[int], set[tuple[int, int]]]] = field(default_factory=dict)
    observations: list[dict] = field(default_factory=list)
    failed_lines: dict[str, int] = field(default_factory=dict)  # node id -> line of the test file where it failed
    seconds: float = 0.0  # the round's own run (0 when nothing was selected)

    def passed(self) -> set[str]:
        return {nodeid for nodeid, (outcome, _) in self.outcomes.items() if outcome == PASSED}


@dataclass
class SandboxResult:
    """What running the tests gave. Coverage is of the focal function only (fractions 0..1), None
    when it was not measured (no focal file, coverage.py missing, a run that did not finish) or,
    for branches, when the function has no branch."""

    status: str  # passed, failed, error or timeout
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    output: str = ""  # pytest's output (head and tail when long)
    duration: float = 0.0  # seconds, the run itself (not the copy)
    line_coverage: float | None = None
    branch_coverage: float | None = None
    covered_lines: list[int] = field(default_factory=list)
    missing_lines: list[int] = field(default_factory=list)
    covered_branches: list[tuple[int, int]] = field(default_factory=list)
    missing_branches: list[tuple[int, int]] = field(default_factory=list)
    tests: list[TestOutcome] = field(default_factory=list)
    returncode: int | None = None
    isolation: dict = field(default_factory=dict)  # what the tests saw: user, namespaces, guard, limits
    rounds: list[RoundResult] = field(default_factory=list)  # `run_rounds` only

    @property
    def ok(self) -> bool:
        return self.status == PASSED

    def summary(self, limit: int = 300) -> str:
        """One line: the status and the first problems (for messages and for a repair prompt)."""
        if self.status == TIMEOUT:
            text = f"timed out after {self.duration:.1f}s"
        elif self.status == PASSED:
            text = f"{self.passed} passed"
        else:
            problems = [f"{test.name}: {test.message}" if test.message else f"{test.name}: {test.outcome}"
                        for test in self.tests if test.outcome in (FAILED, ERROR)]
            text = f"{self.status}: " + ("; ".join(problems) if problems else last_meaningful_line(self.output))
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def to_json(self) -> dict:
        return asdict(self)


def read_json(path: Path) -> dict | None:
    try:
        if path.is_file() and not path.is_symlink():
            return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    return None


def read_junit(path: Path, result: SandboxResult) -> None:
    try:
        if path.is_symlink() or not path.is_file():
            return
        tree = ElementTree.parse(path)
    except (OSError, ElementTree.ParseError):
        return
    for case in tree.iter("testcase"):
        outcome, message = PASSED, ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = FAILED if child.tag == "failure" else ERROR
                message = problem_line(child.get("message") or "", child.text or "")
                break
            if child.tag == "skipped":
                outcome, message = "skipped", (child.get("message") or "").strip()
        result.tests.append(TestOutcome(case.get("name", ""), case.get("classname", ""), outcome, message))
    result.passed = sum(test.outcome == PASSED for test in result.tests)
    result.failed = sum(test.outcome == FAILED for test in result.tests)
    result.errors = sum(test.outcome == ERROR for test in result.tests)
    result.skipped = sum(test.outcome == "skipped" for test in result.tests)


def problem_line(message: str, text: str) -> str:
    """The most telling line of a failure: the last `E   ...` line of the traceback, else the message."""
    errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    raised = [line for line in errors if ":" in line and line.split(":", 1)[0].replace(".", "").isidentifier()]
    if raised:  # `ValueError: ...`, `SyntaxError: ...`
        return raised[-1][:500]
    if message.strip():  # an assertion: `assert 6 == 5`
        return message.strip().splitlines()[0][:500]
    return errors[0][:500] if errors else ""


def last_meaningful_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip() and not set(line.strip()) <= set("=-_ ")]
    return lines[-1][:300] if lines else "no test ran"


def read_output(path: Path) -> str:
    """The run's output, its head and tail only when long (it may be up to the file-size limit)."""
    size = path.stat().st_size
    budget = 4 * (OUTPUT_HEAD + OUTPUT_TAIL)  # bytes: up to 4 per character
    with open(path, "rb") as handle:
        if size <= budget:
            return truncate(handle.read().decode("utf-8", errors="replace"))
        head = handle.read(4 * OUTPUT_HEAD).decode("utf-8", errors="replace")[:OUTPUT_HEAD]
        handle.seek(size - 4 * OUTPUT_TAIL)
        tail = handle.read().decode("utf-8", errors="replace")[-OUTPUT_TAIL:]
    return head + f"\n[... about {size - len(head) - len(tail)} bytes left out ...]\n" + tail


def truncate(text: str) -> str:
    if len(text) <= OUTPUT_HEAD + OUTPUT_TAIL:
        return text
    cut = len(text) - OUTPUT_HEAD - OUTPUT_TAIL
    return text[:OUTPUT_HEAD] + f"\n[... {cut} characters left out ...]\n" + text[-OUTPUT_TAIL:]


def function_body_start(source: str, start: int, end: int) -> int | None:
    """The first line of the body of the outermost function defined in lines start..end (its
    decorators and signature run at import, not in a test)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    best = None
    for node in ast.walk(tree):
        if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and start <= node.lineno <= end
                and (best is None or node.lineno < best.lineno)):
            best = node
    if best is None or not best.body:
        return None
    return max(best.lineno, best.body[0].lineno)


def focal_coverage(report: dict, copy: Path, focal: Path, span, body_start, result: SandboxResult) -> None:
    entry = None
    for name, data in (report.get("files") or {}).items():
        path = Path(name) if Path(name).is_absolute() else copy / name
        if os.path.normpath(path) == os.path.normpath(focal):
            entry = data
            break
    if entry is None:
        return
    executed = set(entry.get("executed_lines") or [])
    missing = set(entry.get("missing_lines") or [])
    if span is not None:
        low, high = (body_start or span[0]), span[1]
    else:
        low, high = 1, max(executed | missing, default=0)

    def inside(line: int) -> bool:
        return low <= line <= high

    result.covered_lines = sorted(line for line in executed if inside(line))
    result.missing_lines = sorted(line for line in missing if inside(line))
    statements = len(result.covered_lines) + len(result.missing_lines)
    result.line_coverage = len(result.covered_lines) / statements if statements else None
    result.covered_branches = sorted(tuple(arc) for arc in entry.get("executed_branches") or [] if inside(arc[0]))
    result.missing_branches = sorted(tuple(arc) for arc in entry.get("missing_branches") or [] if inside(arc[0]))
    branches = len(result.covered_branches) + len(result.missing_branches)
    if branches and report.get("meta", {}).get("branch_coverage", True):
        result.branch_coverage = len(result.covered_branches) / branches
