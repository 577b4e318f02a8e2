"""Fine-tuning on tiny models: each method trains only its own parameters and lowers the loss; a
killed run resumes to the same losses; the adapter loads with plain PEFT and with `unitune generate`;
bad input gets one clear line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PY_FOCAL, example_prompt

from unitune.cli import main
from unitune.prompt import PROMPT_FORMAT_VERSION

METHODS = ["lora", "ia3", "prompt-tuning", "full"]


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    """Eight pairs for the example's Account.deposit: six to train on, two to validate."""
    prompt = example_prompt(*PY_FOCAL).text
    rows = []
    for i in range(8):
        completion = f'    account = Account("u{i}")\n    assert account.deposit({i + 1}) == {i + 1}\n'
        rows.append({"language": "python", "test_file": "tests/test_account.py", "test_name": f"test_deposit_{i}",
                     "focal_file": "bank/account.py", "focal_name": "deposit", "focal_qualified_name": "Account.deposit",
                     "test_code": "", "focal_code": "", "prompt": prompt, "completion": completion,
                     "split": "train" if i < 6 else "valid"})
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("UNITUNE_CONFIG", str(tmp_path / "config.toml"))
    return tmp_path / "home"


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_training_changes_only_the_adapter_and_lowers_the_loss(method, tiny_base, pairs_file, tmp_path):
    import torch

    from unitune.runtime.loading import ModelSpec, load_model
    from unitune.training import run_record, trainer
    from unitune.training.config import TrainConfig
    from unitune.training.data import read_pairs, tokenize_pairs

    base = load_model(ModelSpec(model=str(tiny_base), quantization="none"))
    original = {name: p.detach().clone() for name, p in base.model.named_parameters()}
    # (IA)³ scalings and virtual tokens move a random tiny model's loss slowly: larger steps for them.
    lr = {"lora": 1e-2, "ia3": 0.3, "prompt-tuning": 0.3, "full": 1e-3}[method]
    config = TrainConfig(method=method, name=f"t-{method}", lr=lr, epochs=4,
                         grad_accum=2, warmup=0.0, virtual_tokens=8, dropout=0.0)
    model = trainer.build_model(config, base, base.model.config.model_type)
    pairs = read_pairs(pairs_file)
    train = tokenize_pairs([p for p in pairs if p["split"] == "train"], base.tokenizer, 2048, 8 if method == "prompt-tuning" else 0)
    valid = tokenize_pairs([p for p in pairs if p["split"] == "valid"], base.tokenizer, 2048, 8 if method == "prompt-tuning" else 0)
    trainable, total = run_record.count_parameters(model)
    state = trainer.train_loop(config, model, train, valid, base.tokenizer.pad_token_id, tmp_path / "run", False,
                               lambda event: None)
    losses = [h["loss"] for h in state.history]
    assert losses[-1] < losses[0] - 0.01, losses  # a real decrease, far above float noise
    assert state.history[-1]["eval_loss"] < state.eval_before
    changed = {name for name, p in base.model.named_parameters()
               if name in original and not torch.equal(p.detach(), original[name])}
    full = method == "full"
    assert bool(changed) == full, f"{method} changed base weights: {sorted(changed)[:3]}"  # only full touches them
    assert (trainable == total) == full and 0 < trainable <= total and (full or trainable < total / 2)


