"""Training as several processes, two CPU processes over gloo: with a batch of 1 each they train the
adapter one process trains with a batch of 2; killed after a checkpoint, they resume to the adapter
of an uninterrupted run; only the main process writes; full fine-tuning sharded with FSDP trains the
model one process trains, through a kill and a resume too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import PY_FOCAL, example_prompt

LAUNCH_TWO = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
KILLED_AFTER = Path(__file__).with_name("train_until_killed.py")


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> Path:
    """Nine pairs whose tests have one to four assertions, so the processes' parts of a batch differ
    in length: seven to train on (an odd number: the last micro-batch of an epoch leaves the second
    process without an example), two to validate."""
    prompt = example_prompt(*PY_FOCAL).text
    rows = []
    for i in range(9):
        asserts = "".join(f"    assert account.deposit({j + 1}) == {j + 1}\n" for j in range(i % 4 + 1))
        rows.append({"language": "python", "test_file": "tests/test_account.py", "test_name": f"test_deposit_{i}",
                     "focal_file": "bank/account.py", "focal_name": "deposit", "focal_qualified_name": "Account.deposit",
                     "test_code": "", "focal_code": "", "prompt": prompt,
                     "completion": f'    account = Account("u{i}")\n{asserts}', "split": "train" if i < 7 else "valid"})
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _train(home: Path, pairs: Path, base: Path, name: str, *flags: str, processes: int = 1,
           kill_after: int | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """`unitune train` on `processes` processes (`kill_after`: killed right after that step)."""
    program = [str(KILLED_AFTER), str(kill_after)] if kill_after else ["-m", "unitune", "train"]
    command = [*(LAUNCH_TWO if processes == 2 else [sys.executable]), *program, str(pairs), "--name", name,
               "--model", str(base), "--progress", "json", *flags]
    environment = {**os.environ, "UNITUNE_HOME": str(home), "UNITUNE_CONFIG": str(home / "no-config.toml"),
                   "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=900)


def _weights(adapter: Path, file: str = "adapter_model.safetensors") -> dict:
    from safetensors.torch import load_file

    return load_file(str(adapter / file))


def _history(adapter: Path) -> list[dict]:
    return json.loads((adapter / "history.json").read_text())["history"]


def _card(adapter: Path) -> dict:
    return json.loads((adapter / "unitune-adapter.json").read_text())


def _assert_same_training(a: Path, b: Path, *, tolerance: float, file: str = "adapter_model.safetensors"):
    """The adapters (folders) `a` and `b` hold the same weights and were trained with the same losses."""
    import torch

    first, second = _weights(a, file), _weights(b, file)
    assert sorted(first) == sorted(second)
    for key in first:
        torch.testing.assert_close(first[key], second[key], rtol=tolerance, atol=tolerance, msg=key)
    x, y = _history(a), _history(b)
    assert [h["step"] for h in x] == [h["step"] for h in y]
    for one, other in zip(x, y):
        assert one["loss"] == pytest.approx(other["loss"], rel=tolerance, abs=tolerance)
        assert ("eval_loss" in one) == ("eval_loss" in other)
        assert one.get("eval_loss") == pytest.approx(other.get("eval_loss"), rel=tolerance, abs=tolerance)


# Dropout off: each process draws its own dropout masks, so with dropout the runs are alike, not equal.
# fp32: on a CPU with AVX-512 BF16 `auto` computes in bf16, whose rounding differs with the batch's shape
# (one row per process against two in one), so the runs would be alike, not equal.
EQUAL_RUN = ("--method", "lora", "--grad-accum", "2", "--epochs", "2", "--lr", "1e-2", "--dropout", "0",
             "--checkpoint-every", "2", "--precision", "fp32")


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, tiny_base, pairs_file) -> tuple[Path, subprocess.CompletedProcess]:
    home = tmp_path_factory.mktemp("home")
    run = _train(home, pairs_file, tiny_base, "two", *EQUAL_RUN, "--batch-size", "1", processes=2)
    assert run.returncode == 0, run.stderr[-3000:]
    return home, run


@pytest.mark.slow
def test_two_processes_train_the_adapter_one_process_trains_with_the_same_global_batch(two_process_run, tiny_base,
                                                                                      pairs_file, tmp_path):
    two = two_process_run[0] / "adapters" / "two"
    one = _train(tmp_path, pairs_file, tiny_base, "one", *EQUAL_RUN, "--batch-size", "2")
    assert one.returncode == 0, one.stderr[-3000:]
    one = tmp_path / "adapters" / "one"
    # 7 examples in micro-batches of 2 (two processes x 1), 2 per step: 2 steps an epoch, the last one short
    assert [h["step"] for h in _history(two)] == [1, 2, 3, 4]
    assert max(float(w.abs().max()) for w in _weights(two).values()) > 0.05  # it trained
    _assert_same_training(one, two, tolerance=1e-5)  # observed: within 2e-7
    for adapter, processes in ((one, 1), (two, 2)):
        training = _card(adapter)["training"]
        assert (training["processes"], training["global_batch"]) == (processes, 4)
    assert _card(two)["training"]["sharding"] == "ddp"


@pytest.mark.slow
def test_only_the_main_process_writes(two_process_run):
    home, run = two_process_run
    assert sorted(p.name for p in (home / "adapters").iterdir()) == ["two"]
    assert len(list((home / "adapters").rglob("unitune-adapter.json"))) == 1
    run_dir = home / "runs" / "two"
    assert not (run_dir / "checkpoints").exists() and not list(run_dir.glob(".adapter-*"))
    events = [json.loads(line) for line in run.stdout.splitlines()]
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3, 4]  # each step reported once
    assert [e["event"] for e in events].count("done") == 1


@pytest.mark.slow
def test_two_processes_killed_after_a_checkpoint_resume_to_the_uninterrupted_adapter(tmp_path, tiny_base, pairs_file):
    home = tmp_path / "home"
    # With LoRA's dropout (0.1): each process's random generators must come back as they were.
    flags = ("--method", "lora", "--batch-size", "1", "--grad-accum", "1", "--epochs", "2", "--lr", "1e-2",
             "--checkpoint-every", "3")
    straight = _train(home, pairs_file, tiny_base, "straight", *flags, processes=2)
    assert straight.returncode == 0, straight.stderr[-3000:]
    killed = _train(home, pairs_file, tiny_base, "resumed", *flags, processes=2, kill_after=5)
    assert killed.returncode != 0 and "SIGKILL" in killed.stderr
    assert not (home / "adapters" / "resumed").exists()  # no half adapter
    from unitune.training.checkpoints import STATE_FILE, checkpoint_dirs

    latest = checkpoint_dirs(home / "runs" / "resumed")[-1]
    assert latest.name == "step-3"  # mid-epoch: 4 micro-batches of 2 examples an epoch
    state = json.loads((latest / STATE_FILE).read_text())
    assert state["processes"] == 2 and len(state["rng_by_rank"]) == 2
    assert state["rng_by_rank"][0] != state["rng_by_rank"][1]

    alone = _train(home, pairs_file, tiny_base, "resumed", *flags, "--resume")
    assert alone.returncode == 2 and "written by a run on 2 process(es), not 1" in alone.stderr, alone.stderr[-2000:]
    assert checkpoint_dirs(home / "runs" / "resumed")[-1].name == "step-3"  # refused, nothing lost

    resumed = _train(home, pairs_file, tiny_base, "resumed", *flags, "--resume", processes=2)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    steps = [json.loads(line)["step"] for line in resumed.stdout.splitlines() if '"event": "step"' in line]
    assert steps == [4, 5, 6, 7, 8]
    _assert_same_training(home / "adapters" / "straight", home / "adapters" / "resumed", tolerance=1e-6)


@pytest.mark.slow
def test_full_fine_tuning_sharded_with_fsdp_trains_the_one_process_model_through_a_kill(tmp_path, tiny_base,
                                                                                       pairs_file):
    home = tmp_path / "home"
    fsdp = {"ACCELERATE_USE_FSDP": "true"}  # what `accelerate launch --use_fsdp` sets
    flags = ("--method", "full", "--grad-accum", "1", "--epochs", "2", "--lr", "1e-3", "--optimizer", "adamw",
             "--checkpoint-every", "3", "--precision", "fp32")  # fp32: see EQUAL_RUN
    one = _train(home, pairs_file, tiny_base, "one", *flags, "--batch-size", "2")
    assert one.returncode == 0, one.stderr[-3000:]
    killed = _train(home, pairs_file, tiny_base, "two", *flags, "--batch-size", "1", processes=2, kill_after=5, env=fsdp)
    assert killed.returncode != 0 and not (home / "adapters" / "two").exists()
    resumed = _train(home, pairs_file, tiny_base, "two", *flags, "--batch-size", "1", "--resume", processes=2, env=fsdp)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    one, two = home / "adapters" / "one", home / "adapters" / "two"
    _assert_same_training(one, two, tolerance=1e-5, file="model.safetensors")  # observed: within 2e-7
    assert _card(two)["training"]["sharding"] == "fsdp"
    assert json.loads((home / "adapters" / "two" / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]


def test_deepspeed_is_refused_and_fsdp_shards_only_full_fine_tuning(monkeypatch):
    from unitune.training.distributed import DDP, FSDP, DistributedTrainingError, sharding_for

    assert sharding_for("lora") == DDP
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert (sharding_for("full"), sharding_for("lora")) == (FSDP, DDP)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(DistributedTrainingError, match="DeepSpeed.*--use_fsdp"):
        sharding_for("full")


def test_each_process_takes_its_part_of_a_micro_batch_and_its_share_of_the_tokens():
    from unitune.training.data import Example
    from unitune.training.distributed import ParallelRun, Team

    examples = [Example(input_ids=list(range(10)), labels=[-100] * (10 - n) + list(range(n))) for n in (2, 3, 6)]
    parts = []
    for rank in (0, 1):
        run = ParallelRun(Team(rank=rank, size=2))
        run.model = _OneParameter()
        parts.append(list(run.micro_batches([[0, 1], [2]], examples)))
    (first, last), (second, empty) = parts
    assert (first.share, second.share) == pytest.approx((2 / 5, 3 / 5))  # tokens in the loss: 2 and 3 of 5
    assert (last.share, empty.share) == (1.0, 0.0)  # the odd example out: the second process runs it unweighted
    assert empty.tensors["input_ids"].shape == (1, 10)


class _OneParameter:
    """Stands for a model: `micro_batches` only asks where its parameters live."""

    def parameters(self):
        import torch

        yield torch.nn.Parameter(torch.zeros(1))
