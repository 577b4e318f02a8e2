"""What a finished training run leaves and records: the weights (PEFT's files, or the whole model's),
the config, the loss history and its plot, and the facts its card states (parameter counts, peak
memory, the repository's commit)."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from unitune.adapters.constants import FULL
from unitune.training.config import TrainConfig

PLOT_FILE = "loss.png"
HISTORY_FILE = "history.json"


def peak_memory_mib() -> float:
    """The process's peak resident memory (CUDA: peak allocated on the GPU) in MiB."""
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
            return torch.cuda.max_memory_allocated() / 2**20
    except ImportError:  # pragma: no cover
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 if sys.platform != "darwin" else peak / 2**20


def git_commit(repo: Path | None) -> str | None:
    if repo is None:
        return None
    try:
        result = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def plot_losses(history: list[dict], eval_before: float | None, path: Path) -> Path | None:
    """Training and validation loss against steps, as a PNG (None when matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axes = plt.subplots(figsize=(7, 4), dpi=100)
    axes.plot([h["step"] for h in history], [h["loss"] for h in history], label="training loss")
    evals = [(h["step"], h["eval_loss"]) for h in history if h.get("eval_loss") is not None]
    if eval_before is not None:
        evals.insert(0, (0, eval_before))
    if evals:
        axes.plot([s for s, _ in evals], [v for _, v in evals], marker="o", label="validation loss")
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("loss per completion token")
    axes.legend()
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def save_artifacts(folder: Path, model, tokenizer, config: TrainConfig, state, weights: dict | None = None) -> None:
    """Weights (PEFT's files, or the model's for a full fine-tune), config, history and plot into
    `folder`; `state` is the trainer's `RunState`; `weights`, the whole state dict of a model sharded
    over several processes (training/sharding.py)."""
    if config.method == FULL:
        model.save_pretrained(folder, state_dict=weights)
        tokenizer.save_pretrained(folder)
    else:
        model.save_pretrained(folder)
    config.save(folder)
    (folder / HISTORY_FILE).write_text(json.dumps({"eval_before": state.eval_before, "history": state.history},
                                                  indent=1) + "\n", "utf-8")
    plot_losses(state.history, state.eval_before, folder / PLOT_FILE)


def temporary_folder(run_dir: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".adapter-", dir=run_dir))


def remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def count_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total
