"""Checkpoints of a training run, so `--resume` continues after a crash or `kill -9` exactly where
the run was: trainable weights, optimizer and scheduler state, random-number generators, the position
in the data, and the loss history. Written to a temporary folder and renamed, so a checkpoint is
either complete or absent; the last two are kept.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

from unitune.errors import UnituneError

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
    import torch
    from safetensors.torch import save_file

    folder = Path(run_dir) / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step}"
    temp = folder / f".tmp-step-{step}-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    weights = {name: p.detach().cpu().contiguous() for name, p in model.named_parameters() if p.requires_grad}
    save_file(weights, str(temp / WEIGHTS_FILE))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, temp / OPTIMIZER_FILE)
    state = dict(state, step=step, rng=_rng_state())
    (temp / STATE_FILE).write_text(json.dumps(state), "utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(temp, final)
    for old in checkpoint_dirs(run_dir)[:-KEEP]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load(checkpoint: Path, model, optimizer, scheduler) -> dict:
    import torch
    from safetensors.torch import load_file

    weights = load_file(str(checkpoint / WEIGHTS_FILE))
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in weights.items():
            parameters[name].copy_(value)
    # Our own file, written above; weights_only keeps loading to tensors and plain containers.
    saved = torch.load(checkpoint / OPTIMIZER_FILE, weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    state = json.loads((checkpoint / STATE_FILE).read_text("utf-8"))
    _set_rng_state(state.pop("rng"))
    return state


def load_latest(run_dir: Path, model, optimizer, scheduler, on_damaged=None) -> tuple[Path, dict] | None:
    """Load the newest checkpoint that loads; a damaged one (cut short, corrupted) is skipped for the
    one before it, with `on_damaged(path, error)`. None when there is none; `CheckpointError` when
    every one is damaged."""
    found = checkpoint_dirs(run_dir)
    errors = []
    for checkpoint in reversed(found):
        try:
            return checkpoint, load(checkpoint, model, optimizer, scheduler)
        except Exception as error:  # safetensors, torch and json each fail their own way
            errors.append(f"{checkpoint.name}: {type(error).__name__}")
            if on_damaged is not None:
                on_damaged(checkpoint, error)
    if errors:
        raise CheckpointError(f"every checkpoint of {run_dir} is damaged ({'; '.join(errors)}); start over with --fresh")
    return None


def _rng_state() -> dict:
    import torch

    return {"python": _jsonable(random.getstate()), "torch": torch.get_rng_state().tolist()}


def _set_rng_state(state: dict) -> None:
    import torch

    random.setstate(_tupled(state["python"]))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))


def _jsonable(value):
    return [_jsonable(v) for v in value] if isinstance(value, (tuple, list)) else value


def _tupled(value):
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value
