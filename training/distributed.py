"""Training on several processes, one per GPU (or CPU processes talking over gloo):

    accelerate launch --num_processes 2 -m unitune train PAIRS.jsonl --method lora --name NAME
    torchrun --nproc_per_node 2 -m unitune train PAIRS.jsonl --method lora --name NAME

The launcher starts the processes and sets `WORLD_SIZE`, `RANK` and `LOCAL_RANK`; `joined()` makes
them a process group. What differs from one process:

- **Data.** Every micro-batch of the run is drawn as one process would draw a micro-batch of
  `batch_size x processes` examples (the same seeded order, training/trainer.py `_epoch_batches`);
  rank r trains on the r-th `batch_size` of them. The global batch of an optimizer step is
  `batch_size x processes x grad_accum`.
- **Gradients.** DDP averages them over the processes; each process weights its loss by its share of
  the micro-batch's completion tokens (the loss is a mean per completion token), so a step is the
  step one process takes on the whole global batch, within float rounding.
- **The main process** (rank 0) alone locks the run folder, mines or reads the pairs, writes the
  checkpoints, the progress output, the adapter and its registry entry. The others wait for it in
  `on_main`, where an error on rank 0 reaches them as `MainProcessFailed`.
- **Checkpoints** are the single-process files, plus every rank's random-number generators
  (`rng_by_rank`, for its dropout) and the number of processes: a run resumes with as many processes
  as it started with. Under DDP every process reads the checkpoint (under FSDP the main process does
  and hands each its slice), so the run folder must be on a disk all of them see (one machine, or a
  shared `$UNITUNE_HOME`).
- **Sharding.** Full fine-tuning is sharded with FSDP when `accelerate launch` is configured for it
  (`--use_fsdp`, training/sharding.py); adapters train with DDP (their weights are small). DeepSpeed is
  refused: this loop does not drive it.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from unitune.adapters.constants import FULL
from unitune.errors import UnituneError
from unitune.logs import LOGGER_NAME, get_logger, log_event
from unitune.training import checkpoints
from unitune.training.data import IGNORE_INDEX, Example, TokenizedSplit, collate
from unitune.training.loss import completion_loss, count_completion_tokens, keeps_logits_selectively, virtual_tokens_of

log = get_logger("training.distributed")
DDP, FSDP = "ddp", "fsdp"
T = TypeVar("T")


class DistributedTrainingError(UnituneError):
    """Several processes cannot train this run as asked."""

    exit_code = 2


class MainProcessFailed(UnituneError):
    """The main process failed (and reported it); the other processes stop with its exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def launched_rank() -> int:
    """This process's rank as the launcher set it (0 when nothing launched several processes)."""
    return int(os.environ.get("RANK", "0"))


@dataclass(frozen=True)
class Team:
    """The processes of a run, as this one sees them."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def several(self) -> bool:
        return self.size > 1

    def on_main(self, compute: Callable[[], T]) -> T:
        """`compute()` on the main process only; every process returns its result, or raises its error
        (on the others as `MainProcessFailed`, which the command line does not print again)."""
        if not self.several:
            return compute()
        import torch.distributed as dist

        if not self.is_main:
            box = [None]
            dist.broadcast_object_list(box, src=0)
            outcome, *payload = box[0]
            if outcome == "error":
                raise MainProcessFailed(*payload)
            return payload[0]
        try:
            result = compute()
        except UnituneError as error:
            dist.broadcast_object_list([("error", str(error), error.exit_code)], src=0)
            raise
        except Exception as error:  # a bug or an OSError: the others must not wait for a result forever
            dist.broadcast_object_list([("error", f"the main process failed: {type(error).__name__}: {error}", 1)],
                                       src=0)
            raise
        dist.broadcast_object_list([("ok", result)], src=0)
        return result

    def main_first(self, compute: Callable[[], T]) -> T:
        """`compute()` on every process, the main one first (it may convert and cache a model once);
        its error stops the others before they start."""
        if not self.is_main:
            self.on_main(lambda: None)
            return compute()
        results = []
        self.on_main(lambda: results.append(compute()))  # the others hear only that it is done
        return results[0]


ALONE = Team()


@contextmanager
def joined() -> Iterator[Team]:
    """The team this process belongs to: `ALONE` unless a launcher started several processes, which
    then form a process group (gloo for CPU tensors, NCCL for GPU ones) for the `with` block."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        yield ALONE
        return
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", launched_rank()))
    if dist.is_initialized():  # a caller's own group
        yield Team(dist.get_rank(), dist.get_world_size(), local_rank)
        return
    _own_gpu(local_rank)
    import torch

    dist.init_process_group(backend="cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo")
    team = Team(dist.get_rank(), dist.get_world_size(), local_rank)
    logger = logging.getLogger(LOGGER_NAME)
    level = logger.level
    if not team.is_main:  # rank 0 logs for the run; the others only their own errors
        logger.setLevel(logging.ERROR)
    try:
        yield team
    finally:
        logger.setLevel(level)
        dist.destroy_process_group()


