"""Fine-tuning an adapter (LoRA, (IA)³, prompt tuning) or the whole model on mined pairs.

    pairs -> tokens (loss on the completion only) -> AdamW, linear schedule with warm-up ->
    checkpoints (resumable) -> evaluation loss on the validation split before and after ->
    the adapter, its card, its config and its loss plot, written atomically into the registry.

With a time budget (`minutes`) the schedule's length is re-estimated after every step from the time
steps take, so the learning rate still decays to zero when the budget is spent; the validation
passes' time is set aside from the budget. With more than one example per batch, batches are drawn
from groups of similar length (less padding), in an order that is a function of the seed and epoch.

The loop is our own, not `transformers.Trainer`, so that a resumed run continues with the same data
order, optimizer, scheduler and random state, and reproduces the uninterrupted run's losses. Its core,
`run_steps`, also runs both stages of `unitune pretrain` (training/pretrain_stages.py), which bring
their own batches, learning-rate schedule and logging through its hooks. Launched as several
processes, the same loop trains on each process's part of every batch (training/distributed.py).
"""

from __future__ import annotations

import functools
import math
import os
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from unitune.adapters.constants import FULL, IA3, LORA, PROMPT_TUNING
from unitune.errors import UnituneError
from unitune.logs import get_logger, log_event
from unitune.settings import data_home
from unitune.training import checkpoints
from unitune.training.config import TrainConfig
from unitune.training.data import TokenizedSplit, collate
from unitune.training.loss import completion_loss, count_completion_tokens, keeps_logits_selectively, virtual_tokens_of
from unitune.training.targets import ia3_targets, lora_targets

log = get_logger("training")
DEFAULT_BLOCK_SIZE = 2048  # on a CPU
DEFAULT_GPU_BLOCK_SIZE = 4096


class TrainingError(UnituneError):
    exit_code = 1


class TrainingInterrupted(UnituneError):
    exit_code = 130


@dataclass
class RunState:
    """What a checkpoint holds besides tensors: where the run is and what it measured."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # micro-batches of `epoch` already consumed
    history: list = field(default_factory=list)  # {"step", "epoch", "loss", "lr", "eval_loss"?}
    eval_before: float | None = None
    eval_seconds: float = 0.0  # one validation pass (set aside from a time budget for the final one)
    seconds: float = 0.0
    stopped_by: str = "epochs"  # epochs, max_steps or minutes


def _say_damaged(path: Path, error: Exception) -> None:
    """A checkpoint that does not load is passed over for the one before it: said on stderr, not only in
    the log, since the run then repeats the steps since that one."""
    import sys

    log_event(log, "train.checkpoint_damaged", checkpoint=path, error=f"{type(error).__name__}: {error}")
    print(f"unitune train: {path.name} cannot be resumed from ({type(error).__name__}: {str(error)[:200]}); "
          "trying the checkpoint before it", file=sys.stderr)


def run_dir_for(name: str) -> Path:
    return data_home() / "runs" / name


def build_model(config: TrainConfig, base, model_type: str, checkpointing: bool = False):
    """The model to train: a PEFT model around the base, or the base itself for full fine-tuning.
    `checkpointing`: recompute activations in the backward pass (less memory, about a third more time)."""
    import torch

    torch.manual_seed(config.seed)
    if checkpointing:
        base.model.config.use_cache = False
        base.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.method == FULL:
        model = base.model
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model
    from peft import IA3Config, LoraConfig, PromptTuningConfig, get_peft_model, prepare_model_for_kbit_training

    if base.quantization in ("4bit", "8bit"):
        base.model = prepare_model_for_kbit_training(
            base.model, use_gradient_checkpointing=checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False} if checkpointing else None)
        keep_4bit_layers_trainable(base.model)
    if config.method == LORA:
        peft_config = LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                 target_modules=lora_targets(model_type, config.target_modules), task_type="CAUSAL_LM")
    elif config.method == IA3:
        targets, feedforward = ia3_targets(model_type, config.target_modules)
        peft_config = IA3Config(target_modules=targets, feedforward_modules=feedforward, task_type="CAUSAL_LM")
    elif config.method == PROMPT_TUNING:
        peft_config = PromptTuningConfig(num_virtual_tokens=config.virtual_tokens, task_type="CAUSAL_LM")
    else:
        raise TrainingError(f"unknown method {config.method!r}")
    return get_peft_model(base.model, peft_config)


def keep_4bit_layers_trainable(model) -> None:
    """Stop bitsandbytes from repacking 4-bit weights for its CPU inference kernel, and undo any
    repacking already done.

    On a CPU with AVX-512 BF16, a 4-bit layer that runs in eval mode without gradients repacks its
    weights for a faster kernel and keeps them so when training resumes. That kernel has no backward
    pass: everything before it stops learning. Training evaluates before its first step, so without
    this a QLoRA run on such a CPU trains nothing and says nothing."""
    for module in model.modules():
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
        weight = getattr(module, "weight", None)
        state = getattr(weight, "quant_state", None)
        if state is not None and getattr(state, "packing_format_for_cpu", False):
            from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse

            weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(weight.data, state)


def evaluate(model, split: TokenizedSplit, pad_id: int, batch_size: int, bf16: bool = False) -> float | None:
    """Mean loss per completion token over `split` (None when it is empty)."""
    import torch

    if not split.examples:
        return None
    model.eval()
    total, tokens = 0.0, 0
    shape = dict(virtual_tokens=virtual_tokens_of(model), selective=keeps_logits_selectively(model))
    with torch.no_grad(), autocast(model, bf16):
        for start in range(0, len(split.examples), batch_size):
            batch = collate(split.examples[start:start + batch_size], pad_id)
            batch = {k: v.to(_device(model)) for k, v in batch.items()}
            count = count_completion_tokens(batch)
            loss = completion_loss(model, batch, **shape)
            total += float(loss) * count
            tokens += count
    model.train()
    return total / max(tokens, 1)


def _device(model):
    return next(model.parameters()).device


def autocast(model, bf16: bool):
    """bf16 autocast of the forward pass on the model's device (the weights stay as they are)."""
    import torch

    return torch.autocast(_device(model).type, dtype=torch.bfloat16, enabled=bf16)


