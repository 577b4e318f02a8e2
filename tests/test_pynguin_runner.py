"""Pynguin as the reference: how it is started (flags, environment, time limit), what a run that fails
or hangs gives, its own virtual environment, and its test module judged per function like unitune's.
A stand-in program plays Pynguin here (the real one needs the package index)."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest

from unitune.evaluation.function_listing import ListedFunction, LocatedFunction
from unitune.evaluation.pynguin_runner import (
    PYNGUIN_VERSION, PynguinError, ensure_pynguin, judge_pynguin_function, pynguin_row, pynguin_venv, run_pynguin,
)

MODULE = '''def grade(score):
    if score < 0:
        raise ValueError("negative")
    if score >= 90:
        return "A"
    return "B"
'''
WRITTEN = '''# written by the stand-in Pynguin
import pytest
import problem as module_0


def test_case_0():
    var_0 = module_0.grade(95)
    assert var_0 == "A"


def test_case_1():
    with pytest.raises(ValueError):
        module_0.grade(-1)
'''
STAND_IN = '''import json, os, sys, time
args = sys.argv[1:]
value = lambda flag: args[args.index(flag) + 1]
mode = os.environ.get("STAND_IN_MODE", "ok")
with open(os.environ["STAND_IN_RECORD"], "w") as handle:
    json.dump({"args": args, "danger_aware": os.environ.get("PYNGUIN_DANGER_AWARE")}, handle)
if mode == "hang":
    time.sleep(60)
if mode == "crash":
    print("starting"); print("ModuleNotFoundError: No module named 'problem'"); sys.exit(1)
name = "test_" + value("--module-name").replace(".", "_") + ".py"
with open(os.path.join(value("--output-path"), name), "w") as handle:
    handle.write(os.environ["STAND_IN_TESTS"])
'''


def executable(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!{sys.executable}\n{text}")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    monkeypatch.setenv("STAND_IN_RECORD", str(tmp_path / "record.json"))
    monkeypatch.setenv("STAND_IN_TESTS", WRITTEN)
    return executable(tmp_path / "bin" / "pynguin", STAND_IN)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "pyproject.toml").write_text('[project]\nname = "problem"\n')
    (tmp_path / "project" / "problem.py").write_text(MODULE)
    return tmp_path / "project"


LOCATED = LocatedFunction(ListedFunction("problem.py", "grade"), MODULE, 0, (1, 6))


def test_pynguin_is_started_on_the_module_with_its_budget_and_assertions(stand_in, project, tmp_path):
    run = run_pynguin(stand_in, project, "problem", tmp_path / "out", 12.4, seed=7)
    record = json.loads((tmp_path / "record.json").read_text())
    args = record["args"]
    assert record["danger_aware"] == "1"
    assert args[args.index("--project-path") + 1] == str(project)
    assert args[args.index("--module-name") + 1] == "problem"
    assert args[args.index("--maximum-search-time") + 1] == "12"
    assert args[args.index("--assertion-generation") + 1] == "MUTATION_ANALYSIS"
    assert args[args.index("--seed") + 1] == "7" and "--no-xfail" in args
    assert run.status == "ok" and run.test_file == WRITTEN and run.budget_seconds == 12 and run.seconds > 0


def test_a_run_that_fails_or_hangs_says_so(stand_in, project, tmp_path, monkeypatch):
    monkeypatch.setenv("STAND_IN_MODE", "crash")
    crashed = run_pynguin(stand_in, project, "problem", tmp_path / "crash", 5)
    assert crashed.status == "failed" and not crashed.test_file
    assert "No module named 'problem'" in crashed.detail
    row = pynguin_row("problem.py::grade", crashed, judge_pynguin_function(project, crashed, LOCATED), 3.0)
    assert not row.served and row.why.startswith("Pynguin failed: ") and row.mutants > 0  # its mutants still count

    monkeypatch.setenv("STAND_IN_MODE", "hang")
    hung = run_pynguin(stand_in, project, "problem", tmp_path / "hang", 5, timeout=1)
    assert hung.status == "timeout" and hung.seconds < 30


@pytest.mark.slow
def test_its_test_module_is_judged_per_function_by_the_same_harness(stand_in, project, tmp_path):
    run = run_pynguin(stand_in, project, "problem", tmp_path / "out", 5)
    judged = judge_pynguin_function(project, run, LOCATED)
    assert judged.passed and judged.covering == 2 and judged.assertions == 2
    assert judged.line_coverage == 0.8 and judged.branch_coverage == 0.75  # `return "B"` never runs
    row = pynguin_row("problem.py::grade", run, judged, seconds_share=2.5)
    assert row.served and row.tests == 2 and row.seconds == 2.5
    assert row.mutants == judged.mutants and 0 < row.mutants_killed < row.mutants


def test_an_installed_pynguin_is_reused_per_python_version(tmp_path):
    venv = pynguin_venv(tmp_path, "3.10")
    executable(venv / "bin" / "python", f"print({PYNGUIN_VERSION!r})")
    program = executable(venv / "bin" / "pynguin", "")
    base_310 = executable(tmp_path / "python3.10", "print('3.10')")  # says its version, installs nothing
    assert ensure_pynguin(tmp_path, base_python=str(base_310)) == program
    base_312 = executable(tmp_path / "python3.12", "import sys; print('3.12'); sys.exit(sys.argv[1] != '-c')")
    with pytest.raises(PynguinError) as raised:  # another version: its own environment, made anew
        ensure_pynguin(tmp_path, base_python=str(base_312))
    assert "pynguin-" + PYNGUIN_VERSION + "-py3.12" in str(raised.value)


def test_when_pynguin_cannot_be_installed_the_error_says_what_it_needs(tmp_path):
    broken = executable(tmp_path / "python", "import sys\nif sys.argv[1:2] == ['-c']: print('3.11')\n"
                                             "else: print('No matching distribution found'); sys.exit(1)")
    with pytest.raises(PynguinError) as raised:
        ensure_pynguin(tmp_path / "cache", base_python=str(broken))
    message = str(raised.value)
    assert f"installing Pynguin {PYNGUIN_VERSION}" in message and "package index" in message
    assert "No matching distribution found" in message
    assert os.path.basename(str(pynguin_venv(tmp_path / "cache", "3.11"))) in message
    with pytest.raises(PynguinError, match="--pynguin-python"):
        ensure_pynguin(tmp_path / "cache", base_python=str(tmp_path / "no-such-python"))
