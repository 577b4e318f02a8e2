"""`unitune pretrain` with tiny sizes on a small sample of the standard library, and the shipped
`unitune-mini` model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("tokenizers")

from unitune.training.model_folder import LOSS_FILE  # noqa: E402
from unitune.training.pretrain import run_pretrain  # noqa: E402
from unitune.training.pretrain_config import SHIPPED_FOLDER, PretrainConfig  # noqa: E402
from unitune.training.pretrain_corpus import CORPUS_FILE, CORPUS_STATS, is_held_out  # noqa: E402

MAX_SHIPPED_BYTES = 25 * 10**6

_PAIRS = [
    ("def add(a, b):\n    return a + b\n\n\nimport pytest\nfrom calc import add\n\n\ndef test_add(",
     "):\n    assert add(1, 2) == 3\n"),
    ("def neg(a):\n    return -a\n\n\nimport pytest\nfrom calc import neg\n\n\ndef test_neg(",
     "):\n    assert neg(2) == -2\n"),
    ("def mul(a, b):\n    return a * b\n\n\nimport pytest\nfrom calc import mul\n\n\ndef test_mul(",
     "):\n    assert mul(2, 3) == 6\n"),
]


def _pairs_file(folder: Path) -> Path:
    path = folder / "pairs.jsonl"
    rows = []
    for index, (prompt, completion) in enumerate(_PAIRS * 3):
        rows.append({"language": "python", "prompt": prompt, "completion": completion,
                     "split": "valid" if index == 0 else "train", "focal_file": f"calc{index}.py",
                     "test_file": f"test/test_calc{index}.py"})
    rows.append(dict(rows[1], focal_file="email/utils.py", test_file="test/test_email/test_utils.py"))
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def _tiny(tmp_path: Path, name: str, **overrides) -> PretrainConfig:
    values = dict(
        out=str(tmp_path / name), work=str(tmp_path / f"{name}-work"), data_limit_mb=0.2, minutes=0.1,
        tune_minutes=0.05, hidden=64, layers=1, vocab=512, context=256, batch=2, tune_batch=2,
        pairs=str(_pairs_file(tmp_path)), tokenizer_sample_mb=0.2, eval_every=5, held_out="email",
    )
    values.update(overrides)
    return PretrainConfig(**values)


def _losses(folder: Path, stage: str) -> list[float]:
    records = [json.loads(line) for line in (folder / LOSS_FILE).read_text("utf-8").splitlines()]
    return [r["loss"] for r in records if r.get("stage") == stage and "loss" in r]


@pytest.mark.slow
def test_pretrain_writes_a_loadable_model_folder(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from unitune.cli import main

    pairs = _pairs_file(tmp_path)
    code = main(["pretrain", "--out", str(tmp_path / "mini"), "--work", str(tmp_path / "work"),
                 "--data-limit-mb", "0.2", "--minutes", "0.1", "--tune-minutes", "0.05", "--hidden", "64",
                 "--layers", "1", "--vocab", "512", "--context", "256", "--batch", "2", "--pairs", str(pairs),
                 "--quiet"])
    assert code == 0
    out, work = tmp_path / "mini", tmp_path / "work"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json",
                 "training.json", "loss.png", "README.md"):
        assert (out / name).is_file(), name
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    config = model.config
    assert config.hidden_size % 64 == 0 and config.intermediate_size % 64 == 0 and config.vocab_size % 64 == 0
    assert config.hidden_size // config.num_attention_heads == 64
    assert tokenizer.eos_token == "<|endoftext|>"
    assert tokenizer.decode(tokenizer("def f(x):\n    return x\n")["input_ids"]) == "def f(x):\n    return x\n"

    stats = json.loads((work / CORPUS_STATS).read_text("utf-8"))
    import numpy as np

    tokens = np.load(work / CORPUS_FILE)
    assert tokens.dtype == np.uint16 and tokens.size == stats["tokens"] > 0
    assert stats["files"] > 0 and stats["bytes"] > 0

    record = json.loads((out / "training.json").read_text("utf-8"))
    assert record["model"]["parameters"] == sum(p.numel() for p in model.parameters())
    assert record["pretrain"]["steps"] > 0 and record["pretrain"]["final_loss"] is not None
    assert record["tune"]["train_examples"] == 8  # the held-out package's pair and the valid one left out
    assert record["tune"]["held_out_pairs"] == 1 and record["tune"]["steps"] > 0
    assert record["corpus"]["held_out_package"] == "email"
    assert "unitune pretrain" in record["reproduce"]
    assert "small" in (out / "README.md").read_text("utf-8")


@pytest.mark.slow
def test_same_seed_gives_same_tokenizer_and_losses(tmp_path):
    first = run_pretrain(_tiny(tmp_path, "a", steps=3, tune_steps=2), echo=False)
    second = run_pretrain(_tiny(tmp_path, "b", steps=3, tune_steps=2), echo=False)
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "tokenizer.json").read_text("utf-8") == (b / "tokenizer.json").read_text("utf-8")
    assert _losses(a, "pretrain") == _losses(b, "pretrain") and len(_losses(a, "pretrain")) == 3
    assert _losses(a, "tune") == _losses(b, "tune") and len(_losses(a, "tune")) == 2
    assert first["corpus"]["tokens"] == second["corpus"]["tokens"]


_CALC = """def double(x):
    return 2 * x


def half(x):
    if x % 2:
        raise ValueError(x)
    return x // 2
"""
_CALC_TESTS = """import unittest

from calc import double, half


