"""`unitune eval`: saved results are reused only for the same model files, and `--compare` shows how
each adapter was trained."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from unitune.cli import main
from unitune.commands.eval import training_table
from unitune.evaluation.model_eval import code_stamp, model_stamp, results_stamp
from unitune.settings import Settings


def test_stamp_changes_when_the_model_or_adapter_changes(tmp_path):
    model, adapter = tmp_path / "model", tmp_path / "adapter"
    model.mkdir()
    adapter.mkdir()
    (model / "model.safetensors").write_bytes(b"a")
    (adapter / "adapter_model.safetensors").write_bytes(b"b")
    first = model_stamp(str(model), adapter)
    assert model_stamp(str(model), adapter) == first
    (adapter / "eval-humaneval.json").write_text("{}")  # our own results do not change the stamp
    assert model_stamp(str(model), adapter) == first
    (model / "model.safetensors").write_bytes(b"aa")
    second = model_stamp(str(model), adapter)
    assert second != first
    (adapter / "adapter_model.safetensors").write_bytes(b"bb")
    assert model_stamp(str(model), adapter) != second
    assert model_stamp("org/some-model") == model_stamp("org/some-model") != model_stamp("org/other")


def test_bundled_model_is_stamped_by_its_files():
    from unitune.runtime.loading import bundled_model_folder
    from unitune.settings import BUNDLED_TEST_MODEL

    folder = bundled_model_folder(BUNDLED_TEST_MODEL)
    assert folder is not None
    assert model_stamp(BUNDLED_TEST_MODEL) == model_stamp(str(folder)) != model_stamp("no-such-model-xyz")


@pytest.mark.slow
def test_compare_reuses_results_only_for_unchanged_model(tiny_base, home, tmp_path, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_base, model)
    args = ["eval", "--compare", "base", "--dataset", "humaneval", "--limit", "1", "--model", str(model)]
    assert main(args + ["--json"]) == 0
    saved = home / "evals" / "base-model-humaneval-1.json"
    record = json.loads(saved.read_text())
    assert record["model_stamp"] == results_stamp(Settings(model=str(model)))
    report = json.loads(capsys.readouterr().out)
    assert report[0]["problems"] == 1 and report[0]["training"] == {}

    # Reused: a marker planted in the saved results comes back.
    record["seconds"] = 12345.0
    saved.write_text(json.dumps(record))
    assert main(args + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["seconds"] == 12345.0

    # Another setting is another measurement: run again, not the saved results, and saved apart, so
    # that the default's results are still there to compare with.
    assert main(args + ["--json", "--context", "fm"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["seconds"] != 12345.0
    assert len(list((home / "evals").glob("base-model-humaneval-1-s*.json"))) == 1
    assert main(args + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["seconds"] == 12345.0

    # Another candidate count is another measurement: run, and saved apart.
    assert main(args + ["--json", "--candidates", "2"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["seconds"] != 12345.0
    assert (home / "evals" / "base-model-humaneval-1-c2.json").is_file()

    # The model changed (retrained): measured again.
    weights = next(model.glob("*.safetensors"))
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert main(args + ["--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["seconds"] != 12345.0


def test_training_table_shows_each_adapter():
    text = training_table(
        ["base (m)", "p-lora", "p-full"],
        [{}, {"method": "lora", "trainable_parameters": 65536, "trainable_percent": 2.245, "train_seconds": 90.0,
              "peak_memory_mib": 607.4, "valid_loss_before": 2.5, "valid_loss_after": 1.25},
         {"method": "full", "trainable_parameters": 2853120, "trainable_percent": 100.0, "train_seconds": 300.0,
          "peak_memory_mib": 700.0, "valid_loss_before": 2.5, "valid_loss_after": None}],
    )
    lines = text.splitlines()
    assert lines[0].split() == ["method", "trainable", "%", "train", "time", "peak", "MiB", "valid", "loss",
                                "before", "after"]
    assert lines[2].split()[:2] == ["base", "(m)"] and lines[2].split()[2:] == ["-"] * 7
    assert lines[3].split() == ["p-lora", "lora", "65,536", "2.245", "1.5", "min", "607", "2.500", "1.250"]
    assert lines[4].split()[-2:] == ["2.500", "-"]


@pytest.mark.slow
def test_a_held_out_split_is_judged_with_the_projects_own_environment(trained_base, example_project, home,
                                                                      monkeypatch, capsys):
    """The held-out copy leaves the project's `.venv` where it is; the raw test and the delivered ones are
    still run with it, not with unitune's own interpreter (which lacks what the project's tests import)."""
    import subprocess
    import sys

    project = example_project / "python"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(project / ".venv")],
                   check=True)
    site_packages = next((project / ".venv" / "lib").glob("python*/site-packages"))
    (site_packages / "only_in_the_project_env.py").write_text("READY = True\n", "utf-8")
    (project / "tests").mkdir()
    (project / "tests" / "conftest.py").write_text("import only_in_the_project_env  # noqa: F401\n", "utf-8")
    _write_deposit_pair(project)
    monkeypatch.chdir(project)
    assert main(["eval", "--base", "--dataset", "pairs.jsonl", "--repo", ".", "--model", str(trained_base),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["pass_at_1"] == 1.0, report["results"][0]["status"]
    assert report["delivered"]["pass_rate"] == 1.0 and report["delivered"]["line_coverage"] > 0.5


def _write_deposit_pair(project: Path) -> None:
    """A pairs file whose test split is the examples' `Account.deposit`, with its developer's test."""
    pair = {"language": "python", "test_file": "tests/test_account.py", "test_name": "test_deposit",
            "focal_file": "bank/account.py", "focal_name": "deposit", "focal_qualified_name": "Account.deposit",
            "test_code": "def test_deposit():\n    assert Account('a').deposit(2) == 2\n",
            "focal_code": "", "prompt": "", "completion": "", "split": "test"}
    (project / "pairs.jsonl").write_text(json.dumps(pair) + "\n", "utf-8")


@pytest.mark.slow
def test_eval_on_a_pairs_file_with_a_relative_repo(trained_base, example_project, home, monkeypatch, capsys,
                                                   tmp_path):
    """`unitune eval --dataset pairs.jsonl --repo .` from inside the mined project, as a user types it:
    the model's test for `Account.deposit` is written into the project copy and run."""
    project = example_project / "python"
    _write_deposit_pair(project)
    monkeypatch.chdir(project)
    code = main(["eval", "--base", "--dataset", "pairs.jsonl", "--repo", ".", "--model", str(trained_base), "--json",
                 "--save-tests", str(tmp_path / "delivered")])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["problems"] == 1
    assert report["valid_syntax"] == 1.0 and report["pass_at_1"] == 1.0, report["results"]
    assert not (project / "tests" / "test_account.py").exists()  # judged in a copy, the project untouched
    # The same completion through the assured pipeline, judged apart: served, passing, covering.
    delivered = report["delivered"]
    assert delivered["served"] == 1.0 and delivered["pass_rate"] == 1.0, report["results"][0]["delivered"]
    assert delivered["line_coverage"] > 0.5
    saved = tmp_path / "delivered" / "test_bank_account_py_Account_deposit.py"
    assert "def test_deposit():" in saved.read_text()


