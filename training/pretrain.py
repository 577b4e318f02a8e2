"""Training `unitune-mini` from scratch: `unitune pretrain`.

    unitune pretrain                                   # the shipped model: 60 + 18 minutes on 2 CPU cores
    unitune pretrain --out /tmp/mini --minutes 1 --tune-minutes 0.5 --data-limit-mb 2

Steps, each written to the work folder (`--work`, default `<data dir>/pretrain/<out name>`):

1. corpus: the `.py` files of the running interpreter's standard library (the `sysconfig` stdlib
   folder, its `test/` package included; `site-packages` and anything outside the folder excluded;
   files that are not UTF-8 skipped and counted). The held-out package (`--held-out`, its code and
   its tests) is left out, so it is code the model has never seen. `--data-limit-mb` takes a seeded
   sample of the files.
2. tokenizer: byte-level BPE with an `<|endoftext|>` token (`tokenizer.json`).
3. tokens: the files, tokenized and joined with `<|endoftext|>`, as `corpus.npy` (uint16) with
   `corpus.json` (tokens, files, bytes). The last files (about 1%) are a validation stream.
4. pre-training: a `LlamaForCausalLM` built from a config (dimensions multiples of 64), AdamW,
   linear warm-up then cosine decay, random contiguous blocks of the token stream, seeded. With
   `--minutes` the step count is computed from a measured probe so the run ends at the budget (and a
   deadline stops it cleanly if the machine slows down); `--steps` fixes it (exactly reproducible).
   Losses go to `loss.jsonl`; a checkpoint is saved every few minutes (`--resume` continues from it).
5. test-shaped training: focal-method/test pairs mined from the standard library (split `train`
   only, the held-out package left out), prompts and completions from `unitune.prompt` via the
   miner, examples longer than the context dropped (and counted), loss on the completion only. The
   standard library tests with unittest only, so each test that can be rewritten faithfully as a
   pytest function (`training/pytest_variants.py`) also gives a pytest-shaped pair: the model learns
   to continue `def test_x(` with plain `assert`s as well as `def test_x(self` with `self.assert*`.
6. the model folder (`--out`, training/model_folder.py): bf16 safetensors, tokenizer, generation
   config, `training.json`, `loss.png` and a model card (`README.md`).

The command line is training/pretrain_command.py.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from unitune.errors import UnituneError
from unitune.training.model_folder import LOSS_FILE, RECORD_FILE, save_model_folder

EOS = "<|endoftext|>"
MODEL_NAME = "unitune-mini"
#: Where the shipped model lives in the source tree (the default `--out`).
SHIPPED_FOLDER = Path(__file__).resolve().parent.parent / "unitune" / "models" / MODEL_NAME
CORPUS_FILE = "corpus.npy"
CORPUS_STATS = "corpus.json"
CHECKPOINT = "checkpoint"
VALID_FRACTION = 0.01


class PretrainError(UnituneError):
    exit_code = 2


@dataclass
class PretrainConfig:
    out: str | None = None  # default: `$UNITUNE_HOME/models/unitune-mini` (`output_folder`)
    work: str | None = None
    minutes: float = 60.0
    tune_minutes: float = 18.0
    steps: int | None = None  # pre-training steps; default: from --minutes
    tune_steps: int | None = None  # test-shaped steps; default: from --tune-minutes
    seed: int = 0
    vocab: int = 8192
    hidden: int = 256
    layers: int = 6
    intermediate: int | None = None  # default 3 * hidden
    context: int = 1024
    batch: int = 4
    lr: float = 2e-3
    tune_batch: int = 8
    tune_lr: float = 5e-4
    warmup_steps: int = 20
    weight_decay: float = 0.1
    data_limit_mb: float | None = None
    tokenizer_sample_mb: float = 8.0
    held_out: str = "email"
    pairs: str | None = None  # a pairs JSONL (from `unitune mine`); default: mine the stdlib
    pytest_variants: bool = True  # also train on pytest rewrites of the (unittest) stdlib tests
    threads: int = 2
    probe_steps: int = 5
    checkpoint_minutes: float = 5.0
    bf16: str = "auto"  # autocast the forward pass to bf16: auto (where the CPU has bf16 units), on, off
    eval_every: int = 25
    stdlib: str | None = None  # default: the running interpreter's

    @property
    def intermediate_size(self) -> int:
        return self.intermediate or 3 * self.hidden


# -- 1. the corpus --------------------------------------------------------------------------------

def stdlib_dir(config: PretrainConfig | None = None) -> Path:
    return Path(config.stdlib if config and config.stdlib else sysconfig.get_paths()["stdlib"]).resolve()


def is_held_out(relative: str, package: str | None) -> bool:
    """Whether a stdlib path (relative, posix) belongs to the held-out package: its code
    (`email/...`, or `x.py` for a module) or its tests (`test/test_email/...`, `test/test_email*.py`)."""
    if not package:
        return False
    return relative == f"{package}.py" or relative.startswith((f"{package}/", f"test/test_{package}"))


def collect_stdlib(root: Path, held_out: str | None = None, limit_bytes: int | None = None,
                   seed: int = 0) -> tuple[list[tuple[str, str]], dict]:
    """[(relative path, text)] of the stdlib's .py files (sorted; a seeded sample of about
    `limit_bytes` when given) and what was collected and skipped."""
    files, skipped_encoding, held = [], 0, 0
    for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        relative = path.relative_to(root).as_posix()
        parts = relative.split("/")
        if "site-packages" in parts or "__pycache__" in parts or not path.is_file():
            continue
        try:
            resolved = path.resolve()
            resolved.relative_to(root)  # nothing linked in from outside the stdlib
        except ValueError:
            continue
        if is_held_out(relative, held_out):
            held += 1
            continue
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            skipped_encoding += 1
            continue
        files.append((relative, text))
    total = len(files)
    if limit_bytes is not None:
        order = list(range(len(files)))
        random.Random(seed).shuffle(order)
        chosen, size = [], 0
        for index in order:
            if size >= limit_bytes:
                break
            chosen.append(index)
            size += len(files[index][1].encode("utf-8"))
        files = [files[i] for i in sorted(chosen)]
    stats = {
        "stdlib": str(root), "python": f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}",
        "files": len(files), "files_available": total, "bytes": sum(len(t.encode("utf-8")) for _, t in files),
        "skipped_not_utf8": skipped_encoding, "held_out_package": held_out, "held_out_files": held,
        "test_files": sum(1 for r, _ in files if r.startswith("test/")),
    }
    return files, stats


# -- 2. the tokenizer -----------------------------------------------------------------------------

def train_tokenizer(files: list[tuple[str, str]], vocab: int, sample_bytes: int, seed: int):
    """A byte-level BPE tokenizer trained on a seeded sample of `files` (a PreTrainedTokenizerFast)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    order = list(range(len(files)))
    random.Random(seed + 1).shuffle(order)
    sample, size = [], 0
    for index in order:
        if size >= sample_bytes:
            break
        sample.append(files[index][1])
        size += len(files[index][1])
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(sorted(sample), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, bos_token=EOS, pad_token=EOS,
                                   unk_token=None)