def has_fast_bf16(device: str) -> bool:
    """Whether `device` computes in bf16 natively (a CPU without AVX-512 BF16 or AMX only emulates it,
    which is slower than fp32)."""
    import torch

    if device == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device == "cpu":
        probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
        return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)
    return False


def compute_plan(config: TrainConfig, device: str, block: int) -> tuple[bool, bool, str]:
    """(bf16 compute, gradient checkpointing, optimizer) for a run: what the config asks, `auto`
    resolved for `device` and the block size."""
    bf16 = config.precision == "bf16" or (config.precision == "auto" and has_fast_bf16(device))
    checkpointing = config.gradient_checkpointing == "on" or (
        config.gradient_checkpointing == "auto" and (config.method == FULL or block > DEFAULT_BLOCK_SIZE))
    optimizer = config.optimizer if config.optimizer != "auto" else (
        "adamw8bit" if config.method == FULL and _has_bitsandbytes() else "adamw")
    return bf16, checkpointing, optimizer


def _has_bitsandbytes() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return False
    return True


def make_optimizer(kind: str, parameters: list, lr: float, weight_decay: float):
    """AdamW (`adamw`) or bitsandbytes' 8-bit AdamW (`adamw8bit`: its two moments in 8 bits, a quarter
    of the memory; it runs on a CPU too)."""
    import torch

    if kind == "adamw8bit":
        try:
            import bitsandbytes
        except ImportError:
            raise TrainingError("--optimizer adamw8bit needs bitsandbytes (pip install bitsandbytes)") from None
        return bitsandbytes.optim.AdamW8bit(parameters, lr=lr, weight_decay=weight_decay)
    return torch.optim.AdamW(parameters, lr=lr, weight_decay=weight_decay)


class LinearSchedule:
    """Linear warm-up over the first `warmup` fraction of `total` steps, then linear decay to zero at
    `total`; a time budget lowers `total` as the run goes (and the warm-up with it). The first step
    already learns (a warm-up from exactly zero would waste it, and a short budget may allow only one
    step). A callable object, so `LambdaLR` saves `total` in checkpoints and a resumed run keeps it."""

    def __init__(self, warmup: float, total: int):
        self.warmup, self.total = warmup, total

    def __call__(self, step: int) -> float:
        warmup = int(self.warmup * self.total)
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (self.total - step) / max(1, self.total - warmup))


