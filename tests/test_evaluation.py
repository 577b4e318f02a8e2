"""Evaluation metrics on hand-made cases with known answers, the mutants, and the report formats."""

from __future__ import annotations

import json

import pytest

from unitune.evaluation.evaluation import Problem, ProblemResult, judge, load_humaneval, summarize, summarize_delivered
from unitune.commands.eval import chart, table
from unitune.assured.mutants import mutants

MODULE = '''def clamp(x, low, high):
    if x < low:
        return low
    if x > high:
        return high
    return x
'''
STRONG = '''from problem import clamp


def test_clamp():
    assert clamp(5, 0, 10) == 5
    assert clamp(-1, 0, 10) == 0
    assert clamp(11, 0, 10) == 10
    assert clamp(0, 0, 10) == 0
    assert clamp(10, 0, 10) == 10
'''
WEAK = '''from problem import clamp


def test_clamp():
    assert clamp(5, 0, 10) == 5
'''
WRONG = '''from problem import clamp


def test_clamp():
    assert clamp(5, 0, 10) == 6
'''


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "problem"\n')
    (tmp_path / "problem.py").write_text(MODULE)
    return tmp_path


def run(project, test_text, asserts=True):
    problem = Problem("clamp", MODULE, "clamp")
    return judge(problem, project, "problem.py", (1, 6), "tests/test_problem.py", test_text, "test_clamp", asserts,
                 test_text)


@pytest.mark.slow
def test_strong_test_passes_covers_everything_and_kills_mutants(project):
    result = run(project, STRONG)
    assert result.passed and result.status == "passed"
    assert result.line_coverage == 1.0 and result.branch_coverage == 1.0
    # `x < low` -> `x <= low` is an equivalent mutant (at x == low both return low): no test kills it
    assert result.mutants >= 4 and result.mutants_killed >= result.mutants - 1


UNITTEST_METHOD = '''import unittest

from problem import clamp


class TestClamp(unittest.TestCase):
    def test_clamp(self):
        self.assertEqual(clamp(-1, 0, 10), 0)
        self.assertEqual(clamp(11, 0, 10), 10)
        self.assertEqual(clamp(5, 0, 10), 5)
'''


@pytest.mark.slow
def test_a_unittest_method_is_judged_inside_its_class(project):
    """Mined pairs from unittest suites give methods of a test class: they are run, not reported missing."""
    result = run(project, UNITTEST_METHOD)
    assert result.passed and result.status == "passed" and result.line_coverage == 1.0
    assert result.mutants_killed >= 1


@pytest.mark.slow
def test_weak_test_covers_less_and_misses_mutants(project):
    result = run(project, WEAK)
    assert result.passed
    assert result.line_coverage == pytest.approx(4 / 6, abs=0.01) or result.line_coverage < 1.0
    assert result.branch_coverage == 0.5  # each `if` taken one way only
    assert result.mutants_killed < result.mutants


@pytest.mark.slow
def test_failing_test_does_not_count_as_pass(project):
    result = run(project, WRONG)
    assert result.status == "failed" and not result.passed and result.mutants == 0


@pytest.mark.slow
def test_a_test_that_asserts_nothing_is_not_a_pass(project):
    result = run(project, STRONG, asserts=False)
    assert result.status == "passed" and not result.passed


def test_mutants_each_change_one_spot():
    found = mutants(MODULE, "clamp", 5)
    assert 3 <= len(found) <= 5
    assert all(m.source != MODULE for m in found) and len({m.source for m in found}) == len(found)


def test_summary_and_formats(tmp_path):
    results = [ProblemResult("a", True, passed=True, asserts=True, line_coverage=1.0, branch_coverage=1.0, mutants=4,
                             mutants_killed=3),
               ProblemResult("b", True, passed=False, line_coverage=0.5, branch_coverage=None),
               ProblemResult("c", False)]
    report = summarize("base", "humaneval", results, 1.0)
    assert report.valid_syntax == pytest.approx(2 / 3) and report.pass_at_1 == pytest.approx(1 / 3)
    assert report.line_coverage == pytest.approx(0.75) and report.mutation_score == pytest.approx(0.75)
    text = table([report])
    assert "pass@1" in text and "33.3%" in text and "75.0%" in text
    assert json.loads(json.dumps(report.to_json()))["results"][0]["id"] == "a"
    path = chart([report, report], tmp_path / "c.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_humaneval_is_shipped():
    problems = load_humaneval()
    assert len(problems) == 164 and problems[0].function == "has_close_elements"
    assert "def has_close_elements" in problems[0].module and "return False" in problems[0].module


def test_delivered_coverage_counts_an_unserved_problem_as_nothing():
    def result(name, **delivered):
        return ProblemResult(id=name, valid_syntax=True, delivered=delivered)

    results = [
        result("a", served=True, passed=True, line_coverage=1.0, branch_coverage=1.0, mutants=4, mutants_killed=3),
        result("b", served=True, passed=True, line_coverage=1.0, branch_coverage=None),  # no branches to cover
        result("c", served=False, why="nothing survived"),
        result("d", served=True, passed=True, line_coverage=0.5, branch_coverage=0.5, mutants=2, mutants_killed=2),
    ]
    summary = summarize_delivered(results)
    assert summary["served"] == 0.75 and summary["pass_rate"] == 1.0
    assert summary["line_coverage"] == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    assert summary["branch_coverage"] == pytest.approx((1 + 0 + 0.5) / 3)  # c counts 0; b has no branches
    assert summary["mutation_score"] == pytest.approx((3 / 4 + 2 / 2) / 2)  # over the served ones