def test_an_interrupted_eval_resumes_where_it_stopped(tiny_base, home, tmp_path, capsys):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_base, model)
    args = ["eval", "--base", "--dataset", "humaneval", "--limit", "2", "--model", str(model), "--json"]
    partial = home / "evals" / "base-model-humaneval-2.partial.jsonl"
    partial.parent.mkdir(parents=True)
    seeded = {"id": "HumanEval/0", "valid_syntax": True, "passed": True, "asserts": True, "status": "passed",
              "test": "# judged before the interruption", "seconds": 1000.0}
    # The header names these model files; the last line was cut short by the kill.
    stamp = results_stamp(Settings(model=str(model)))  # the model files, the settings and the code
    partial.write_text(json.dumps({"model_stamp": stamp}) + "\n" + json.dumps(seeded) + "\n"
                       + '{"id": "HumanEval/1", "valid_')

    assert main(args) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert "resuming, 1 problems already judged" in captured.err
    assert [r["id"] for r in report["results"]] == ["HumanEval/0", "HumanEval/1"]
    assert report["results"][0]["test"] == "# judged before the interruption"
    assert report["results"][1]["test"] != "# judged before the interruption"
    assert report["seconds"] >= 1000.0  # the whole evaluation's time, not only the resumed part
    assert not partial.exists()


def test_results_of_other_model_files_are_not_resumed(tiny_base, home, tmp_path, capsys):
    args = ["eval", "--base", "--dataset", "humaneval", "--limit", "1", "--model", str(tiny_base), "--json"]
    partial = home / "evals" / f"base-{tiny_base.name}-humaneval-1.partial.jsonl"
    partial.parent.mkdir(parents=True)
    seeded = {"id": "HumanEval/0", "valid_syntax": True, "test": "# another model's", "seconds": 1000.0}
    partial.write_text(json.dumps({"model_stamp": "another model"}) + "\n" + json.dumps(seeded) + "\n")

    assert main(args) == 0
    captured = capsys.readouterr()
    assert "resuming" not in captured.err
    assert json.loads(captured.out)["results"][0]["test"] != "# another model's"
    # nothing judged is lost: the other run's results are moved aside, and the user is told where
    kept = partial.with_name(partial.name.replace(".partial.jsonl", ".earlier.jsonl"))
    assert "# another model's" in kept.read_text()
    assert str(kept) in captured.err


def test_a_change_to_the_code_is_a_change_of_the_results(tmp_path, monkeypatch):
    """Results of another version of the code are not resumed: the stamp follows the packages' files."""
    package = tmp_path / "judging"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "rules.py").write_text("LIMIT = 12\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = code_stamp(("judging",))
    assert code_stamp(("judging",)) == before  # the same files, the same stamp
    (package / "rules.py").write_text("LIMIT = 48\n")
    assert code_stamp(("judging",)) != before