def _train_process(pairs_file: Path, base: Path, name: str, env: dict, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "unitune", "train", str(pairs_file), "--method", "lora", "--name", name,
         "--model", str(base), "--max-steps", "8", "--grad-accum", "1", "--checkpoint-every", "2", "--epochs", "2",
         "--progress", "json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _history(home: Path, name: str) -> list[dict]:
    return json.loads((home / "adapters" / name / "history.json").read_text())["history"]


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [5, 7])  # 7: resumed from step 6, the end of the first epoch (6 examples)
def test_kill_and_resume_reproduces_the_uninterrupted_run(tiny_base, pairs_file, home, kill_at):
    env = {**os.environ, "UNITUNE_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    straight = _train_process(pairs_file, tiny_base, "straight", env)
    assert straight.wait(timeout=300) == 0, straight.stderr.read()
    killed = _train_process(pairs_file, tiny_base, "resumed", env)
    for line in killed.stdout:
        if json.loads(line).get("step") == kill_at:  # checkpoints exist for every second step before it
            os.kill(killed.pid, signal.SIGKILL)
            break
    killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert not (home / "adapters" / "resumed").exists()  # no half adapter
    again = subprocess.run([sys.executable, "-m", "unitune", "train", str(pairs_file), "--method", "lora", "--name",
                            "resumed", "--model", str(tiny_base)], capture_output=True, text=True, env=env)
    assert again.returncode == 2 and "--resume" in again.stderr  # refuses to silently start over
    resumed = _train_process(pairs_file, tiny_base, "resumed", env, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    a, b = _history(home, "straight"), _history(home, "resumed")
    assert [h["step"] for h in a] == [h["step"] for h in b] == list(range(1, 9))
    for x, y in zip(a, b):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-6, abs=1e-7)
        assert ("eval_loss" in x) == ("eval_loss" in y)
        assert x.get("eval_loss") == pytest.approx(y.get("eval_loss"), rel=1e-6, abs=1e-7)


@pytest.mark.slow
def test_by_default_each_example_is_an_update_within_a_twenty_minute_budget(tiny_base, pairs_file, home, capsys):
    # the study's 8 examples per step leave a CPU's 20 minutes a dozen updates: too few to change the tests
    assert main(["train", str(pairs_file), "--method", "lora", "--name", "defaults", "--model", str(tiny_base),
                 "--epochs", "1", "--judge", "0"]) == 0
    assert [h["step"] for h in _history(home, "defaults")] == list(range(1, 7))  # 6 train pairs, 6 updates
    config = json.loads((home / "adapters" / "defaults" / "train-config.json").read_text())
    assert (config["grad_accum"], config["minutes"]) == (1, 20.0)
    assert main(["train", str(pairs_file), "--method", "lora", "--name", "no-budget", "--model", str(tiny_base),
                 "--max-steps", "1", "--minutes", "0", "--judge", "0"]) == 0
    assert json.loads((home / "adapters" / "no-budget" / "train-config.json").read_text())["minutes"] is None
    capsys.readouterr()


@pytest.mark.slow
def test_adapter_card_plot_and_plain_peft_loading(tiny_base, pairs_file, home, capsys):
    code = main(["train", str(pairs_file), "--method", "lora", "--name", "card-check", "--model", str(tiny_base),
                 "--max-steps", "2", "--grad-accum", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "adapter card-check (lora) written to" in out and "validation loss" in out
    folder = home / "adapters" / "card-check"
    card = json.loads((folder / "unitune-adapter.json").read_text())
    assert card["method"] == "lora" and card["prompt_format_version"] == PROMPT_FORMAT_VERSION
    assert card["library_versions"]["peft"] and card["training"]["pairs"] == {"train": 6, "valid": 2}
    assert card["training"]["trainable_parameters"] > 0 and card["training"]["peak_memory_mib"] > 0
    assert card["metrics"]["eval_loss_before"] is not None and card["metrics"]["eval_loss_after"] is not None
    assert (folder / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((folder / "train-config.json").read_text())["rank"] == 16
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_base), str(folder))
    assert model.peft_config["default"].r == 16


@pytest.mark.slow
def test_trained_adapter_is_used_by_unitune_generate(trained_base, pairs_file, home, capsys, example_project):
    code = main(["train", str(pairs_file), "--method", "lora", "--name", "gen-check", "--model", str(trained_base),
                 "--max-steps", "1", "--grad-accum", "1", "--lr", "1e-7"])
    assert code == 0, capsys.readouterr().err
    capsys.readouterr()
    code = main(["generate", str(example_project / PY_FOCAL[0]), "--line", str(PY_FOCAL[1]), "--model",
                 str(trained_base), "--adapter", "gen-check"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "assert account.deposit(5) == 5" in out


@pytest.mark.slow
def test_train_ends_with_what_the_adapter_changed_on_held_out_code(trained_base, home, capsys, example_project,
                                                                  monkeypatch):
    """The summary's last lines judge base and adapter on the test split, as `unitune eval` would; an
    adapter trained with a vanishing learning rate writes what the base writes, and the summary says so."""
    project = example_project / "python"
    prompt = example_prompt(*PY_FOCAL).text
    rows = [{"language": "python", "test_file": "tests/test_account.py", "test_name": f"test_deposit_{i}",
             "focal_file": "bank/account.py", "focal_name": "deposit", "focal_qualified_name": "Account.deposit",
             "test_code": f"def test_deposit_{i}():\n    assert Account('u').deposit({i + 1}) == {i + 1}\n",
             "focal_code": "", "prompt": prompt,
             "completion": f'    account = Account("u{i}")\n    assert account.deposit({i + 1}) == {i + 1}\n',
             "split": ("train", "train", "valid", "test")[i]} for i in range(4)]
    (project / "pairs.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (project / "unitune.toml").write_text("time_budget = 20\n")  # the first passing test is enough here
    monkeypatch.chdir(project)

    code = main(["train", "pairs.jsonl", "--method", "lora", "--name", "payoff", "--model", str(trained_base),
                 "--max-steps", "1", "--grad-accum", "1", "--lr", "1e-9", "--judge", "3"])

    out, err = capsys.readouterr()
    assert code == 0, err
    assert "1 function the training never saw" in out, out
    assert "base model  served 1 of 1" in out and "adapter     served 1 of 1" in out, out
    assert "+0 points served, +0 points line coverage: no better than the base model" in out, out
    # The base's results are kept: a second adapter on the same pairs judges only itself.
    assert any((home / "evals").glob("base-*pairs-*.json"))

    # As the editor runs it (JSON events): the judging is announced after the last step, and the message
    # the editor shows at the end is built from the summary's figures.
    from unitune.server.features.training import payoff_message

    code = main(["train", "pairs.jsonl", "--method", "lora", "--name", "payoff-editor", "--model", str(trained_base),
                 "--max-steps", "1", "--grad-accum", "1", "--lr", "1e-9", "--judge", "3", "--progress", "json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events[-2:]] == ["judging", "done"]
    message = payoff_message(events[-1]["held_out"])
    assert message.startswith("on 1 held-out function, base model → adapter: served 1 → 1 of 1, line coverage "), message


def test_the_editor_says_what_the_adapter_changed_or_why_nothing_was_judged():
    from unitune.server.features.training import payoff_message

    held_out = {"functions": 8, "engine": "llama.cpp", "base": {"served": 6, "line_coverage": 0.31, "seconds": 40.0},
                "adapter": {"served": 7, "line_coverage": 0.474, "seconds": 41.0}}
    assert payoff_message(held_out) == ("on 8 held-out functions, base model → adapter: served 6 → 7 of 8, "
                                        "line coverage 31% → 47%")
    assert payoff_message("nothing held out to judge: no test split") == "nothing held out to judge: no test split"
    assert payoff_message(None) == payoff_message({"functions": 1}) == ""  # an older unitune's summary: no sentence


def test_judge_takes_a_count_or_zero(pairs_file, capsys):
    assert main(["train", str(pairs_file), "--name", "x", "--judge", "-1"]) == 2
    assert "--judge must be 0 (skip) or a number of functions, not -1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, code, fragment",
    [
        (["train", "/nonexistent/repo", "--name", "x"], 2, "no such repository or pairs file"),
        (["train", "{pairs}", "--name", "Bad Name"], 2, "not a valid adapter name"),
        (["train", "{empty}", "--name", "x"], 2, "holds no pairs"),
        (["train", "{broken}", "--name", "x"], 2, "not JSON"),
        (["train", "{pairs}", "--name", "x", "--model", "/nonexistent/model"], 2, "neither a folder nor"),
        (["train", "{pairs}", "--name", "x", "--language", "java"], 2, "holds no pairs for java"),
        (["train", "{prompt_not_text}", "--name", "x"], 2, ":1: `prompt` must be a string, not list"),
        (["train", "{bogus_split}", "--name", "x"], 2, ":1: split 'bogus' is not one of train, valid, test"),
        (["train", "{cobol}", "--name", "x"], 2, ":1: language 'cobol' is not one unitune trains on"),
    ],
)
def test_bad_input_is_one_line(argv, code, fragment, pairs_file, tmp_path, capsys):
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "broken.jsonl").write_text("{not json\n")
    first = json.loads(pairs_file.read_text().splitlines()[0])
    for name, change in (("prompt_not_text", {"prompt": ["def f"]}), ("bogus_split", {"split": "bogus"}),
                         ("cobol", {"language": "cobol"})):
        (tmp_path / f"{name}.jsonl").write_text(json.dumps({**first, **change}) + "\n")
    argv = [a.format(pairs=pairs_file, empty=tmp_path / "empty.jsonl", broken=tmp_path / "broken.jsonl",
                     **{name: tmp_path / f"{name}.jsonl" for name in ("prompt_not_text", "bogus_split", "cobol")})
            for a in argv]
    assert main(argv) == code
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err
    from unitune.training.trainer import run_dir_for

    assert not run_dir_for("x").exists()  # bad input leaves no run folder (no stray train-config.json)


def _straight_and_cut(tiny_base, pairs_file, tmp_path):
    """A run "straight" trained to its end, and the same run "cut" stopped after step 5: the configuration
    of a run by name, and the cut run's newest checkpoint (step 4)."""
    from unitune.training.checkpoints import checkpoint_dirs
    from unitune.training.config import TrainConfig
    from unitune.training.run import train
    from unitune.training.trainer import TrainingInterrupted, run_dir_for

    def config(name):
        return TrainConfig(method="lora", name=name, model=str(tiny_base), max_steps=6, grad_accum=1,
                           checkpoint_every=2, epochs=2)

    train(pairs_file, config("straight"), project_root=tmp_path)
    with pytest.raises(TrainingInterrupted):
        train(pairs_file, config("cut"), project_root=tmp_path, stop_after_step=lambda step: step == 5)
    return config, checkpoint_dirs(run_dir_for("cut"))[-1]


@pytest.mark.slow
def test_a_damaged_checkpoint_falls_back_to_the_one_before(tiny_base, pairs_file, home, tmp_path):
    from unitune.training.checkpoints import WEIGHTS_FILE
    from unitune.training.run import train

    config, newest = _straight_and_cut(tiny_base, pairs_file, tmp_path)
    assert newest.name == "step-4"
    (newest / WEIGHTS_FILE).write_bytes(b"\0" * 100)  # damaged on disk
    train(pairs_file, config("cut"), project_root=tmp_path, resume=True)  # resumed from step 2
    a, b = _history(home, "straight"), _history(home, "cut")
    assert [h["loss"] for h in a] == pytest.approx([h["loss"] for h in b], rel=1e-6, abs=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("damage", [{"step": "ten"}, {"epoch": -3}, {"seconds": float("nan")}])
def test_a_checkpoint_whose_state_was_damaged_is_passed_over_saying_so(tiny_base, pairs_file, home, tmp_path, capsys,
                                                                        damage):
    """A state edited or damaged into values a run never writes once crashed the resume (`"step": "ten"`) or
    trained a different adapter without a word (`"epoch": -3`): now the checkpoint before it is used, and
    stderr says so without -v."""
    import json

    from unitune.training.checkpoints import STATE_FILE
    from unitune.training.run import train

    config, newest = _straight_and_cut(tiny_base, pairs_file, tmp_path)
    state = json.loads((newest / STATE_FILE).read_text())
    (newest / STATE_FILE).write_text(json.dumps({**state, **damage}))
    capsys.readouterr()
    train(pairs_file, config("cut"), project_root=tmp_path, resume=True)
    assert "step-4 cannot be resumed from" in capsys.readouterr().err
    a, b = _history(home, "straight"), _history(home, "cut")
    assert [h["loss"] for h in a] == pytest.approx([h["loss"] for h in b], rel=1e-6, abs=1e-7)


@pytest.mark.slow
def test_a_checkpoint_past_the_end_of_its_run_is_refused_with_a_message(tiny_base, pairs_file, home, tmp_path):
    import json

    from unitune.training.checkpoints import STATE_FILE, CheckpointError, checkpoint_dirs
    from unitune.training.config import TrainConfig
    from unitune.training.run import train
    from unitune.training.trainer import TrainingInterrupted, run_dir_for

    config = TrainConfig(method="lora", name="far", model=str(tiny_base), max_steps=6, grad_accum=1,
                         checkpoint_every=2, epochs=2)
    with pytest.raises(TrainingInterrupted):
        train(pairs_file, config, project_root=tmp_path, stop_after_step=lambda step: step == 3)
    [checkpoint] = checkpoint_dirs(run_dir_for("far"))
    state = json.loads((checkpoint / STATE_FILE).read_text())
    (checkpoint / STATE_FILE).write_text(json.dumps({**state, "batch": 1000000}))
    with pytest.raises(CheckpointError, match="micro-batch 1000000, which this run's"):
        train(pairs_file, config, project_root=tmp_path, resume=True)


@pytest.mark.slow
def test_one_run_of_a_name_at_a_time_and_stale_staging_folders_go(home, pairs_file, tiny_base, tmp_path):
    import fcntl

    from unitune.training.config import TrainConfig
    from unitune.training.run import TrainInputError, train
    from unitune.training.trainer import run_dir_for

    run_dir = run_dir_for("busy")
    run_dir.mkdir(parents=True)
    (run_dir / ".adapter-abc123").mkdir()  # left by a run killed while it wrote the adapter
    with open(run_dir / ".lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another process training `busy`
        with pytest.raises(TrainInputError, match="another `unitune train --name busy` is running"):
            train(pairs_file, TrainConfig(method="lora", name="busy", model=str(tiny_base), max_steps=1),
                  project_root=tmp_path)
    assert (run_dir / ".adapter-abc123").exists()  # not touched while another run holds the lock
    train(pairs_file, TrainConfig(method="lora", name="busy", model=str(tiny_base), max_steps=1), project_root=tmp_path)
    assert not (run_dir / ".adapter-abc123").exists()


@pytest.mark.slow
def test_train_off_a_terminal_writes_progress_lines(tiny_base, pairs_file, home, tmp_path):
    """With stderr in a file `unitune train` once printed nothing until it ended (8.5 minutes in a real run)."""
    import os
    import subprocess
    import sys

    log = tmp_path / "train.log"
    with log.open("w") as stderr:
        run = subprocess.run([sys.executable, "-m", "unitune", "train", str(pairs_file), "--model", str(tiny_base),
                              "--name", "quiet", "--max-steps", "3", "--judge", "0"],
                             stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=600,
                             env={**os.environ, "UNITUNE_HOME": str(home)})
    assert run.returncode == 0, log.read_text()
    lines = log.read_text().splitlines()
    assert any(line.startswith("training: 1/") for line in lines), lines
    assert any(line.startswith("training: 3/3") for line in lines), lines