class TestCalc(unittest.TestCase):
    def setUp(self):
        self.base = 4

    def test_double(self):
        self.assertEqual(double(2), 4)

    def test_half(self):
        self.assertRaises(ValueError, half, 3)

    def test_half_of_base(self):
        self.assertEqual(half(self.base), 2)
"""


@pytest.mark.slow
def test_unittest_tests_also_train_as_pytest_functions(tmp_path):
    """The stdlib tests with unittest; the test-shaped stage also gets their pytest rewrites (where
    faithful), so the model learns to continue `def test_x(` too."""
    stdlib = tmp_path / "stdlib"
    (stdlib / "test").mkdir(parents=True)
    (stdlib / "calc.py").write_text(_CALC, "utf-8")
    (stdlib / "test" / "test_calc.py").write_text(_CALC_TESTS, "utf-8")
    import textwrap  # enough code for a block of tokens (the last file, test_calc, is the validation stream)

    (stdlib / "_textwrap.py").write_text(Path(textwrap.__file__).read_text("utf-8"), "utf-8")
    config = _tiny(tmp_path, "v", pairs=None, stdlib=str(stdlib), data_limit_mb=None, steps=1, tune_steps=1)
    record = run_pretrain(config, echo=False)
    source = record["tune"]["pairs_source"]
    assert source["pairs"] == 3
    assert source["pytest_variants"]["variants"] == 2  # test_half_of_base uses set-up state: not rewritten
    assert source["pytest_variants"]["not_convertible"] == 1
    pairs = [json.loads(line) for line in (tmp_path / "v-work" / "stdlib-pairs.jsonl").read_text("utf-8").splitlines()]
    assert len(pairs) == 3  # the mined file holds what the miner found; variants are made from it
    # Every pair lands in train (too few focal files to hold any out): 3 mined + 2 rewrites.
    assert record["tune"]["train_pairs"] == 5
    assert "plus 2 pytest rewrites of their unittest tests" in (tmp_path / "v" / "README.md").read_text("utf-8")

    without = run_pretrain(_tiny(tmp_path, "w", pairs=None, stdlib=str(stdlib), data_limit_mb=None, steps=1,
                                 tune_steps=1, pytest_variants=False), echo=False)
    assert "pytest_variants" not in without["tune"]["pairs_source"] and without["tune"]["train_pairs"] == 3


def test_held_out_package_covers_code_and_tests():
    assert is_held_out("email/utils.py", "email")
    assert is_held_out("test/test_email/test_email.py", "email")
    assert is_held_out("json.py", "json") and is_held_out("test/test_json.py", "json")
    assert not is_held_out("emailer.py", "email") and not is_held_out("test/test_os.py", "email")
    assert not is_held_out("email/utils.py", None)


def test_the_shipped_test_model_loads_by_name_and_is_small():
    from unitune.runtime.loading import ModelSpec, load_model
    from unitune.settings import BUNDLED_TEST_MODEL

    if not (SHIPPED_FOLDER / "config.json").is_file():
        pytest.fail(f"unitune-mini is not in {SHIPPED_FOLDER}; build it with `unitune pretrain`")
    size = sum(p.stat().st_size for p in SHIPPED_FOLDER.iterdir() if p.is_file())
    assert size <= MAX_SHIPPED_BYTES
    loaded = load_model(ModelSpec(BUNDLED_TEST_MODEL, device="cpu"))
    assert loaded.model_id == "unitune-mini"
    assert loaded.folder.resolve() == SHIPPED_FOLDER.resolve()
    config = loaded.model.config
    assert config.hidden_size % 64 == 0 and config.intermediate_size % 64 == 0
    ids = loaded.tokenizer("def test_add(", return_tensors="pt")
    out = loaded.model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]


@pytest.mark.slow
def test_resume_never_runs_a_pickle_in_the_checkpoint(tmp_path):
    """A pickle payload put in the work folder's `checkpoint/optimizer.pt` is refused, not executed."""
    import pickle

    from unitune.training.pretrain_config import PretrainError

    config = _tiny(tmp_path, "mini", steps=2, tune_steps=1)
    run_pretrain(config, echo=False)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(Path(config.work) / "checkpoint" / "optimizer.pt", "wb") as handle:
        pickle.dump(Payload(), handle)
    with pytest.raises(PretrainError, match="not an optimizer state unitune wrote"):
        run_pretrain(_tiny(tmp_path, "mini", steps=4, tune_steps=1), resume=True, echo=False)
    assert not marker.exists()


@pytest.mark.slow
def test_resume_loads_the_checkpoint_unitune_wrote(tmp_path):
    """The optimizer state unitune saves loads with `weights_only=True` (tensors and plain containers)."""
    config = _tiny(tmp_path, "mini", steps=2, tune_steps=1)
    run_pretrain(config, echo=False)
    record = run_pretrain(config, resume=True, echo=False)
    assert record["pretrain"]["steps"] == 2  # resumed at the end of the schedule: nothing left to do


def test_pretrain_writes_into_the_data_home_by_default(tmp_path, monkeypatch):
    """Without --out the package's own model is never overwritten."""
    from unitune.training.pretrain_config import output_folder

    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "home"))
    assert output_folder(PretrainConfig()) == tmp_path / "home" / "models" / "unitune-mini"
    assert output_folder(PretrainConfig(out=str(tmp_path / "x"))) == tmp_path / "x"
    assert SHIPPED_FOLDER not in (output_folder(PretrainConfig()), output_folder(PretrainConfig()).parent)
