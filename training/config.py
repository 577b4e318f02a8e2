"""The training configuration: one dataclass with the study's defaults and a help text per field,
saved as `train-config.json` next to the adapter it produced.

Defaults from "Parameter-Efficient Fine-Tuning of LLMs for Unit Test Generation" (Storhaug & Li):
LoRA r=16, alpha=32, dropout 0.1 on the attention query/value projections; (IA)³ on key/value and the
MLP down-projection; prompt tuning with 20 virtual tokens; learning rate 3e-4 (full fine-tuning 5e-5),
3 epochs, linear schedule with 10% warm-up; loss on the completion only.

Where unitune departs from the study, for real repositories on a CPU: an optimizer step per example
(`grad_accum` 1; the study accumulated 8) within a time budget of 20 minutes (`minutes`), because a
CPU trains 5 to 8 of a real project's examples a minute, and 20 minutes of 8-example steps are 13 to
20 updates, too few to change what the model writes (docs/study.md measures both); an example longer
than the block size is fitted into it rather than dropped (`over_length`); the block is 2048 tokens on
a CPU and 4096 on a GPU, within the model's context; full fine-tuning uses an 8-bit AdamW where
bitsandbytes is installed; bf16 compute where the hardware has it.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from unitune.adapters.constants import FULL, METHODS, NAME_PATTERN
from unitune.errors import UnituneError
from unitune.files import atomic_write
from unitune.files import read_regular_text
from unitune.training.data import OVER_LENGTH

CONFIG_FILE = "train-config.json"
CHOICES = {
    "method": METHODS,
    "over_length": OVER_LENGTH,
    "precision": ("auto", "fp32", "bf16"),
    "gradient_checkpointing": ("auto", "on", "off"),
    "optimizer": ("auto", "adamw", "adamw8bit"),
    "split": ("auto", "file", "method", "pair", "none"),
}


def _f(default, help: str, **kwargs):
    return field(default=default, metadata={"help": help}, **kwargs)


@dataclass
class TrainConfig:
    method: str = _f("lora", f"training method: {', '.join(METHODS)}")
    name: str = _f("", f"adapter name in the registry ({NAME_PATTERN.pattern})")
    model: str | None = _f(None, "base model (default: the `model` setting)")
    epochs: float = _f(3, "passes over the training pairs")
    lr: float | None = _f(None, "learning rate (default 3e-4; 5e-5 for full fine-tuning)")
    rank: int = _f(16, "LoRA rank r")
    alpha: int = _f(32, "LoRA alpha")
    dropout: float = _f(0.1, "LoRA dropout")
    target_modules: str | None = _f(None, "comma-separated module names to adapt (default: chosen per architecture)")
    virtual_tokens: int = _f(20, "prompt tuning: number of virtual tokens")
    block_size: int | None = _f(None, "longest example in tokens (default: 2048 on a CPU, 4096 on a GPU, within the "
                                      "model's context)")
    over_length: str = _f("truncate", "a longer example: truncate (drop the context farthest from the focal method, "
                                      "then the test's end) or drop")
    batch_size: int = _f(1, "examples per forward pass")
    grad_accum: int = _f(1, "forward passes per optimizer step (the study's 8 makes a time budget's updates 8 times fewer)")
    warmup: float = _f(0.1, "fraction of the steps spent warming the learning rate up")
    weight_decay: float = _f(0.0, "AdamW weight decay")
    max_steps: int | None = _f(None, "stop after this many optimizer steps (default: all epochs)")
    minutes: float | None = _f(20.0, "time budget for the training steps: the schedule is fitted to it and the run "
                                     "ends with its adapter when it is spent (the final validation comes on top); "
                                     "0: no budget, all the epochs")
    judge: int = _f(8, "after training, judge base and adapter on up to N held-out functions (the test split) as "
                       "`unitune eval` does, and say what the adapter changed; 0: skip (it takes about a minute "
                       "a function per model on a CPU; the base's results are kept for the next run)")
    checkpoint_every: int = _f(50, "save a checkpoint every N optimizer steps (for --resume)")
    seed: int = _f(42, "seed for initialisation and data order")
    language: str | None = _f(None, "train on one language only: python or java")
    store: str = _f("user", "registry store for the adapter: user or project")
    quantization: str | None = _f(None, "base model quantization: none, 8bit or 4bit (4bit + LoRA is QLoRA; "
                                        "default: 4bit on CUDA for LoRA/(IA)³, none on a CPU)")
    precision: str = _f("auto", "compute precision: auto (bf16 where the CPU or GPU has it), fp32 or bf16")
    gradient_checkpointing: str = _f("auto", "recompute activations to save memory: auto (on for full fine-tuning "
                                             "and blocks over 2048 tokens), on or off")
    optimizer: str = _f("auto", "adamw, or adamw8bit (bitsandbytes; less memory); auto: adamw8bit for full "
                                "fine-tuning where bitsandbytes is installed")
    split: str = _f("auto", "when REPO is mined: how pairs are held out (auto, file, method, pair, none; see "
                            "`unitune mine --help`)")
    device: str | None = _f(None, "device (default: the `device` setting)")

    def __post_init__(self) -> None:
        if self.minutes == 0:
            self.minutes = None  # `--minutes 0`: no budget

    def check(self) -> None:
        """Raise `ValueError` naming the flag when a choice-valued field holds something else."""
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"--{name.replace('_', '-')} {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        for name in ("max_steps", "block_size", "epochs"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, not {value}")
        if self.minutes is not None and self.minutes < 0:
            raise ValueError(f"--minutes must be positive (or 0: no time budget), not {self.minutes}")
        if self.judge < 0:
            raise ValueError(f"--judge must be 0 (skip) or a number of functions, not {self.judge}")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (5e-5 if self.method == FULL else 3e-4)

    def to_dict(self) -> dict:
        record = dataclasses.asdict(self)
        record["learning_rate"] = self.learning_rate
        return record

    def save(self, folder: Path) -> Path:
        return atomic_write(Path(folder) / CONFIG_FILE, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        """The configuration a run saved (`save`), checked as the command line checks its flags: a file
        that is damaged or holds a value of the wrong kind raises `TrainConfigError` saying so."""
        try:
            record = json.loads(read_regular_text(path))
        except (ValueError, RecursionError, UnituneError) as error:
            raise TrainConfigError(f"{path} is damaged ({type(error).__name__}); start the run over with --fresh") from None
        if not isinstance(record, dict):
            raise TrainConfigError(f"{path} does not hold a configuration; start the run over with --fresh")
        kinds = typing.get_type_hints(cls)
        values = {}
        for item in dataclasses.fields(cls):
            if item.name not in record:
                continue
            value = record[item.name]
            if not _is_a(value, kinds[item.name]):
                raise TrainConfigError(f"{path}: {item.name} is {value!r}, not a value it can have; start the run "
                                       "over with --fresh")
            values[item.name] = value
        config = cls(**values)
        try:
            config.check()
        except ValueError as error:
            raise TrainConfigError(f"{path}: {error}; start the run over with --fresh") from None
        return config


class TrainConfigError(UnituneError):
    exit_code = 2


def _is_a(value, kind) -> bool:
    """Whether a JSON value fits a field's annotation (`int`, `float`, `str`, `bool`, or one of them or None)."""
    options = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else (kind,)
    for option in options:
        if option is type(None) and value is None:
            return True
        if option is bool and isinstance(value, bool):
            return True
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return True
        if option is str and isinstance(value, str):
            return True
    return False


def help_of(name: str) -> str:
    for item in dataclasses.fields(TrainConfig):
        if item.name == name:
            return item.metadata.get("help", "")
    return ""
