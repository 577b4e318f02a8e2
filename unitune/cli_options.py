"""Options the subcommands share, declared once: the source position (FILE, `--line`, `--column`) and
a flag for every setting, generated from the settings schema (`unitune.settings.Settings`), so a new
setting gets its flag, help and validation in every command that takes settings.

A setting's flag takes any value; the settings code judges it (`refuse_bad_flags`), so a bad flag and
a bad settings-file entry get the same message.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable
from typing import Any

from unitune.settings import CHOICES, KEYS, RANGES, Settings

#: What each setting does, for `--help` (the README's settings table says the same at more length).
SETTING_HELP: dict[str, str] = {
    "model": "base model: the built-in default's name, a Hugging Face id or a local folder",
    "adapter": "adapter name or folder; `none` for the bare model",
    "quantization": "load the base model quantized",
    "device": "where the model runs",
    "engine": ("what runs the model: auto picks llama.cpp on a CPU once it is built (`unitune engine install`), "
               "torch otherwise and for adapters llama.cpp cannot run"),
    "context": "how much of the code around the focal method the prompt holds",
    "project_context": ("show the model the signatures and docstrings of the project code the function uses and "
                        "an existing test near it"),
    "max_new_tokens": "longest test, in tokens",
    "candidates": "tests sampled per request; the ones that survive are delivered, best first",
    "validate": ("run: deliver only tests that pass 3 runs in the sandbox and add coverage or kill a mutant; "
                 "syntax: tests that parse, not run; none: as written"),
    "repair": ("with validate run, a failing assertion gets the observed value (observe), is removed (drop), or "
               "fails its test (none)"),
    "time_budget": "seconds after which no new round starts (retries, other arguments, mutants); the first test is always written and checked",
    "python": "the interpreter the project's tests run with",
    "test_dir": "where new test files go",
    "framework": "test framework",
    "trust_remote_code": "let a Hugging Face model run its own code",
    "server_url": ("generate through this OpenAI-compatible inference server (vLLM, llama.cpp's server) "
                   "instead of loading the model here; `model` still names the model, for its tokenizer"),
}

_METAVARS = {"model": "M", "adapter": "A", "python": "PATH", "test_dir": "DIR", "time_budget": "S", "quantization": "Q",
             "device": "D", "engine": "E", "context": "LEVEL", "validate": "V", "repair": "R", "framework": "F", "server_url": "URL"}

#: What an unset setting means, where it is not "detected".
_WHEN_UNSET = {"server_url": "default: none, the model runs here"}


def flag_of(key: str) -> str:
    return "--" + key.replace("_", "-")


def add_setting_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                      keys: Iterable[str] = KEYS) -> None:
    """One flag per setting in `keys`; an unset flag is None, so the settings files decide."""
    defaults = Settings()
    for key in keys:
        default = getattr(defaults, key)
        allowed = CHOICES.get(key)
        detail = f"{', '.join(allowed)}; " if allowed else ""
        if key in RANGES:
            detail += f"{RANGES[key][0]}-{RANGES[key][1]}; "
        shown = _WHEN_UNSET.get(key, "default: detected") if default is None else \
            f"default {str(default).lower() if isinstance(default, bool) else default}"
        help_text = f"{SETTING_HELP[key]} ({detail}setting `{key}`, {shown})"
        if isinstance(default, bool):  # `--name` and `--no-name`: either may be what the files do not want
            parser.add_argument(flag_of(key), dest=key, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        else:
            parser.add_argument(flag_of(key), dest=key, type=int if isinstance(default, int) else str, default=None,
                                metavar=_METAVARS.get(key, "N" if isinstance(default, int) else key.upper()),
                                help=help_text)


def setting_overrides(args: argparse.Namespace, keys: Iterable[str] = KEYS) -> dict[str, Any]:
    """The settings given as flags (those left unset are left to the settings files)."""
    return {key: getattr(args, key) for key in keys if getattr(args, key, None) is not None}


def add_position(parser: argparse.ArgumentParser, file_help: str = "a Python (.py) or Java (.java) source file") -> None:
    """FILE, `--line` and `--column`: a place in a source file."""
    parser.add_argument("file", metavar="FILE", help=file_help)
    parser.add_argument("--line", type=int, required=True, metavar="L", help="1-based line number")
    parser.add_argument("--column", type=int, metavar="C",
                        help="1-based column in characters (default: the first non-blank character of the line)")


#: Settings added after saved results first carried a stamp: stamped only when set, so that results
#: saved before them stay valid.
STAMPED_WHEN_SET = ("server_url",)
#: Settings that change how fast, not what: left out of the stamp.
NOT_STAMPED = ("engine",)


def settings_stamp(settings: Settings, ignored: Iterable[str] = ("model", "adapter", "test_dir")) -> str:
    """The settings that change what a run produces, as text: saved results carry it, and other
    settings mean other results."""
    skipped = set(ignored)
    return ",".join(f"{f.name}={getattr(settings, f.name)}" for f in dataclasses.fields(settings)
                    if f.name not in skipped and f.name not in NOT_STAMPED and not (f.name in STAMPED_WHEN_SET and getattr(settings, f.name) is None))
