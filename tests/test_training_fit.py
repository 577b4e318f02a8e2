"""Training on a real repository and a CPU: long pairs are fitted into the block (the focal method and
the test's start kept) instead of dropped; a time budget ends a run with its adapter and a decayed
learning rate; `--name` of an existing adapter is refused without `--overwrite`; QLoRA (4-bit base +
LoRA) trains on a CPU; a block longer than the model's context is refused."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import PY_FOCAL, example_prompt

from unitune.adapters.constants import CARD_FILE
from unitune.cli import main
from unitune.fitting import fit_code, focal_span

FOCAL = "def focal(a, b):\n    if a:\n        return b\n    return a"


def _long_module() -> str:
    before = [f"def helper_{i}(x):\n    return x + {i}\n" for i in range(30)]
    after = [f"def after_{i}():\n    pass\n" for i in range(30)]
    return "\n".join(["import os", *before, FOCAL + "\n", *after, "", "import pytest", "from m import focal"])


def _words(text: str) -> int:
    return len(text.split())


def test_fitting_keeps_the_focal_method_and_the_header_and_drops_the_farthest_lines():
    code = _long_module()
    budget = _words(code) // 3
    fitted = fit_code(code, "python", "focal", budget, _words)
    assert fitted is not None and _words(fitted) <= budget
    assert FOCAL in fitted  # whole
    assert fitted.endswith("import pytest\nfrom m import focal")  # the test file's header, right before the opening
    assert "def helper_29(" in fitted and "def helper_0(" not in fitted  # the farthest went first
    assert "# ..." in fitted  # a reader (and the model) sees that code was left out
    assert fit_code(code, "python", "focal", _words(code), _words) == code  # what fits is untouched
    assert fit_code(code, "python", "focal", 5, _words) is None  # the focal method alone is over the budget


def test_the_focal_method_of_a_java_class_is_found_to_its_closing_brace():
    lines = ["class A {", "    int x;", "    int deposit(int amount) {", "        if (amount > 0) {",
             "            x += amount;", "        }", "        return x;", "    }", "    void other() {}", "}"]
    assert focal_span(lines, "java", "A.deposit") == (2, 7)
    assert focal_span(lines, "python", "deposit") is None


def _pair(prompt: str, completion: str, language: str = "python", focal: str = "focal") -> dict:
    return {"language": language, "prompt": prompt, "completion": completion, "split": "train",
            "focal_file": "m.py", "test_file": "tests/test_m.py", "focal_name": focal, "focal_qualified_name": focal}


CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.mark.parametrize("style", ["completion", "chat"])
def test_a_long_pair_is_fitted_not_dropped(style):
    import tinymodels

    from unitune.prompt import model_input
    from unitune.training.data import IGNORE_INDEX, tokenize_pairs

    tokenizer = tinymodels.make_tokenizer()
    if style == "chat":
        tokenizer.chat_template = CHAT_TEMPLATE
    prompt = _long_module() + "\n\n\ndef test_focal():\n"
    body = "".join(f"    assert focal({i}, {i + 1}) == {i + 1}\n" for i in range(1, 80))
    pair = _pair(prompt, body)
    full = len(tokenizer(model_input(tokenizer, prompt, "python"))["input_ids"])
    block = full // 2 + 60
    split = tokenize_pairs([pair], tokenizer, block)
    assert (split.truncated, split.dropped, len(split.examples)) == (1, 0, 1)
    example = split.examples[0]
    assert len(example.input_ids) <= block
    prompt_ids = [t for t, label in zip(example.input_ids, example.labels) if label == IGNORE_INDEX]
    shown = tokenizer.decode(prompt_ids)
    assert FOCAL in shown and shown.rstrip().endswith("def test_focal():")  # focal method and opening kept
    test = tokenizer.decode([label for label in example.labels if label != IGNORE_INDEX])
    assert test.startswith("    assert focal(1, 2) == 2\n") and test.endswith("\n")  # its start, cut at a line
    assert example.labels[-1] != tokenizer.eos_token_id  # never taught to stop mid-test
    dropped = tokenize_pairs([pair], tokenizer, block, over_length="drop")
    assert (dropped.truncated, dropped.dropped, dropped.examples) == (0, 1, [])


@pytest.mark.parametrize("style", ["completion", "chat"])
def test_a_pair_whose_focal_method_alone_outgrows_the_block_is_fitted_too(style):
    """At --block-size 1024 half of a real repository's pairs were dropped: their focal method did not fit
    what the test left. Such a prompt now loses its far beginning, as inference cuts a prompt, and keeps
    its end: the focal method's last lines and the test's opening."""
    import tinymodels

    from unitune.prompt import model_input
    from unitune.training.data import IGNORE_INDEX, tokenize_pairs

    tokenizer = tinymodels.make_tokenizer()
    if style == "chat":
        tokenizer.chat_template = CHAT_TEMPLATE
    focal = "def focal(a, b):\n" + "".join(f"    a = a + {i}  # step {i} of many\n" for i in range(300)) + "    return a\n"
    pair = _pair(focal + "\n\n\ndef test_focal():\n", "    assert focal(1, 2) == 3\n")
    # room for the chat's instruction, the test, and about a tenth of the focal method
    block = len(tokenizer(model_input(tokenizer, "\n\n\ndef test_focal():\n", "python"))["input_ids"]) + 200
    split = tokenize_pairs([pair], tokenizer, block)
    assert (split.truncated, split.dropped, len(split.examples)) == (1, 0, 1)
    example = split.examples[0]
    assert len(example.input_ids) <= block
    shown = tokenizer.decode([t for t, label in zip(example.input_ids, example.labels) if label == IGNORE_INDEX])
    assert "return a" in shown and "def test_focal():" in shown
    assert tokenizer.decode([label for label in example.labels if label != IGNORE_INDEX]).startswith("    assert focal(1, 2)")


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("UNITUNE_CONFIG", str(tmp_path / "config.toml"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    prompt = example_prompt(*PY_FOCAL).text
    rows = [{**_pair(prompt, f'    account = Account("u{i}")\n    assert account.deposit({i}) == {i}\n'),
             "focal_file": "bank/account.py", "test_name": f"test_{i}", "test_code": "", "focal_code": "",
             "focal_name": "deposit", "focal_qualified_name": "Account.deposit", "split": "train" if i < 6 else "valid"}
            for i in range(8)]
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_the_schedule_is_fitted_to_the_time_left():
    from unitune.training.trainer import LinearSchedule, RunState, _fit_schedule

    schedule = LinearSchedule(warmup=0.1, total=100)
    assert schedule(0) == pytest.approx(1 / 11)  # the first step learns: a budget may allow only that one
    assert schedule(5) == pytest.approx(6 / 11) and schedule(10) == 1.0 and schedule(55) == pytest.approx(0.5)
    _fit_schedule(schedule, RunState(step=10, seconds=100.0), budget=200.0, planned=100)
    assert schedule.total == 20  # 10 s a step, 100 s left
    assert schedule(20) == 0.0 and schedule(11) == pytest.approx(0.5)  # warm-up: 2 steps of 20
    _fit_schedule(schedule, RunState(step=12, seconds=250.0), budget=200.0, planned=100)
    assert schedule.total == 12  # spent: this step is the last
    _fit_schedule(schedule, RunState(step=1, seconds=0.1), budget=1e6, planned=100)
    assert schedule.total == 100  # never past the planned steps


@pytest.mark.slow
def test_a_time_budget_ends_the_run_with_its_adapter(tiny_base, pairs_file, home, tmp_path):
    from unitune.training.config import TrainConfig
    from unitune.training.run import train

    config = TrainConfig(method="lora", name="budget", model=str(tiny_base), epochs=10_000, grad_accum=1,
                         minutes=0.02, checkpoint_every=10_000)
    summary = train(pairs_file, config, project_root=tmp_path)
    history = json.loads((home / "adapters" / "budget" / "history.json").read_text())["history"]
    assert summary["stopped_by"] == "minutes" and 1 <= summary["steps"] < 60_000
    assert history[-1]["lr"] == 0.0  # the schedule decayed to the end of the budget
    assert history[-1]["eval_loss"] is not None  # and the run ended as a finished run does


@pytest.mark.slow
def test_an_existing_adapter_name_is_refused_without_overwrite(tiny_base, pairs_file, home, tmp_path, capsys):
    argv = ["train", str(pairs_file), "--name", "mine", "--model", str(tiny_base), "--max-steps", "1"]
    assert main(argv) == 0
    card = home / "adapters" / "mine" / CARD_FILE
    first = card.read_text()
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "an adapter named 'mine' is already in the registry" in err and "--overwrite" in err
    assert card.read_text() == first  # untouched
    assert main([*argv, "--overwrite", "--seed", "7"]) == 0
    assert json.loads(card.read_text())["training"]["hyperparameters"]["seed"] == 7


@pytest.mark.slow
def test_qlora_trains_on_a_cpu(tiny_base, pairs_file, home, tmp_path):
    from safetensors import safe_open

    from unitune.training.config import TrainConfig
    from unitune.training.run import train

    summary = train(pairs_file, TrainConfig(method="lora", name="q", model=str(tiny_base), quantization="4bit",
                                            max_steps=3, grad_accum=1, lr=1e-2), project_root=tmp_path)
    assert summary["quantization"] == "4bit" and summary["device"] == "cpu"
    assert summary["metrics"]["eval_loss_after"] < summary["metrics"]["eval_loss_before"]
    with safe_open(str(Path(summary["adapter_path"]) / "adapter_model.safetensors"), "pt") as weights:
        assert any("lora_A" in key for key in weights.keys())


def test_a_4bit_model_built_for_training_still_learns_after_an_evaluation_pass(tiny_base):
    """bitsandbytes repacks a 4-bit layer for a CPU inference kernel without a backward pass when it runs
    in eval mode without gradients (on a CPU with AVX-512 BF16); training evaluates first. Here every
    layer claims that CPU, so the check means the same on any machine."""
    import torch

    from unitune.runtime.loading import ModelSpec, load_model
    from unitune.training.config import TrainConfig
    from unitune.training.trainer import build_model

    base = load_model(ModelSpec(str(tiny_base), "cpu", "4bit"))
    quantized = [m for m in base.model.modules() if hasattr(m, "support_avx512bf16_for_cpu")]
    assert quantized
    for module in quantized:
        module.support_avx512bf16_for_cpu = True
    model = build_model(TrainConfig(method="lora", name="q", dropout=0.0), base, "llama")
    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    model.eval()
    with torch.no_grad():
        model(input_ids=ids, labels=ids)
    model.train()
    model(input_ids=ids, labels=ids).loss.backward()
    first_layer = [p for name, p in model.named_parameters() if "layers.0." in name and "lora_B" in name]
    assert first_layer and all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in first_layer)


@pytest.mark.parametrize(("extra", "fragment"), [
    (["--block-size", "100000"], "--block-size 100000 is longer than"),
    (["--minutes", "-5"], "--minutes must be positive (or 0: no time budget)"),
])
def test_settings_the_model_cannot_use_are_refused(extra, fragment, tiny_base, pairs_file, capsys):
    assert main(["train", str(pairs_file), "--name", "x", "--model", str(tiny_base), *extra]) == 2
    assert fragment in capsys.readouterr().err


def test_pairs_with_nothing_in_the_train_split_say_so(tmp_path):
    """A pairs file whose every pair is held out is not a block-size problem: the message names the split."""
    from unitune.training.config import TrainConfig
    from unitune.training.data import TokenizedSplit
    from unitune.training.trainer import TrainingError, train_loop

    with pytest.raises(TrainingError, match=r"nothing in the train split \(3 in valid; the rest in test\)"):
        train_loop(TrainConfig(name="x"), None, TokenizedSplit(pairs=0), TokenizedSplit(pairs=3), 0, tmp_path, False,
                   lambda event: None)
    with pytest.raises(TrainingError, match="none of the 4 training pairs fits the block size"):
        train_loop(TrainConfig(name="x"), None, TokenizedSplit(pairs=4, dropped=4), TokenizedSplit(pairs=3), 0,
                   tmp_path, False, lambda event: None)


@pytest.mark.parametrize("saved, problem", [
    ('{"rank": "sixteen"}', "rank is 'sixteen', not a value it can have"),
    ("not json", "is damaged (JSONDecodeError)"),
    ("[" * 200_000, "is damaged (RecursionError)"),
    ('{"epochs": -3}', "--epochs must be positive, not -3"),
    ('["lora"]', "does not hold a configuration"),
])
def test_a_damaged_run_configuration_is_refused_naming_what_is_wrong(tmp_path, saved, problem):
    """The configuration a run resumes with is checked as the command line checks flags (a rank of
    "sixteen" once reached the model as a string)."""
    from unitune.training.config import CONFIG_FILE, TrainConfig, TrainConfigError

    (tmp_path / CONFIG_FILE).write_text(saved)
    with pytest.raises(TrainConfigError, match=re.escape(problem)):
        TrainConfig.load(tmp_path / CONFIG_FILE)
    TrainConfig(name="x", rank=8, minutes=None).save(tmp_path)
    assert TrainConfig.load(tmp_path / CONFIG_FILE).rank == 8