# -- 3. the tokens --------------------------------------------------------------------------------

def tokenize_corpus(files: list[tuple[str, str]], tokenizer, folder: Path) -> dict:
    """Write `corpus.npy` (uint16: every file's tokens followed by <|endoftext|>) and `corpus.json`.
    The last files (about 1% of them) form the validation stream at the end, from `valid_start`."""
    import numpy as np

    eos = tokenizer.eos_token_id
    encoded = tokenizer.backend_tokenizer.encode_batch([text for _, text in files], add_special_tokens=False)
    lengths = [len(e.ids) + 1 for e in encoded]
    tokens = np.empty(sum(lengths), dtype=np.uint16)
    position = 0
    for item in encoded:
        n = len(item.ids)
        tokens[position:position + n] = item.ids
        tokens[position + n] = eos
        position += n + 1
    valid_files = max(1, int(len(files) * VALID_FRACTION)) if len(files) > 1 else 0
    valid_start = int(sum(lengths[: len(files) - valid_files]))
    np.save(folder / CORPUS_FILE, tokens)
    stats = {
        "tokens": int(tokens.size), "files": len(files), "bytes": sum(len(t.encode("utf-8")) for _, t in files),
        "vocab": len(tokenizer), "bytes_per_token": round(sum(len(t.encode("utf-8")) for _, t in files)
                                                         / max(1, tokens.size), 3),
        "train_tokens": valid_start, "valid_tokens": int(tokens.size) - valid_start, "valid_start": valid_start,
        "valid_files": [r for r, _ in files[len(files) - valid_files:]],
    }
    (folder / CORPUS_STATS).write_text(json.dumps(stats, indent=2) + "\n", "utf-8")
    return stats


