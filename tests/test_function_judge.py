"""The harness that judges a test module for one function, whoever wrote it: coverage of the function
by the passing tests, the same mutants for every tool, the tests for the function and their
assertions; and the per-function report built from it."""

from __future__ import annotations

import pytest

from unitune.evaluation.function_judge import MUTANTS_PER_FUNCTION, FunctionJudgement, judge_function_tests
from unitune.evaluation.function_report import FunctionRow, function_table, row_from_result, totals
from unitune.assured.mutants import mutants

MODULE = '''def grade(score, passing=50):
    """The verdict on a score out of 100."""
    if score < 0 or score > 100:  # out of range
        raise ValueError("score out of range")
    if score >= 90:
        return "A"
    if score >= passing:
        return "pass"
    return "fail"


def other():
    return 1
'''
SPAN = (1, 9)
STRONG = '''import pytest

from problem import grade


def test_out_of_range():
    with pytest.raises(ValueError):
        grade(-1)
    with pytest.raises(ValueError):
        grade(101)


def test_verdicts():
    assert grade(0) == "fail"
    assert grade(49) == "fail"
    assert grade(50) == "pass"
    assert grade(89) == "pass"
    assert grade(90) == "A"
    assert grade(100) == "A"
'''
PYNGUIN_STYLE = '''# Automatically generated, in the style of Pynguin: one module for the whole file
import pytest
import problem as module_0


def test_case_0():
    var_0 = module_0.grade(95)
    assert var_0 == "A"


def test_case_1():
    var_0 = module_0.other()
    assert var_0 == 1


def test_case_2():
    with pytest.raises(ValueError):
        module_0.grade(-5)


def test_case_3():
    var_0 = module_0.grade(10)
    assert var_0 == "pass"
'''
REPETITIVE = '''from problem import grade


def test_grade():
    assert grade(95) == "A"
    assert grade(96) == "A"
    assert grade(97) == "A"
    assert grade(10) == "fail"
'''
READS_ITS_SOURCE = '''import inspect

from problem import grade


def test_grade_and_its_comment():
    assert grade(95) == "A"
    assert "# out of range" in inspect.getsource(grade)
'''


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "problem"\n')
    (tmp_path / "problem.py").write_text(MODULE)
    return tmp_path


def judge(project, test_text, names=None):
    return judge_function_tests(project, "problem.py", MODULE, "grade", SPAN, "tests/test_problem.py", test_text, names)


def test_the_fixture_function_has_the_full_set_of_mutants():
    assert MUTANTS_PER_FUNCTION == 12
    assert len(mutants(MODULE, "grade", MUTANTS_PER_FUNCTION)) == 12


@pytest.mark.slow
def test_a_good_test_set_covers_the_function_and_kills_every_mutant(project):
    judged = judge(project, STRONG, ["test_out_of_range", "test_verdicts"])
    assert judged.status == "passed" and judged.passed
    assert judged.line_coverage == 1.0 and judged.branch_coverage == 1.0
    assert (judged.mutants, judged.mutants_killed) == (12, 12)
    assert (judged.tests, judged.passing, judged.covering, judged.assertions) == (2, 2, 2, 8)
    # one test of the two: less coverage, fewer mutants killed
    one = judge(project, STRONG, ["test_out_of_range"])
    assert one.passed and one.line_coverage < 1.0 and one.branch_coverage < 1.0
    assert one.mutants == 12 and 0 < one.mutants_killed < 12 and one.assertions == 2


@pytest.mark.slow
def test_a_whole_generated_module_is_judged_by_its_passing_tests_that_run_the_function(project):
    judged = judge(project, PYNGUIN_STYLE)  # every test of the file, as for Pynguin's module
    assert judged.tests == 4 and judged.passing == 3  # test_case_3 expects the wrong verdict
    assert judged.status == "failed" and not judged.passed
    assert judged.covering == 2 and judged.assertions == 2  # test_case_1 never runs grade
    assert judged.branches == 6 and judged.covered_branches == 3  # the raise and the "A" verdict only
    # killed: the two negated conditions (95 no longer "A") and `or` -> `and` (-5 no longer raises)
    assert (judged.mutants, judged.mutants_killed) == (12, 3)