def _epoch_batches(train: TokenizedSplit, batch_size: int, seed: int) -> list[list[int]]:
    """The batches of one epoch: a seeded shuffle; with several examples per batch, each run of 32
    batches' worth is sorted by length before it is cut, and the batches are shuffled again."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train.examples), generator=generator).tolist()
    if batch_size > 1:
        group = batch_size * 32
        order = [index for start in range(0, len(order), group)
                 for index in sorted(order[start:start + group], key=lambda i: len(train.examples[i].input_ids))]
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if batch_size > 1:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


def train_loop(config: TrainConfig, model, train: TokenizedSplit, valid: TokenizedSplit, pad_id: int,
               run_dir: Path, resume: bool, on_step: Callable[[dict], None],
               stop_after_step: Callable[[int], bool] | None = None, *, bf16: bool = False,
               optimizer_kind: str = "adamw", parallel=None) -> RunState:
    """Optimise `model` on `train`; checkpoints in `run_dir`. Returns the final run state. With
    `parallel` (a `distributed.ParallelRun`) this process is one of several, each training on its
    `config.batch_size` examples of every micro-batch."""
    import torch

    if not train.pairs:
        raise TrainingError(f"the pairs hold nothing in the train split ({valid.pairs} in valid; the rest in test): "
                            "mine them again with a split that keeps pairs to train on (`unitune mine --split`), or "
                            "train on the repository itself")
    if not train.examples:
        raise TrainingError(f"none of the {train.pairs} training pairs fits the block size; raise --block-size or "
                            "use shorter tests")
    if parallel is not None:  # DDP or FSDP wraps the model before the optimizer sees its parameters
        parallel.prepare(model, batch_size=config.batch_size, pad_id=pad_id, grad_accum=config.grad_accum, bf16=bf16)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(optimizer_kind, trainable, config.learning_rate, config.weight_decay)
    micro_batch = config.batch_size * (parallel.size if parallel is not None else 1)  # examples, all processes
    measure = parallel.evaluate if parallel is not None else evaluate
    save_checkpoint = parallel.save_checkpoint if parallel is not None else checkpoints.save
    load_latest = parallel.load_latest if parallel is not None else checkpoints.load_latest
    micro_per_epoch = math.ceil(len(train.examples) / micro_batch)
    steps_per_epoch = math.ceil(micro_per_epoch / config.grad_accum)
    planned = max(1, math.ceil(steps_per_epoch * config.epochs))
    if config.max_steps:
        planned = min(planned, config.max_steps)
    schedule = LinearSchedule(config.warmup, planned)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    state = RunState()
    loaded = load_latest(run_dir, model, optimizer, scheduler, on_damaged=_say_damaged) if resume else None
    if loaded is not None:
        found, saved = loaded
        state = RunState(**{k: saved[k] for k in RunState.__dataclass_fields__ if k in saved})
        if state.batch > micro_per_epoch or state.epoch > math.ceil(config.epochs):
            raise checkpoints.CheckpointError(
                f"{found.name} is at epoch {state.epoch}, micro-batch {state.batch}, which this run's "
                f"{config.epochs} epochs of {micro_per_epoch} micro-batches do not have; start over with --fresh")
        log_event(log, "train.resumed", step=state.step, checkpoint=found)
    else:
        rank = parallel.rank if parallel is not None else 0  # each process draws its own dropout
        random.seed(config.seed + rank)
        torch.manual_seed(config.seed + rank)
        mark = time.perf_counter()
        state.eval_before = measure(model, valid, pad_id, config.batch_size, bf16)
        state.eval_seconds = time.perf_counter() - mark
        if parallel is not None:  # one budget for all processes
            state.eval_seconds = parallel.slowest(state.eval_seconds)
    budget = config.minutes * 60 - state.eval_seconds if config.minutes else None  # the final validation's time
    started = time.perf_counter() - state.seconds
    device = _device(model)

    @functools.lru_cache(maxsize=1)
    def epoch_batches(epoch: int) -> list[list[int]]:
        return _epoch_batches(train, micro_batch, config.seed + epoch)

    def next_batches():
        """The next step's micro-batches: `grad_accum` of them, fewer at the end of an epoch."""
        chosen = epoch_batches(state.epoch)[state.batch:state.batch + config.grad_accum]
        state.batch += len(chosen)
        if parallel is not None:
            yield from parallel.micro_batches(chosen, train.examples)
            return
        for indices in chosen:
            batch = collate([train.examples[i] for i in indices], pad_id)
            yield {k: v.to(device) for k, v in batch.items()}

    def after_step(step: int, loss: float) -> None:
        state.step, state.seconds = step, time.perf_counter() - started
        if parallel is not None:  # the loss of the whole batch; the slowest clock, so all fit one schedule
            loss, state.seconds = parallel.agree(loss, state.seconds)
        if budget is not None:  # before the scheduler computes the next step's rate from it
            _fit_schedule(schedule, state, budget, planned)
        scheduler.step()
        last_of_epoch = state.batch == micro_per_epoch
        record = {"step": step, "epoch": round(state.epoch + state.batch / micro_per_epoch, 4), "loss": loss,
                  "lr": scheduler.get_last_lr()[0]}
        if last_of_epoch or step == schedule.total:
            record["eval_loss"] = measure(model, valid, pad_id, config.batch_size, bf16)
        state.history.append(record)
        state.seconds = time.perf_counter() - started
        if last_of_epoch:  # the next epoch is shuffled anew, as a run resumed at this point shuffles it
            state.epoch, state.batch = state.epoch + 1, 0
        if step % config.checkpoint_every == 0 or step == schedule.total:
            save_checkpoint(run_dir, step, model, optimizer, scheduler, _state_dict(state))
        eta = state.seconds / step * (schedule.total - step)
        on_step({"event": "step", **record, "total_steps": schedule.total, "fraction": step / schedule.total,
                 "elapsed": round(state.seconds, 2), "eta": round(eta, 1)})
        if stop_after_step is not None and stop_after_step(step):
            raise TrainingInterrupted(f"training stopped after step {step}; continue with --resume")

    run_steps(model, optimizer, next_batches, step=state.step, started=started,
              done=lambda step, seconds: step >= schedule.total, after_step=after_step,
              grad_accum=config.grad_accum, bf16=bf16, micro_step=parallel.micro_step if parallel is not None else None)
    state.stopped_by = "minutes" if schedule.total < planned else ("max_steps" if config.max_steps and
                                                                    planned == config.max_steps else "epochs")
    return state