# -- 4. the model ---------------------------------------------------------------------------------

def build_model(config: PretrainConfig, tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    for name, value in (("hidden", config.hidden), ("intermediate", config.intermediate_size)):
        if value % 64:
            raise PretrainError(f"--{name} must be a multiple of 64; got {value}")
    vocab = math.ceil(len(tokenizer) / 64) * 64
    heads = max(1, config.hidden // 64)
    model_config = LlamaConfig(
        vocab_size=vocab, hidden_size=config.hidden, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=config.context, rope_theta=10000.0, rms_norm_eps=1e-5,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.eos_token_id, tie_word_embeddings=True, initializer_range=0.02,
    )
    torch.manual_seed(config.seed)
    return LlamaForCausalLM(model_config)


def autocast(config: PretrainConfig):
    """bf16 autocast of the forward pass (about twice as fast on CPUs with AMX/AVX512-BF16); the weights
    and the optimizer stay in fp32."""
    import torch

    enabled = config.bf16 == "on"
    if config.bf16 == "auto":
        try:
            enabled = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except Exception:
            enabled = False
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


def _lr(step: int, total: int | None, peak: float, warmup: int, time_fraction: float = 0.0,
        warmup_fraction: float = 0.0) -> float:
    """Linear warm-up to `peak`, then cosine decay to a tenth of it at the end. With a step count
    (`total`) the end is that step; without one (a time budget) it is the end of the budget, and
    `time_fraction` is the part of the budget used (`warmup_fraction` of it at the end of warm-up)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    if total is not None:
        progress = (step - warmup) / max(1, total - warmup)
    else:
        progress = (time_fraction - warmup_fraction) / max(1e-9, 1.0 - warmup_fraction)
    progress = min(1.0, max(0.0, progress))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _optimizer(model, lr: float, weight_decay: float):
    import torch

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), eps=1e-8)


class LossLog:
    def __init__(self, path: Path, echo: bool = True):
        self.path, self.echo = path, echo

    def __call__(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.echo:
            print(json.dumps(record), file=sys.stderr, flush=True)


def _steps_for(budget_seconds: float, seconds_per_step: float, done: int) -> int:
    return max(done + 1, done + int(budget_seconds / max(seconds_per_step, 1e-6)))


def pretrain_stage(model, tokens, stats: dict, config: PretrainConfig, work: Path, log: LossLog,
                   resume: bool = False) -> dict:
    """Pre-train on random contiguous blocks of the token stream (train part); returns a summary."""
    import numpy as np
    import torch

    context, batch = config.context, config.batch
    train_end = stats["train_tokens"]
    if train_end <= context + 1:
        raise PretrainError(f"the corpus has {train_end} training tokens, fewer than one block of {context}")
    valid = tokens[stats["valid_start"]:]
    valid_blocks = [torch.from_numpy(valid[i:i + context].astype(np.int64))
                    for i in range(0, max(0, valid.size - context), context)][:8]
    optimizer = _optimizer(model, config.lr, config.weight_decay)
    rng = np.random.default_rng(config.seed)
    step, total, elapsed_before = 0, config.steps, 0.0
    checkpoint = work / CHECKPOINT
    if resume and (checkpoint / "state.json").is_file():
        state = json.loads((checkpoint / "state.json").read_text("utf-8"))
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(checkpoint / "model.safetensors")), strict=False)
        model.tie_weights()
        try:  # tensors and plain containers only: a pickle never runs code here
            optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
        except Exception as error:
            raise PretrainError(f"{checkpoint / 'optimizer.pt'}: not an optimizer state unitune wrote ({error}); "
                                "remove the checkpoint folder to start over") from None
        step, total, elapsed_before = state["step"], state["total"], state["seconds"]
        rng = np.random.default_rng(config.seed)
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
    budget = config.minutes * 60.0
    started = time.perf_counter() - elapsed_before
    last_checkpoint = time.perf_counter()
    probe_started, probe_from = None, step
    model.train()
    losses = []

    def evaluate() -> float | None:
        if not valid_blocks:
            return None
        model.eval()
        with torch.no_grad():
            with autocast(config):
                value = float(np.mean([model(input_ids=b[None], labels=b[None]).loss.item() for b in valid_blocks]))
        model.train()
        return value

    warmup_fraction = 0.0
    while total is None or step < total:
        elapsed = time.perf_counter() - started
        if total is None and elapsed >= budget and step > 0:
            break  # the time budget is spent (the schedule has decayed to its end)
        if total is None and step == config.warmup_steps:
            warmup_fraction = elapsed / budget
        if step == probe_from + 1:
            probe_started = time.perf_counter()  # the first step warms up; time the next ones
        if probe_started is not None and step == probe_from + 1 + config.probe_steps:
            per_step = (time.perf_counter() - probe_started) / config.probe_steps
            log({"stage": "pretrain", "event": "probe", "seconds_per_step": round(per_step, 3),
                 "expected_steps": total or step + int((budget - elapsed) / per_step)})
        starts = rng.integers(0, train_end - context, size=batch)
        block = torch.from_numpy(np.stack([tokens[s:s + context] for s in starts]).astype(np.int64))
        lr = _lr(step, total, config.lr, config.warmup_steps, elapsed / budget, warmup_fraction)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast(config):
            loss = model(input_ids=block, labels=block).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        losses.append(loss.item())
        record = {"stage": "pretrain", "step": step, "loss": round(loss.item(), 4), "lr": round(lr, 6),
                  "seconds": round(time.perf_counter() - started, 1), "tokens": step * batch * context}
        if step % config.eval_every == 0:
            record["valid_loss"] = round(evaluate(), 4) if valid_blocks else None
        log(record)
        if time.perf_counter() - last_checkpoint > config.checkpoint_minutes * 60:
            _save_checkpoint(checkpoint, model, optimizer, step, total, time.perf_counter() - started, rng)
            last_checkpoint = time.perf_counter()
    _save_checkpoint(checkpoint, model, optimizer, step, total or step, time.perf_counter() - started, rng)
    final_valid = evaluate()
    return {"steps": step, "schedule": "steps" if config.steps else "time budget", "seconds": round(time.perf_counter() - started, 1),
            "tokens_seen": step * batch * context, "batch": batch, "block": context, "peak_lr": config.lr,
            "warmup_steps": config.warmup_steps, "final_loss": _tail_mean(losses),
            "final_valid_loss": round(final_valid, 4) if final_valid is not None else None,
            "bf16_autocast": bool(autocast(config).fast_dtype == torch.bfloat16 and autocast(config)._enabled)}


def _tail_mean(values: list[float], n: int = 20) -> float | None:
    tail = values[-n:]
    return round(sum(tail) / len(tail), 4) if tail else None


def _save_checkpoint(folder: Path, model, optimizer, step, total, seconds, rng) -> None:
    import torch
    from safetensors.torch import save_file

    temp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    weights = {k: v.detach().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(weights, str(temp / "model.safetensors"))
    torch.save(optimizer.state_dict(), temp / "optimizer.pt")
    (temp / "state.json").write_text(json.dumps({
        "step": step, "total": total, "seconds": seconds, "rng": rng.bit_generator.state,
        "torch_rng": torch.get_rng_state().tolist(),
    }), "utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    os.rename(temp, folder)


# -- 5. test-shaped training ----------------------------------------------------------------------

def stdlib_pairs(config: PretrainConfig, work: Path, log: LossLog) -> tuple[list[dict], dict]:
    """All Python pairs mined from the standard library (dicts as `unitune mine` writes them), with
    their pytest variants when `config.pytest_variants`."""
    from unitune.training.data import read_pairs

    if config.pairs:
        pairs = read_pairs(Path(config.pairs), language="python")
        info = {"source": str(config.pairs), "pairs": len(pairs)}
    else:
        pairs, info = _mine_stdlib(config, work, log)
    if config.pytest_variants:
        from unitune.training.pytest_variants import pytest_variants

        started = time.perf_counter()
        # The pairs' paths are relative to the stdlib (or to its copy, which has the same layout).
        root = work / "stdlib" if (work / "stdlib").is_dir() else stdlib_dir(config)
        variants, counts = pytest_variants(pairs, root)
        pairs = pairs + variants
        info["pytest_variants"] = {**counts, "seconds": round(time.perf_counter() - started, 1)}
        log({"stage": "pytest-variants", **info["pytest_variants"]})
    return pairs, info


def _mine_stdlib(config: PretrainConfig, work: Path, log: LossLog) -> tuple[list[dict], dict]:
    started = time.perf_counter()
    from unitune.training.mining import mine

    # Mined from a plain copy of the stdlib's .py files: the stdlib may sit inside a git work tree
    # that ignores it (pyenv's), where the miner (which lists files with git) would find nothing.
    copy = work / "stdlib"
    if not copy.is_dir():
        root = stdlib_dir(config)
        for path in root.rglob("*.py"):
            relative = path.relative_to(root)
            if "site-packages" in relative.parts or "__pycache__" in relative.parts:
                continue
            (copy / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy / relative)
    result = mine(copy, language="python")
    pairs = [p.to_json() if hasattr(p, "to_json") else (asdict(p) if hasattr(p, "__dataclass_fields__") else dict(p))
             for p in result.pairs]
    with open(work / "stdlib-pairs.jsonl", "w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(json.dumps(pair, ensure_ascii=False) + "\n")
    log({"stage": "mine", "pairs": len(pairs), "seconds": round(time.perf_counter() - started, 1)})
    return pairs, {"source": "mined", "pairs": len(pairs), "seconds": round(time.perf_counter() - started, 1)}


def tune_stage(model, tokenizer, pairs: list[dict], config: PretrainConfig, log: LossLog) -> dict:
    """Continue training on prompt/completion pairs, the loss on the completion only."""
    import numpy as np
    import torch

    from unitune.training.data import collate, tokenize_pairs

    held = config.held_out
    kept = [p for p in pairs if not is_held_out(p["focal_file"], held) and not is_held_out(p["test_file"], held)]
    train_pairs = [p for p in kept if p["split"] == "train"]
    valid_pairs = [p for p in kept if p["split"] == "valid"]
    train = tokenize_pairs(train_pairs, tokenizer, config.context, over_length="drop")  # as unitune-mini was built
    valid = tokenize_pairs(valid_pairs, tokenizer, config.context, over_length="drop")
    summary = {
        "pairs_mined": len(pairs), "held_out_package": held,
        "held_out_pairs": len(pairs) - len(kept),
        "train_pairs": len(train_pairs), "train_examples": len(train.examples),
        "dropped_longer_than_context": train.dropped, "valid_examples": len(valid.examples),
        "train_tokens": sum(len(e.input_ids) for e in train.examples),
        "completion_tokens": sum(sum(1 for x in e.labels if x != -100) for e in train.examples),
    }
    if not train.examples:
        summary.update(steps=0, seconds=0.0)
        return summary
    rng = random.Random(config.seed)
    pad = tokenizer.pad_token_id
    valid_sample = valid.examples[:32]

    def evaluate() -> float | None:
        if not valid_sample:
            return None
        model.eval()
        values = []
        with torch.no_grad():
            for i in range(0, len(valid_sample), 8):
                with autocast(config):
                    values.append(model(**collate(valid_sample[i:i + 8], pad)).loss.item())
        model.train()
        return round(float(np.mean(values)), 4)

    def batches():
        while True:  # epochs: shuffle, then group similar lengths so padding stays small
            order = list(train.examples)
            rng.shuffle(order)
            for i in range(0, len(order), config.tune_batch * 16):
                chunk = sorted(order[i:i + config.tune_batch * 16], key=lambda e: len(e.input_ids))
                group = [chunk[j:j + config.tune_batch] for j in range(0, len(chunk), config.tune_batch)]
                rng.shuffle(group)
                yield from group

    torch.manual_seed(config.seed)
    optimizer = _optimizer(model, config.tune_lr, 0.0)
    warmup = max(1, min(config.warmup_steps, 10))
    total, budget = config.tune_steps, config.tune_minutes * 60.0
    summary["valid_loss_before"] = evaluate()
    log({"stage": "tune", "step": 0, "valid_loss": summary["valid_loss_before"]})
    started = time.perf_counter()
    losses, step, examples_seen = [], 0, 0
    model.train()
    source = batches()
    warmup_fraction = 0.0
    while total is None or step < total:
        elapsed = time.perf_counter() - started
        if total is None and elapsed >= budget and step > 0:
            break
        if total is None and step == warmup:
            warmup_fraction = elapsed / budget
        batch = next(source)
        lr = _lr(step, total, config.tune_lr, warmup, elapsed / budget, warmup_fraction)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast(config):
            loss = model(**collate(batch, pad)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        examples_seen += len(batch)
        losses.append(loss.item())
        record = {"stage": "tune", "step": step, "loss": round(loss.item(), 4), "lr": round(lr, 6),
                  "seconds": round(time.perf_counter() - started, 1)}
        if step % config.eval_every == 0:
            record["valid_loss"] = evaluate()
        log(record)
    summary.update(
        steps=step, schedule="steps" if total else "time budget", seconds=round(time.perf_counter() - started, 1), batch=config.tune_batch,
        peak_lr=config.tune_lr, epochs=round(examples_seen / len(train.examples), 2),
        final_loss=_tail_mean(losses), valid_loss_after=evaluate(),
    )
    return summary


# -- 6. the record and the model folder (training/model_folder.py) -------------------------------

def reproduce_command(config: PretrainConfig, pretrain_steps: int | None, tune_steps: int | None) -> str:
    parts = ["unitune pretrain", f"--seed {config.seed}", f"--vocab {config.vocab}", f"--hidden {config.hidden}",
             f"--layers {config.layers}", f"--context {config.context}", f"--held-out {config.held_out}"]
    if config.data_limit_mb is not None:
        parts.append(f"--data-limit-mb {config.data_limit_mb:g}")
    if pretrain_steps:
        parts.append(f"--steps {pretrain_steps}")
    if tune_steps:
        parts.append(f"--tune-steps {tune_steps}")
    return " ".join(parts)


# -- the command ----------------------------------------------------------------------------------

def output_folder(config: PretrainConfig) -> Path:
    """Where the model goes: `--out`, else `$UNITUNE_HOME/models/unitune-mini` (never the package's
    own copy unless asked for by path: `--out unitune/models/unitune-mini` rebuilds the shipped model)."""
    from unitune.settings import data_home

    return Path(config.out).expanduser().resolve() if config.out else data_home() / "models" / MODEL_NAME


def run_pretrain(config: PretrainConfig, resume: bool = False, echo: bool = True) -> dict:
    import numpy as np
    import torch
    import transformers

    import unitune
    from unitune.adapters.loading import quiet_libraries
    from unitune.prompt import PROMPT_FORMAT_VERSION
    from unitune.settings import data_home

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")  # tokenizing the corpus uses every core
    quiet_libraries()
    torch.set_num_threads(max(1, config.threads))
    out = output_folder(config)
    work = Path(config.work).expanduser().resolve() if config.work else data_home() / "pretrain" / out.name
    work.mkdir(parents=True, exist_ok=True)
    loss_file = work / LOSS_FILE
    if not resume and loss_file.exists():
        loss_file.unlink()
    log = LossLog(loss_file, echo)
    started = time.perf_counter()
    random.seed(config.seed)

    root = stdlib_dir(config)
    limit = int(config.data_limit_mb * 2**20) if config.data_limit_mb is not None else None
    files, corpus = collect_stdlib(root, config.held_out, limit, config.seed)
    if len(files) < 2:
        raise PretrainError(f"found {len(files)} usable .py files under {root}; need at least 2")
    log({"stage": "corpus", **{k: v for k, v in corpus.items()}})

    t = time.perf_counter()
    tokenizer = train_tokenizer(files, config.vocab, int(config.tokenizer_sample_mb * 2**20), config.seed)
    tokenizer.model_max_length = config.context
    tokenizer.save_pretrained(work / "tokenizer")
    tokenizer_seconds = time.perf_counter() - t
    t = time.perf_counter()
    stats = tokenize_corpus(files, tokenizer, work)
    stats["tokenizer_seconds"] = round(tokenizer_seconds, 1)
    stats["tokenize_seconds"] = round(time.perf_counter() - t, 1)
    log({"stage": "tokens", **{k: v for k, v in stats.items() if k != "valid_files"}})
    tokens = np.load(work / CORPUS_FILE, mmap_mode="r")

    model = build_model(config, tokenizer)
    parameters = sum(p.numel() for p in model.parameters())
    pre = pretrain_stage(model, tokens, stats, config, work, log, resume=resume)

    pairs_info: dict = {}
    if config.tune_minutes > 0 or config.tune_steps:
        pairs, pairs_info = stdlib_pairs(config, work, log)
        tune = tune_stage(model, tokenizer, pairs, config, log)
    else:
        tune = {"steps": 0, "seconds": 0.0}
    tune["pairs_source"] = pairs_info
    model_record = {
        "architecture": "LlamaForCausalLM", "parameters": parameters,
        "parameters_without_embeddings": parameters - model.model.embed_tokens.weight.numel(),
        "vocab": model.config.vocab_size, "hidden": config.hidden, "layers": config.layers,
        "heads": model.config.num_attention_heads, "intermediate": config.intermediate_size,
        "context": config.context, "tied_embeddings": True, "dtype": "bfloat16",
    }
    record = {
        "name": MODEL_NAME, "prompt_format_version": PROMPT_FORMAT_VERSION, "held_out_package": config.held_out,
        "config": asdict(config), "model": model_record,
        "corpus": {**corpus, **{k: v for k, v in stats.items() if k != "valid_files"}},
        "pretrain": pre, "tune": tune, "threads": config.threads, "torch": torch.__version__,
        "transformers": transformers.__version__, "unitune": unitune.__version__,
        "total_seconds": round(time.perf_counter() - started, 1),
        "reproduce": reproduce_command(config, pre["steps"], tune.get("steps")),
    }
    record["config"]["out"] = out.name
    record["config"]["work"] = None
    (work / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", "utf-8")
    save_model_folder(model, tokenizer, out, record, loss_file)
    return record
