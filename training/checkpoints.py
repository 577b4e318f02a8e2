"""Checkpoints of a training run, so `--resume` continues after a crash or `kill -9` exactly where
the run was: trainable weights, optimizer and scheduler state, random-number generators, the position
in the data, and the loss history. Written to a temporary folder and renamed, so a checkpoint is
either complete or absent; the last two are kept.

A run on several processes (training/distributed.py) writes the same files from its main process,
with every process's random-number generators in the state (`rng_by_rank`); `write` and `read` are
the halves it shares with `save` and `load`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

from unitune.errors import UnituneError
from unitune.files import read_regular_text, require_regular

STATE_FILE = "state.json"
WEIGHTS_FILE = "trainable.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
KEEP = 2


class CheckpointError(UnituneError):
    """No checkpoint of a run can be loaded."""

    exit_code = 2


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    folder = Path(run_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest(run_dir: Path) -> Path | None:
    found = checkpoint_dirs(run_dir)
    return found[-1] if found else None


def save(run_dir: Path, step: int, model, optimizer, scheduler, state: dict) -> Path:
    return write(run_dir, step, trainable_weights(model),
                 {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, dict(state, rng=rng_state()))


def trainable_weights(model) -> dict:
    return {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def write(run_dir: Path, step: int, weights: dict, optimizer_state: dict, state: dict) -> Path:
    """Write checkpoint `step`: `weights` (name -> tensor), `optimizer_state` (the optimizer's and the
    scheduler's state dicts) and `state` (JSON, with the random-number generators' states)."""
    import torch
    from safetensors.torch import save_file

    folder = Path(run_dir) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step}"
    temp = folder / f".tmp-step-{step}-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    save_file(weights, str(temp / WEIGHTS_FILE))
    torch.save(optimizer_state, temp / OPTIMIZER_FILE)
    (temp / STATE_FILE).write_text(json.dumps(dict(state, step=step)), "utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(temp, final)
    for old in checkpoint_dirs(run_dir)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load(checkpoint: Path, model, optimizer, scheduler) -> dict:
    return apply(read(checkpoint), model, optimizer, scheduler)


def read(checkpoint: Path) -> tuple[dict, dict, dict]:
    """The weights, the optimizer and scheduler states, and the state of `checkpoint`, as written."""
    import torch
    from safetensors.torch import load_file

    # Each is checked to be a regular file first: a pipe in its place would hang the load.
    weights = load_file(str(require_regular(checkpoint / WEIGHTS_FILE)))
    # Our own file, written above; weights_only keeps loading to tensors and plain containers.
    optimizer_state = torch.load(require_regular(checkpoint / OPTIMIZER_FILE), weights_only=True)
    state = checked_state(json.loads(read_regular_text(checkpoint / STATE_FILE)), checkpoint)
    return weights, optimizer_state, state


def checked_state(state, checkpoint: Path) -> dict:
    """A checkpoint's state when its counters are whole numbers from 0 and its times finite and from 0;
    else `CheckpointError`, so that the checkpoint before it is tried (a state edited or damaged into
    `"step": "ten"` or `"epoch": -3` once crashed the resume or trained a different adapter silently)."""
    if not isinstance(state, dict):
        raise CheckpointError(f"{checkpoint / STATE_FILE} does not hold a training state")
    for key in ("step", "epoch", "batch"):
        value = state.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise CheckpointError(f"{checkpoint / STATE_FILE}: {key} is {value!r}, not a count")
    for key in ("seconds", "eval_seconds"):
        value = state.get(key, 0.0)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < float("inf"):
            raise CheckpointError(f"{checkpoint / STATE_FILE}: {key} is {value!r}, not a time")
    if not isinstance(state.get("history", []), list):
        raise CheckpointError(f"{checkpoint / STATE_FILE}: history is not a list")
    return state


def apply(saved: tuple[dict, dict, dict], model, optimizer, scheduler) -> dict:
    """Put what `read` returned into `model`, `optimizer`, `scheduler` and the random-number
    generators; returns the state without them."""
    import torch

    weights, optimizer_state, state = saved
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            parameters[name].copy_(value)
    optimizer.load_state_dict(optimizer_state["optimizer"])
    scheduler.load_state_dict(optimizer_state["scheduler"])
    state = dict(state)
    set_rng_state(state.pop("rng"))
    return state


def load_latest(run_dir: Path, model, optimizer, scheduler, on_damaged=None) -> tuple[Path, dict] | None:
    """Load the newest checkpoint that loads; a damaged one (cut short, corrupted) is skipped for the
    one before it, with `on_damaged(path, error)`. None when there is none; `CheckpointError` when
    every one is damaged or was written by a run on several processes."""
    found = first_loadable(run_dir, lambda checkpoint: load(checkpoint, model, optimizer, scheduler), on_damaged)
    if found is not None:
        require_processes(found[0], found[1], 1)
    return found


def require_processes(checkpoint: Path, state: dict, processes: int) -> None:
    """Refuse to resume from `checkpoint` (its `state`) with another number of processes than wrote
    it: the position in the data and each process's random generators depend on it."""
    written_by = state.get("processes", 1)
    if written_by != processes:
        raise CheckpointError(
            f"{checkpoint} was written by a run on {written_by} process(es), not {processes}; resume it with as many "
            f"(`accelerate launch --num_processes {written_by} -m unitune train ... --resume`, or without a "
            "launcher for one)")


def first_loadable(run_dir: Path, open_checkpoint, on_damaged=None) -> tuple[Path, object] | None:
    """`(path, open_checkpoint(path))` for the newest checkpoint `open_checkpoint` does not fail on,
    newest first, as `load_latest` describes."""
    found = checkpoint_dirs(run_dir)
    errors = []
    for checkpoint in reversed(found):
        try:
            return checkpoint, open_checkpoint(checkpoint)
        except Exception as error:  # safetensors, torch and json each fail their own way
            errors.append(f"{checkpoint.name}: {type(error).__name__}")
            if on_damaged is not None:
                on_damaged(checkpoint, error)
    if errors:
        raise CheckpointError(f"every checkpoint of {run_dir} is damaged ({'; '.join(errors)}); start over with --fresh")
    return None


def rng_state() -> dict:
    """This process's random-number generators (Python's, torch's, and the current GPU's when CUDA is in use)."""
    import torch

    state = {"python": _jsonable(random.getstate()), "torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # dropout on a GPU draws from its own generator
        state["cuda"] = torch.cuda.get_rng_state().tolist()
    return state


def set_rng_state(state: dict) -> None:
    import torch

    random.setstate(_tupled(state["python"]))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(torch.tensor(state["cuda"], dtype=torch.uint8))


def _jsonable(value):
    return [_jsonable(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tupled(value):
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value
