"""The per-function report of a real-code evaluation: one row per function (served, passed, line and
branch coverage of the function, mutants killed, tests and assertions, seconds), the totals over a
set, and the tables `unitune eval` and `bench/realcode.py` print.

Totals count every function: an unserved one adds 0 to line and branch coverage and none of its
mutants is killed, so two tools judged on the same functions share one denominator. Seconds are
what a user waits (generation and delivery; the judging is not counted).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass


@dataclass
class FunctionRow:
    """One function's figures for one tool."""

    id: str
    served: bool  # at least one passing test that runs the function was delivered
    passed: bool | None = None  # every delivered test passes when judged (None: nothing delivered)
    line_coverage: float | None = None
    branch_coverage: float | None = None  # None: nothing served, or no branch to cover
    mutants: int = 0
    mutants_killed: int = 0
    tests: int = 0  # passing tests that run the function
    assertions: int = 0  # in those tests
    idle_checks: int | None = None  # checks in those tests that add nothing (None: not judged so)
    seconds: float | None = None
    why: str = ""  # why nothing was served

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class FunctionTotals:
    functions: int
    served: int
    passed: int  # served functions whose tests all pass
    line_coverage: float | None  # mean over every function (unserved: 0)
    branch_coverage: float | None  # mean over every function but served ones without branches
    mutants: int
    mutants_killed: int
    tests: int
    assertions: int
    idle_checks: int | None  # over the functions judged so (None: none was)
    seconds: float  # total
    seconds_median: float | None

    @property
    def mutation_score(self) -> float | None:
        return self.mutants_killed / self.mutants if self.mutants else None

    @property
    def tests_per_function(self) -> float | None:
        return self.tests / self.served if self.served else None

    @property
    def assertions_per_test(self) -> float | None:
        return self.assertions / self.tests if self.tests else None

    def to_json(self) -> dict:
        return {**asdict(self), "mutation_score": self.mutation_score, "tests_per_function": self.tests_per_function,
                "assertions_per_test": self.assertions_per_test}


def row_from_result(result: dict) -> FunctionRow:
    """A unitune result (`ProblemResult` as saved in JSON): the delivered tests when the assured
    pipeline ran, else the one raw test."""
    delivered = result.get("delivered")
    if delivered is None:
        served = bool(result.get("passed"))
        return FunctionRow(result["id"], served, passed=result.get("passed"),
                           line_coverage=result.get("line_coverage") if served else None,
                           branch_coverage=result.get("branch_coverage") if served else None,
                           mutants=result.get("mutants", 0), mutants_killed=result.get("mutants_killed", 0),
                           tests=int(served), assertions=0, seconds=result.get("seconds"),
                           why="" if served else result.get("status", ""))
    served = bool(delivered.get("served")) and delivered.get("tests_for_function", 1) > 0
    why = str(delivered.get("why") or "")
    if delivered.get("served") and not served:
        detail = delivered.get("detail")
        why = (f"delivered, but judged apart no delivered test passes and runs the function "
               f"({delivered.get('status', '?')}{': ' + detail if detail else ''})")
    seconds = delivered.get("seconds")
    if seconds is not None:
        seconds = max(0.0, seconds - delivered.get("judge_seconds", 0.0))  # the judging is ours, not the user's
    return FunctionRow(
        result["id"], served, passed=delivered.get("passed") if delivered.get("served") else None,
        line_coverage=delivered.get("line_coverage") if served else None,
        branch_coverage=delivered.get("branch_coverage") if served else None,
        mutants=delivered.get("mutants", 0), mutants_killed=delivered.get("mutants_killed", 0) if served else 0,
        tests=delivered.get("tests_for_function", len(delivered.get("tests") or ())) if served else 0,
        assertions=delivered.get("assertions", 0) if served else 0,
        idle_checks=delivered.get("idle_checks") if served else None, seconds=seconds,
        why="" if served else why[:200])


def totals(rows: list[FunctionRow]) -> FunctionTotals:
    served = [row for row in rows if row.served]
    with_branches = [row for row in rows if not row.served or row.branch_coverage is not None]
    times = [row.seconds for row in rows if row.seconds is not None]
    idle = [row.idle_checks for row in served if row.idle_checks is not None]
    return FunctionTotals(
        functions=len(rows), served=len(served), passed=sum(bool(row.passed) for row in served),
        line_coverage=statistics.fmean(row.line_coverage or 0.0 for row in rows) if rows else None,
        branch_coverage=(statistics.fmean(row.branch_coverage or 0.0 for row in with_branches)
                         if with_branches else None),
        mutants=sum(row.mutants for row in rows), mutants_killed=sum(row.mutants_killed for row in rows),
        tests=sum(row.tests for row in served), assertions=sum(row.assertions for row in served),
        idle_checks=sum(idle) if idle else None,
        seconds=sum(times), seconds_median=statistics.median(times) if times else None)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def number(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def render(lines: list[list[str]]) -> str:
    """Columns: the first left-aligned, the others right-aligned, a rule under the header."""
    widths = [max(len(row[i]) for row in lines) for i in range(len(lines[0]))]
    text = ["  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
            for row in lines]
    text.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(text)


def row_cells(row: FunctionRow) -> list[str]:
    if not row.served:
        return ["no", "-", "-", "-", f"0/{row.mutants}", "0", "-", "-", number(row.seconds, ".0f")]
    return ["yes", "yes" if row.passed else "NO", percent(row.line_coverage), percent(row.branch_coverage),
            f"{row.mutants_killed}/{row.mutants}", str(row.tests),
            number(row.assertions / row.tests if row.tests else None), _count(row.idle_checks),
            number(row.seconds, ".0f")]


TABLE_HEADER = ["served", "pass", "line cov", "branch cov", "killed", "tests", "asserts/test", "idle", "s"]


def totals_cells(total: FunctionTotals) -> list[str]:
    return [f"{total.served}/{total.functions}", f"{total.passed}/{total.served}", percent(total.line_coverage),
            percent(total.branch_coverage), f"{total.mutants_killed}/{total.mutants} {percent(total.mutation_score)}",
            number(total.tests_per_function), number(total.assertions_per_test), _count(total.idle_checks),
            number(total.seconds, ".0f")]


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def function_table(rows: list[FunctionRow]) -> str:
    """One line per function, then the totals (tests: per served function; idle: checks that add
    nothing, `unitune.evaluation.function_judge`; s: the sum)."""
    lines = [["function"] + TABLE_HEADER] + [[row.id] + row_cells(row) for row in rows]
    lines.append(["total"] + totals_cells(totals(rows)))
    text = render(lines)
    why = [f"  {row.id}: {row.why}" for row in rows if not row.served and row.why]
    return text + ("\n\nnot served:\n" + "\n".join(why) if why else "")