@pytest.mark.slow
def test_checks_that_repeat_a_path_and_catch_nothing_new_are_counted_idle(project):
    judged = judge(project, REPETITIVE)
    assert judged.passed and judged.covering == 1 and judged.assertions == 4
    assert judged.idle_checks == 2  # grade(96) and grade(97) take grade(95)'s path and catch no other mutant


@pytest.mark.slow
def test_a_test_that_fails_on_the_unmutated_rewrite_kills_nothing(project):
    """A mutant is the module rewritten by `ast.unparse` with one change; a test that tells the rewrite
    from the original (here it reads a comment) would otherwise kill every mutant."""
    judged = judge(project, READS_ITS_SOURCE)
    assert judged.tests == 1 and judged.passing == 0 and judged.covering == 0
    assert judged.mutants == 12 and judged.mutants_killed == 0


def test_an_empty_test_module_is_judged_without_a_sandbox(project):
    judged = judge(project, "# Pynguin wrote no test\n")
    assert judged.status == "no test" and judged.tests == 0 and judged.mutants == 12 and not judged.passed


def test_rows_count_an_unserved_function_against_its_tool():
    served = {"id": "m.py::f", "valid_syntax": True, "delivered": {
        "served": True, "passed": True, "line_coverage": 1.0, "branch_coverage": 0.5, "mutants": 10,
        "mutants_killed": 8, "tests_for_function": 2, "assertions": 6, "idle_checks": 1, "seconds": 40.0,
        "judge_seconds": 10.0, "tests": [{"name": "test_a"}, {"name": "test_b"}]}}
    unserved = {"id": "m.py::g", "valid_syntax": False, "seconds": 5.0,
                "delivered": {"served": False, "why": "no valid candidate", "seconds": 5.0, "mutants": 6,
                              "mutants_killed": 0}}
    rows = [row_from_result(served), row_from_result(unserved)]
    assert rows[0].seconds == 30.0  # the judging is not what a user waits for
    assert (rows[0].tests, rows[0].assertions) == (2, 6) and not rows[1].served
    total = totals(rows)
    assert total.served == 1 and total.line_coverage == 0.5 and total.branch_coverage == 0.25
    assert (total.mutants_killed, total.mutants) == (8, 16) and total.mutation_score == 0.5
    assert total.tests_per_function == 2 and total.assertions_per_test == 3 and total.idle_checks == 1
    text = function_table(rows)
    lines = text.splitlines()
    assert lines[2].split() == ["m.py::f", "yes", "yes", "100.0%", "50.0%", "8/10", "2", "3.0", "1", "30"]
    assert lines[3].split()[:2] == ["m.py::g", "no"] and "0/6" in lines[3]
    assert lines[4].split()[:3] == ["total", "1/2", "1/1"] and "8/16" in lines[4]
    assert "m.py::g: no valid candidate" in text


def test_a_judgement_round_trips_through_its_saved_figures():
    judged = FunctionJudgement(status="passed", tests=2, passing=2, covering=2, assertions=5, idle_checks=1,
                               statements=4, branches=2, covered_statements=3, covered_branches=1, mutants=6, mutants_killed=4)
    figures = judged.figures()
    assert figures["line_coverage"] == 0.75 and figures["branch_coverage"] == 0.5 and figures["passed"]
    assert figures["tests_for_function"] == 2 and figures["assertions"] == 5 and figures["idle_checks"] == 1
    row = row_from_result({"id": "x", "delivered": {"served": True, **figures, "seconds": 3.0}})
    assert row == FunctionRow("x", True, passed=True, line_coverage=0.75, branch_coverage=0.5, mutants=6,
                              mutants_killed=4, tests=2, assertions=5, idle_checks=1, seconds=3.0)