def run_steps(model, optimizer, next_batches: Callable[[], Iterable[dict]], *, step: int, started: float,
              done: Callable[[int, float], bool], after_step: Callable[[int, float], None],
              before_step: Callable[[int, float], None] | None = None, grad_accum: int = 1,
              bf16: bool = False, micro_step: Callable[[object], float] | None = None) -> int:
    """The optimisation loop, from `step` on; returns the step reached. Before a step, `done(step, seconds)`
    may end the loop, then `before_step(step, seconds)` runs (to set a learning rate, say); `seconds` counts
    from `started`, a `time.perf_counter()` reading (earlier by the time a resumed run had trained). A step:
    forward and backward on each of `next_batches()`, the loss scaled by 1/`grad_accum`, the gradient
    clipped to norm 1, an optimizer step; then `after_step(step, loss)`, with the micro-batches' mean loss,
    logs, evaluates, checkpoints or raises to stop. `micro_step(batch)`, when given, replaces the forward
    and backward pass of a micro-batch and returns its loss as this loop counts it (one of several
    processes scales its loss to its share of the batch)."""
    import torch

    trainable = [p for p in model.parameters() if p.requires_grad]
    shape = dict(virtual_tokens=virtual_tokens_of(model), selective=keeps_logits_selectively(model))
    model.train()
    while True:
        seconds = time.perf_counter() - started
        if done(step, seconds):
            return step
        if before_step is not None:
            before_step(step, seconds)
        loss_sum, micro_batches = 0.0, 0
        for batch in next_batches():
            if micro_step is not None:
                loss_sum += micro_step(batch)
            else:
                with autocast(model, bf16):
                    loss = completion_loss(model, batch, **shape) / grad_accum
                loss.backward()
                loss_sum += float(loss.detach())
            micro_batches += 1
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        after_step(step, loss_sum * grad_accum / micro_batches)


def _fit_schedule(schedule: LinearSchedule, state: RunState, budget: float, planned: int) -> None:
    """Fit the schedule's end to the time budget: the steps the time left allows at the pace so far
    (never past the planned steps; the current step ends the run once the budget is spent)."""
    pace = state.seconds / state.step
    affordable = state.step + int(max(0.0, budget - state.seconds) / pace)
    schedule.total = max(state.step, min(planned, affordable))


def _state_dict(state: RunState) -> dict:
    return {"step": state.step, "epoch": state.epoch, "batch": state.batch, "history": state.history,
            "eval_before": state.eval_before, "eval_seconds": state.eval_seconds, "seconds": state.seconds}


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