def _own_gpu(local_rank: int) -> None:
    """Let this process see only its own GPU, before CUDA starts: `cuda` (and the quantized loading
    path, which places a model on GPU 0) then means the GPU of `LOCAL_RANK`."""
    import torch

    if torch.cuda.is_initialized():
        torch.cuda.set_device(local_rank)
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = visible.split(",") if visible else [str(index) for index in range(local_rank + 1)]
    if local_rank < len(devices):
        os.environ["CUDA_VISIBLE_DEVICES"] = devices[local_rank]


def sharding_for(method: str) -> str:
    """DDP, or FSDP for full fine-tuning when `accelerate launch` was configured for FSDP."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        installed = _installed("deepspeed")
        raise DistributedTrainingError(
            "accelerate is configured for DeepSpeed, which unitune's training loop does not drive"
            f"{'' if installed else ' (and DeepSpeed is not installed here)'}; for full fine-tuning shard with FSDP "
            "(`accelerate launch --use_fsdp ...`), or launch without DeepSpeed for DDP")
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() != "true":
        return DDP
    if method != FULL:
        log_event(log, "train.sharding", level=logging.WARNING, asked="fsdp", used="ddp",
                  reason=f"FSDP shards full fine-tuning; a {method} adapter is small enough to copy to every GPU")
        return DDP
    return FSDP


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


@dataclass
class MicroBatch:
    """This process's part of a micro-batch, and its share of the micro-batch's completion tokens."""

    tensors: dict
    share: float


class ParallelRun:
    """What `train_loop` does differently as one of several processes: it wraps the model (DDP or
    FSDP), picks this process's part of every micro-batch, weights and synchronises the gradients,
    sums the losses over the processes, and saves and loads checkpoints from the main process."""

    def __init__(self, team: Team, sharding: str = DDP):
        self.team, self.sharding = team, sharding
        self.model = self.wrapped = None
        self.batch_size, self.pad_id, self.grad_accum, self.bf16 = 1, 0, 1, False
        self._loss_shape: dict = {}
        self._left = 0  # micro-batches of the current step still to run (the last one synchronises)

    @property
    def rank(self) -> int:
        return self.team.rank

    @property
    def size(self) -> int:
        return self.team.size

    def prepare(self, model, *, batch_size: int, pad_id: int, grad_accum: int, bf16: bool) -> None:
        """Wrap `model` for training on every process (before the optimizer sees its parameters);
        `batch_size` is each process's part of a micro-batch."""
        self.model, self.batch_size, self.pad_id = model, batch_size, pad_id
        self.grad_accum, self.bf16 = grad_accum, bf16
        self._loss_shape = dict(virtual_tokens=virtual_tokens_of(model), selective=keeps_logits_selectively(model))
        if self.sharding == FSDP:
            from unitune.training import sharding

            self.wrapped = sharding.shard(model)
            return
        from torch.nn.parallel import DistributedDataParallel

        # Frozen base weights are loaded alike everywhere: only what trains is broadcast and averaged.
        frozen = [name for name, p in model.named_parameters() if not p.requires_grad]
        frozen += [name for name, _ in model.named_buffers()]
        DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, frozen)
        device = _device(model)
        self.wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    def micro_batches(self, chosen: list[list[int]], examples: list[Example]) -> Iterator[MicroBatch]:
        """This process's part of each micro-batch in `chosen` (indices into `examples`, all processes'). A
        process whose part is empty (the end of an epoch) runs the first example with no weight, because
        every process must take part in every gradient exchange."""
        self._left = len(chosen)
        device = _device(self.model)
        for indices in chosen:
            mine = indices[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]
            total = sum(_completion_tokens(examples[i]) for i in indices)
            share = sum(_completion_tokens(examples[i]) for i in mine) / max(total, 1)
            batch = collate([examples[i] for i in (mine or indices[:1])], self.pad_id)
            yield MicroBatch({k: v.to(device) for k, v in batch.items()}, share)

    def micro_step(self, micro: MicroBatch) -> float:
        """Forward and backward on this process's part; returns its share of the micro-batch's loss
        (divided by `grad_accum`, as one process's loop counts it). The processes' gradients are
        averaged at the last micro-batch of a step, so each loss is scaled by their number."""
        from unitune.training.trainer import autocast

        self._left -= 1
        synchronise = self._left <= 0
        if self.sharding == FSDP:
            self.wrapped.set_requires_gradient_sync(synchronise)
            quiet = nullcontext()
        else:
            quiet = nullcontext() if synchronise else self.wrapped.no_sync()
        with quiet:
            with autocast(self.model, self.bf16):
                loss = completion_loss(self.wrapped, micro.tensors, **self._loss_shape) * (micro.share / self.grad_accum)
            (loss * self.size).backward()
        return float(loss.detach())

    def agree(self, loss: float, seconds: float) -> tuple[float, float]:
        """The step's loss over all processes (the sum of their shares), and the slowest process's
        clock, so that a time budget ends the run at the same step everywhere."""
        losses, clocks = zip(*self._gather([loss, seconds]))
        return sum(losses), max(clocks)

    def slowest(self, seconds: float) -> float:
        return max(row[0] for row in self._gather([seconds]))

    def evaluate(self, model, split: TokenizedSplit, pad_id: int, batch_size: int, bf16: bool = False) -> float | None:
        """Mean loss per completion token over `split`, its batches shared out between the processes."""
        import torch

        from unitune.training.trainer import autocast

        if not split.examples:
            return None
        starts = list(range(0, len(split.examples), batch_size))
        total, tokens = 0.0, 0
        model.eval()  # `model` itself, not DDP's wrapper: no gradients to exchange
        with torch.no_grad(), autocast(model, bf16):
            for turn in range(math.ceil(len(starts) / self.size)):
                index = turn * self.size + self.rank
                if index >= len(starts) and self.sharding != FSDP:
                    break  # FSDP gathers weights in every forward pass: each process runs as many
                start = starts[min(index, len(starts) - 1)]
                batch = collate(split.examples[start:start + batch_size], pad_id)
                batch = {k: v.to(_device(model)) for k, v in batch.items()}
                loss = completion_loss(model, batch, **self._loss_shape)
                if index < len(starts):
                    count = count_completion_tokens(batch)
                    total, tokens = total + float(loss) * count, tokens + count
        if self.sharding == FSDP:  # FSDP's root module keeps its weights gathered after a forward pass
            model.reshard()        # without gradients, and the next backward pass would give them none
        model.train()
        total, tokens = (sum(column) for column in zip(*self._gather([total, tokens])))
        return total / max(tokens, 1)

    def save_checkpoint(self, run_dir: Path, step: int, model, optimizer, scheduler, state: dict) -> None:
        """The single-process checkpoint, written by the main process, with every rank's generators."""
        weights, optimizer_state = {}, {}  # the main process's, gathered from every process under FSDP
        if self.sharding == FSDP:
            from unitune.training import sharding

            weights, optimizer_state = sharding.full_state(model, optimizer)
        elif self.team.is_main:
            weights, optimizer_state = checkpoints.trainable_weights(model), optimizer.state_dict()
        generators = self._gather_objects(checkpoints.rng_state())
        self.team.on_main(lambda: checkpoints.write(
            run_dir, step, weights, {"optimizer": optimizer_state, "scheduler": scheduler.state_dict()},
            dict(state, rng=generators[0], rng_by_rank=generators, processes=self.size)))

    def load_latest(self, run_dir: Path, model, optimizer, scheduler, on_damaged=None) -> tuple[Path, dict] | None:
        """Resume every process from the newest checkpoint the main process can read (damaged ones are
        skipped, as `checkpoints.load_latest` does); None when there is none."""
        opened = {}

        def choose() -> Path | None:
            found = checkpoints.first_loadable(run_dir, checkpoints.read, on_damaged)
            if found is None:
                return None
            checkpoints.require_processes(found[0], found[1][2], self.size)
            opened["saved"] = found[1]
            return found[0]

        chosen = self.team.on_main(choose)
        if chosen is None:
            return None
        if self.sharding == FSDP:
            from unitune.training import sharding

            saved = opened.get("saved", ({}, {}, {}))
            sharding.load_full_state(model, optimizer, saved[0], saved[1].get("optimizer", {}))
            scheduler_state, state = self.team.on_main(lambda: (saved[1]["scheduler"], saved[2]))
            scheduler.load_state_dict(scheduler_state)
            state = dict(state)
            state.pop("rng")
        else:
            state = checkpoints.apply(opened.get("saved") or checkpoints.read(chosen), model, optimizer, scheduler)
        checkpoints.set_rng_state(state.pop("rng_by_rank")[self.rank])
        state.pop("processes", None)
        return chosen, state

    def _gather(self, values: list[float]) -> list[list[float]]:
        import torch
        import torch.distributed as dist

        mine = torch.tensor(values, dtype=torch.float64)
        every = [torch.zeros_like(mine) for _ in range(self.size)]
        dist.all_gather(every, mine)
        return [row.tolist() for row in every]

    def _gather_objects(self, value) -> list:
        import torch.distributed as dist

        every = [None] * self.size
        dist.all_gather_object(every, value)
        return every


def _completion_tokens(example: Example) -> int:
    """The tokens the loss is a mean over (as the model counts them: labels after the first)."""
    return sum(1 for label in example.labels[1:] if label != IGNORE_INDEX)


def _device(model):
    return next(model.parameters()).device
