"""`unitune eval` on real functions, end to end as a user runs it: a listing of functions in a
project (`--dataset LIST --repo DIR`) and a set of pinned wheels (`--dataset SET.toml`), with a
report per function, saved tests, JSON and resuming."""

from __future__ import annotations

import hashlib
import json

import pytest

from unitune.cli import main
from unitune.evaluation.model_eval import dataset_key_of, results_stamp
from unitune.settings import Settings

from test_realcode_dataset import CORE, build_wheel


@pytest.fixture
def repo(tmp_path):
    project = tmp_path / "repo"
    (project / "tinypkg").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "tinypkg"\n')
    (project / "tinypkg" / "__init__.py").write_text("")
    (project / "tinypkg" / "core.py").write_text(CORE)
    return project


LISTING = "# two functions of the tiny package\ntinypkg/core.py::sign\ntinypkg/core.py::Meter.add  # a method\n"


@pytest.mark.slow
def test_eval_of_a_listing_reports_each_function_and_leaves_the_project_alone(home, repo, tmp_path, capsys):
    listing = tmp_path / "functions.txt"
    listing.write_text(LISTING)
    args = ["eval", "--base", "--dataset", str(listing), "--repo", str(repo), "--model", "unitune-mini"]
    assert main(args + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"] == "functions.txt" and report["problems"] == 2
    assert [r["id"] for r in report["results"]] == ["tinypkg/core.py::sign", "tinypkg/core.py::Meter.add"]
    for result in report["results"]:
        # served or not, each function's mutants are counted, so the totals of two tools compare
        assert result["delivered"]["mutants"] > 0
    assert sorted(p.name for p in repo.iterdir()) == ["pyproject.toml", "tinypkg"]  # no test written into it
    # named after the listing and a digest of it and the project: another project's functions.txt is other results
    saved = home / "evals" / f"base-unitune-mini-{dataset_key_of(str(listing), repo)}.json"
    assert json.loads(saved.read_text())["problems"] == 2

    # the text report has a line per function and the totals
    assert main(args + ["--limit", "1"]) == 0
    out = capsys.readouterr().out
    assert "per function (delivered tests)" in out
    lines = [line for line in out.splitlines() if line.startswith(("tinypkg/", "total"))]
    assert [line.split()[0] for line in lines] == ["tinypkg/core.py::sign", "total"]


@pytest.mark.slow
def test_an_interrupted_listing_eval_resumes(home, repo, tmp_path, capsys):
    listing = tmp_path / "functions.txt"
    listing.write_text(LISTING)
    partial = home / "evals" / f"base-unitune-mini-{dataset_key_of(str(listing), repo)}.partial.jsonl"
    partial.parent.mkdir(parents=True)
    seeded = {"id": "tinypkg/core.py::sign", "valid_syntax": True, "passed": True, "asserts": True,
              "status": "passed", "test": "# judged before the interruption", "seconds": 500.0,
              "delivered": {"served": True, "passed": True, "line_coverage": 1.0, "branch_coverage": 1.0,
                            "mutants": 4, "mutants_killed": 4, "tests_for_function": 1, "assertions": 3,
                            "idle_checks": 1, "seconds": 500.0, "judge_seconds": 100.0}}
    stamp = results_stamp(Settings(model="unitune-mini"))
    partial.write_text(json.dumps({"model_stamp": stamp}) + "\n" + json.dumps(seeded) + "\n")
    assert main(["eval", "--base", "--dataset", str(listing), "--repo", str(repo), "--model", "unitune-mini"]) == 0
    captured = capsys.readouterr()
    assert "resuming, 1 problems already judged" in captured.err
    sign = next(line for line in captured.out.splitlines() if line.startswith("tinypkg/core.py::sign"))
    assert sign.split()[1:] == ["yes", "yes", "100.0%", "100.0%", "4/4", "1", "3.0", "1", "400"]
    assert not partial.exists()


@pytest.mark.slow
def test_eval_of_a_pinned_set_works_on_fresh_copies_of_the_cached_wheel(home, tmp_path, capsys):
    wheel = build_wheel(tmp_path / "cache" / "wheels")  # already fetched: pip is not needed
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    definition = tmp_path / "tiny.toml"
    definition.write_text(f'[[package]]\nname = "tinypkg"\nversion = "1.0"\nwheel_sha256 = "{sha}"\n'
                          'functions = ["tinypkg/core.py::Meter.add"]\n')
    assert main(["eval", "--base", "--dataset", str(definition), "--dataset-cache", str(tmp_path / "cache"),
                 "--model", "unitune-mini", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in report["results"]] == ["tinypkg/core.py::Meter.add"]
    project = tmp_path / "cache" / "projects" / "tinypkg-1.0"
    assert (project / "tinypkg" / "core.py").read_text() == CORE and not (project / "tests").exists()


# What the served "model" writes after the prompt's `def test_sign():` line, then the chat answer's fence.
SIGN_BODY = "    assert sign(-3) == -1\n    assert sign(0) == 0\n    assert sign(7) == 1\n```\n"


@pytest.mark.slow
def test_a_served_function_is_judged_for_coverage_mutants_and_assertions(chat_base, home, repo, tmp_path, capsys):
    """A model (an OpenAI-compatible server on the loopback, `--server-url`) that writes a known
    passing test for `sign`: served, and the judged figures are the test's."""
    from unitune.evaluation.function_judge import MUTANTS_PER_FUNCTION
    from unitune.assured.mutants import mutants
    from vllm_contract import VllmContractServer

    listing = tmp_path / "functions.txt"
    listing.write_text("tinypkg/core.py::sign\n")
    with VllmContractServer(str(chat_base), SIGN_BODY, max_model_len=2048) as server:
        assert main(["eval", "--base", "--dataset", str(listing), "--repo", str(repo), "--model", str(chat_base),
                     "--server-url", server.url, "--time-budget", "30", "--json",
                     "--save-tests", str(tmp_path / "delivered")]) == 0
    result = json.loads(capsys.readouterr().out)["results"][0]
    delivered = result["delivered"]
    assert delivered["served"] and delivered["passed"], delivered
    assert delivered["line_coverage"] == 1.0 and delivered["branch_coverage"] == 1.0
    assert delivered["mutants"] == len(mutants(CORE, "sign", MUTANTS_PER_FUNCTION)) > 0
    assert delivered["mutants_killed"] == delivered["mutants"]
    # every delivered test runs `sign` and is counted, with the assertions the delivered file holds
    assert delivered["tests_for_function"] == len(delivered["tests"]) >= 1
    assert delivered["assertions"] == delivered["file"].count("assert sign(") >= 1
    assert 0 < delivered["judge_seconds"] < delivered["seconds"]
    # where the wait went, stage by stage, to read when a function is slow
    assert {"generate", "validate", "total"} <= set(delivered["timings"]) and delivered["timings"]["total"] > 0
    assert isinstance(delivered["notes"], list)
    assert delivered["idle_checks"] == 0  # what adds nothing was minimized away before delivery
    assert delivered["test_file"].rsplit("/", 1)[-1].startswith("test_")  # where generate wrote the tests
    saved = (tmp_path / "delivered" / "test_tinypkg_core_py_sign.py").read_text()
    assert saved == delivered["file"] and "assert sign(-3) == -1" in saved
