"""What `unitune pretrain` is asked to do: its configuration (one field per command-line option, see
commands/pretrain.py), where the model it builds goes, and the error it reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from unitune.errors import UnituneError
from unitune.package_files import BUNDLED_MODELS_DIR

MODEL_NAME = "unitune-mini"
#: Where the shipped model lives in the source tree (`--out unitune/models/unitune-mini` rebuilds it).
SHIPPED_FOLDER = BUNDLED_MODELS_DIR / MODEL_NAME


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


def output_folder(config: PretrainConfig) -> Path:
    """Where the model goes: `--out`, else `$UNITUNE_HOME/models/unitune-mini` (never the package's
    own copy unless asked for by path: `--out unitune/models/unitune-mini` rebuilds the shipped model)."""
    from unitune.settings import data_home

    return Path(config.out).expanduser().resolve() if config.out else data_home() / "models" / MODEL_NAME
