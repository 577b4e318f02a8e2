"""The two training stages of `unitune pretrain`: the model built from its config, pre-training on
blocks of the token stream (checkpointed, resumable) and test-shaped training on prompt/completion
pairs. Both run on the fine-tuning loop (`run_steps` in training/trainer.py) with their own batches,
a warm-up then cosine learning rate over a step count or a time budget (`CosineSchedule`), and a
record per step in the loss log."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from unitune.training.pretrain_config import PretrainConfig, PretrainError
from unitune.training.pretrain_corpus import is_held_out

CHECKPOINT = "checkpoint"


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


def use_bf16(config: PretrainConfig) -> bool:
    """Whether to autocast the forward pass to bf16 (about twice as fast on CPUs with AMX/AVX512-BF16);
    the weights and the optimizer stay in fp32. `auto`: where oneDNN has bf16 units."""
    import torch

    if config.bf16 != "auto":
        return config.bf16 == "on"
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


class CosineSchedule:
    """A stage's learning rate and end: linear warm-up to `peak`, then cosine decay to a tenth of it at
    the end. With a step count (`total`) the end is that step; without one it is the end of the time
    budget (`budget` seconds, at least one step), and the decay follows the part of the budget used
    since warm-up ended."""

    def __init__(self, optimizer, peak: float, warmup: int, total: int | None, budget: float):
        self.optimizer, self.peak, self.warmup, self.total, self.budget = optimizer, peak, warmup, total, budget
        self.warmup_fraction = 0.0  # of the budget, used by the end of warm-up
        self.rate = peak

    def done(self, step: int, seconds: float) -> bool:
        if self.total is not None:
            return step >= self.total
        return seconds >= self.budget and step > 0

    def set_rate(self, step: int, seconds: float) -> None:
        """Set the rate of step `step`, `seconds` into the stage, on every parameter group."""
        time_fraction = 0.0
        if self.total is None:
            time_fraction = seconds / self.budget
            if step == self.warmup:
                self.warmup_fraction = time_fraction
        self.rate = self._rate(step, time_fraction)
        for group in self.optimizer.param_groups:
            group["lr"] = self.rate

    def _rate(self, step: int, time_fraction: float) -> float:
        if step < self.warmup:
            return self.peak * (step + 1) / self.warmup
        if self.total is not None:
            progress = (step - self.warmup) / max(1, self.total - self.warmup)
        else:
            progress = (time_fraction - self.warmup_fraction) / max(1e-9, 1.0 - self.warmup_fraction)
        progress = min(1.0, max(0.0, progress))
        return self.peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def _optimizer(model, lr: float, weight_decay: float):
    import torch

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), eps=1e-8)


def pretrain_stage(model, tokens, stats: dict, config: PretrainConfig, work: Path, log: Callable[[dict], None],
                   resume: bool = False) -> dict:
    """Pre-train on random contiguous blocks of the token stream (train part); returns a summary."""
    import numpy as np
    import torch

    # Imported here, not with the module: importing the trainer turns TOKENIZERS_PARALLELISM off
    # unless it is set, and `run_pretrain` sets it on first, to tokenize the corpus on every core.
    from unitune.training.trainer import autocast, run_steps

    context, batch = config.context, config.batch
    train_end = stats["train_tokens"]
    if train_end <= context + 1:
        raise PretrainError(f"the corpus has {train_end} training tokens, fewer than one block of {context}")
    valid = tokens[stats["valid_start"]:]
    valid_blocks = [torch.from_numpy(valid[i:i + context].astype(np.int64))
                    for i in range(0, max(0, valid.size - context), context)][:8]
    bf16 = use_bf16(config)
    optimizer = _optimizer(model, config.lr, config.weight_decay)
    rng = np.random.default_rng(config.seed)
    step, total, seconds_before = 0, config.steps, 0.0
    checkpoint = work / CHECKPOINT
    if resume and (checkpoint / "state.json").is_file():
        step, total, seconds_before = _load_checkpoint(checkpoint, model, optimizer, rng)
    budget = config.minutes * 60.0
    schedule = CosineSchedule(optimizer, config.lr, config.warmup_steps, total, budget)
    started = time.perf_counter() - seconds_before
    last_checkpoint = time.perf_counter()
    probe_started, probe_from = None, step
    losses = []

    def evaluate() -> float | None:
        if not valid_blocks:
            return None
        model.eval()
        with torch.no_grad(), autocast(model, bf16):
            value = float(np.mean([model(input_ids=b[None], labels=b[None]).loss.item() for b in valid_blocks]))
        model.train()
        return round(value, 4)

    def before_step(step: int, seconds: float) -> None:
        nonlocal probe_started
        if step == probe_from + 1:
            probe_started = time.perf_counter()  # the first step warms up; time the next ones
        if probe_started is not None and step == probe_from + 1 + config.probe_steps:
            per_step = (time.perf_counter() - probe_started) / config.probe_steps
            log({"stage": "pretrain", "event": "probe", "seconds_per_step": round(per_step, 3),
                 "expected_steps": total or step + int((budget - seconds) / per_step)})
        schedule.set_rate(step, seconds)

    def next_batches() -> list[dict]:
        starts = rng.integers(0, train_end - context, size=batch)
        block = torch.from_numpy(np.stack([tokens[s:s + context] for s in starts]).astype(np.int64))
        return [{"input_ids": block, "labels": block}]

    def after_step(step: int, loss: float) -> None:
        nonlocal last_checkpoint
        losses.append(loss)
        record = {"stage": "pretrain", "step": step, "loss": round(loss, 4), "lr": round(schedule.rate, 6),
                  "seconds": round(time.perf_counter() - started, 1), "tokens": step * batch * context}
        if step % config.eval_every == 0:
            record["valid_loss"] = evaluate()
        log(record)
        if time.perf_counter() - last_checkpoint > config.checkpoint_minutes * 60:
            _save_checkpoint(checkpoint, model, optimizer, step, total, time.perf_counter() - started, rng)
            last_checkpoint = time.perf_counter()

    step = run_steps(model, optimizer, next_batches, step=step, started=started, done=schedule.done,
                     before_step=before_step, after_step=after_step, bf16=bf16)
    _save_checkpoint(checkpoint, model, optimizer, step, total or step, time.perf_counter() - started, rng)
    final_valid_loss = evaluate()
    return {"steps": step, "schedule": "steps" if config.steps else "time budget",
            "seconds": round(time.perf_counter() - started, 1), "tokens_seen": step * batch * context, "batch": batch,
            "block": context, "peak_lr": config.lr, "warmup_steps": config.warmup_steps,
            "final_loss": _tail_mean(losses), "final_valid_loss": final_valid_loss, "bf16_autocast": bf16}


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


def _load_checkpoint(folder: Path, model, optimizer, rng) -> tuple[int, int | None, float]:
    """Restore what `_save_checkpoint` wrote into the model, the optimizer and the random generators;
    returns the step, the planned steps (None with a time budget) and the seconds trained."""
    import torch
    from safetensors.torch import load_file

    state = json.loads((folder / "state.json").read_text("utf-8"))
    model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=False)
    model.tie_weights()
    try:  # tensors and plain containers only: a pickle never runs code here
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    except Exception as error:
        raise PretrainError(f"{folder / 'optimizer.pt'}: not an optimizer state unitune wrote ({error}); "
                            "remove the checkpoint folder to start over") from None
    rng.bit_generator.state = state["rng"]
    torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
    return state["step"], state["total"], state["seconds"]


def tune_stage(model, tokenizer, pairs: list[dict], config: PretrainConfig, log: Callable[[dict], None]) -> dict:
    """Continue training on prompt/completion pairs, the loss on the completion only."""
    import numpy as np
    import torch

    from unitune.training.data import collate, tokenize_pairs
    from unitune.training.trainer import autocast, run_steps  # here for the reason `pretrain_stage` gives

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
    bf16 = use_bf16(config)

    def evaluate() -> float | None:
        if not valid_sample:
            return None
        model.eval()
        values = []
        with torch.no_grad(), autocast(model, bf16):
            for i in range(0, len(valid_sample), 8):
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
    schedule = CosineSchedule(optimizer, config.tune_lr, max(1, min(config.warmup_steps, 10)), config.tune_steps,
                              config.tune_minutes * 60.0)
    summary["valid_loss_before"] = evaluate()
    log({"stage": "tune", "step": 0, "valid_loss": summary["valid_loss_before"]})
    started = time.perf_counter()
    losses, examples_seen = [], 0
    source = batches()

    def next_batches() -> list[dict]:
        nonlocal examples_seen
        batch = next(source)
        examples_seen += len(batch)
        return [collate(batch, pad)]

    def after_step(step: int, loss: float) -> None:
        losses.append(loss)
        record = {"stage": "tune", "step": step, "loss": round(loss, 4), "lr": round(schedule.rate, 6),
                  "seconds": round(time.perf_counter() - started, 1)}
        if step % config.eval_every == 0:
            record["valid_loss"] = evaluate()
        log(record)

    steps = run_steps(model, optimizer, next_batches, step=0, started=started, done=schedule.done,
                      before_step=schedule.set_rate, after_step=after_step, bf16=bf16)
    summary.update(
        steps=steps, schedule="steps" if config.tune_steps else "time budget",
        seconds=round(time.perf_counter() - started, 1), batch=config.tune_batch, peak_lr=config.tune_lr,
        epochs=round(examples_seen / len(train.examples), 2), final_loss=_tail_mean(losses),
        valid_loss_after=evaluate(),
    )
    return summary
