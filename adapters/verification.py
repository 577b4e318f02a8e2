"""Checking that a folder is a complete, loadable adapter: its card, PEFT's files or a full model's,
no pickle weights, whole safetensors files (the safetensors library refuses cut-off and malformed
ones)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from unitune.adapters import constants as c
from unitune.adapters.card import AdapterCard, read_card
from unitune.adapters.errors import AdapterError, AdapterNotFoundError, CorruptAdapterError
from unitune.files import UnreadableFileError, read_regular_text, require_regular


def verify_adapter(path: str | Path, require_card: bool = True) -> AdapterCard | None:
    """The card of the adapter in `path`, after checking the folder is complete and loadable: the
    card plus either PEFT's files or a full model's, no pickle weights, no truncated safetensors.

    With `require_card=False` a folder written by plain PEFT (no card) is accepted too, and None is
    returned for its card: such an adapter loads, but nothing says which base it was trained on."""
    folder = Path(path)
    if not folder.is_dir():
        raise AdapterNotFoundError(f"{folder} is not a folder; give an adapter name or folder")
    # present is enough here: what is not a regular file is refused, naming it, when it is read
    if not require_card and not (folder / c.CARD_FILE).exists():
        missing = [n for n in (c.ADAPTER_CONFIG_FILE, c.ADAPTER_WEIGHTS_FILE) if not (folder / n).exists()]
        if missing:
            raise CorruptAdapterError(f"{folder} is missing {', '.join(missing)}; it is not a PEFT adapter folder")
        refuse_pickles(folder)
        method = detect_method(folder)
        if method is None:
            raise CorruptAdapterError(f"{folder / c.ADAPTER_CONFIG_FILE}: unknown adapter type; unitune loads "
                                      "LoRA, (IA)³ and prompt tuning adapters")
        check_safetensors(folder / c.ADAPTER_WEIGHTS_FILE)
        return None
    if not (folder / c.CARD_FILE).exists():
        raise CorruptAdapterError(
            f"{folder} is missing {c.CARD_FILE}, so it is not a unitune adapter; save it through unitune to add one"
        )
    refuse_pickles(folder)
    try:
        card = read_card(folder)
    except AdapterError as error:
        raise CorruptAdapterError(str(error)) from None
    if card.method not in c.METHODS:
        raise CorruptAdapterError(
            f"{folder / c.CARD_FILE}: unknown method {card.method!r} (known: {', '.join(c.METHODS)}); "
            "a newer unitune may be needed"
        )
    if card.method == c.FULL:
        required = [c.MODEL_CONFIG_FILE]
        weights = sorted(folder.glob(f"*{c.MODEL_WEIGHTS_SUFFIX}"))
        missing = [name for name in required if not (folder / name).exists()]
        if not weights:
            missing.append(f"*{c.MODEL_WEIGHTS_SUFFIX}")
    else:
        required = [c.ADAPTER_CONFIG_FILE, c.ADAPTER_WEIGHTS_FILE]
        weights = [folder / c.ADAPTER_WEIGHTS_FILE]
        missing = [name for name in required if not (folder / name).exists()]
    if missing:
        raise CorruptAdapterError(f"{folder} is missing {', '.join(missing)}; re-save or re-import the adapter")
    if card.method != c.FULL:
        _check_peft_config(folder / c.ADAPTER_CONFIG_FILE, card.method)
    for weights_file in weights:
        check_safetensors(weights_file)
    return card


def check_safetensors(path: Path) -> None:
    """CorruptAdapterError unless `path` is a whole safetensors file (safetensors refuses a header that
    does not cover the file exactly, overlapping offsets, unknown dtypes and headers over 100 MB)."""
    from safetensors import SafetensorError, safe_open

    try:
        if require_regular(path).stat().st_size < 8:
            raise CorruptAdapterError(f"{path} is truncated or not a safetensors file; re-save or re-import the adapter")
        with safe_open(str(path), framework="numpy") as opened:
            opened.keys()
    except UnreadableFileError as error:
        raise CorruptAdapterError(f"{error}; re-save or re-import the adapter") from None
    except (SafetensorError, OSError) as error:
        raise CorruptAdapterError(f"{path} is truncated or damaged ({error}); re-save or re-import the adapter") from None


def _check_peft_config(path: Path, method: str) -> None:
    try:
        config = json.loads(read_regular_text(path))
    except UnreadableFileError as error:
        raise CorruptAdapterError(f"{error}; re-save or re-import the adapter") from None
    except (OSError, ValueError, RecursionError) as error:
        raise CorruptAdapterError(f"{path} is not valid JSON ({type(error).__name__}); re-save or re-import the adapter") from None
    peft_type = config.get("peft_type") if isinstance(config, dict) else None
    saved_as = c.PEFT_TYPE_TO_METHOD.get(str(peft_type).upper())
    if saved_as != method:
        raise CorruptAdapterError(
            f"{path} holds a {peft_type} adapter but {c.CARD_FILE} says {method!r}; re-save the adapter"
        )
    if method == c.LORA:
        _check_lora_config(path, config)


#: Largest LoRA rank an adapter may have (the study's is 16; the widest layer of a 70B model is 28,672).
MAX_LORA_RANK = 4096
#: How LoRA's matrices may have been initialised for its saved weights to be all there is to load: other
#: schemes (LoftQ, PiSSA, EVA, CorDA, OLoRA) change the base model's own weights or need data to start.
PLAIN_LORA_INITS = (True, False, "gaussian")


def _check_lora_config(path: Path, config: dict) -> None:
    """The parts of a LoRA config that make loading it fail or run away, refused before anything loads:
    a rank that is not a positive whole number up to `MAX_LORA_RANK`, a scaling that is not a number,
    an initialisation that needs more than the saved weights."""
    ranks = {"r": config.get("r"), **{f"rank_pattern[{k!r}]": v for k, v in (config.get("rank_pattern") or {}).items()}}
    for where, rank in ranks.items():
        if not isinstance(rank, int) or isinstance(rank, bool) or not 1 <= rank <= MAX_LORA_RANK:
            raise CorruptAdapterError(f"{path}: {where} is {rank!r}; a LoRA rank is a whole number from 1 to "
                                      f"{MAX_LORA_RANK}; re-save the adapter")
    alpha = config.get("lora_alpha", 8)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not abs(alpha) < float("inf"):
        raise CorruptAdapterError(f"{path}: lora_alpha is {alpha!r}, not a number; re-save the adapter")
    init = config.get("init_lora_weights", True)
    if init not in PLAIN_LORA_INITS:
        raise CorruptAdapterError(f"{path}: init_lora_weights is {init!r}, which changes the base model's weights or "
                                  "needs data to start; save the adapter converted to plain LoRA (PEFT's "
                                  "path_initial_model_for_weight_conversion) and import that")


#: An adapter folder is a handful of files (a full fine-tune a few dozen); past these it is not one.
MAX_ADAPTER_ENTRIES = 10_000
MAX_ADAPTER_DEPTH = 8


def adapter_files(folder: Path) -> list[Path]:
    """Every file and folder under `folder`, sorted, without following links: refused with a message
    past `MAX_ADAPTER_ENTRIES` or `MAX_ADAPTER_DEPTH` (a store or an `adapter` setting pointing at `/`
    would otherwise be walked in full)."""
    found: list[Path] = []
    pending = [(Path(folder), 0)]
    while pending:
        current, depth = pending.pop()
        try:
            children = list(os.scandir(current))
        except OSError:
            continue
        for child in children:
            path = Path(child.path)
            found.append(path)
            if len(found) > MAX_ADAPTER_ENTRIES:
                raise CorruptAdapterError(f"{folder} holds more than {MAX_ADAPTER_ENTRIES:,} files: it is not an adapter "
                                          "folder; give the folder the adapter was saved to")
            if child.is_dir(follow_symlinks=False):
                if depth + 1 >= MAX_ADAPTER_DEPTH:
                    raise CorruptAdapterError(f"{folder} has folders more than {MAX_ADAPTER_DEPTH} levels deep: it is not "
                                              "an adapter folder; give the folder the adapter was saved to")
                pending.append((path, depth + 1))
    return sorted(found)


def refuse_pickles(folder: Path) -> None:
    for path in adapter_files(folder):
        if path.suffix.lower() in c.PICKLE_SUFFIXES and not path.is_dir():
            raise CorruptAdapterError(
                f"{path}: pickle weights are never loaded; re-save with safetensors and delete this file"
            )


def detect_method(folder: Path) -> str | None:
    """The method a card-less folder's files show, for listing damaged adapters."""
    try:
        config = json.loads(read_regular_text(folder / c.ADAPTER_CONFIG_FILE))
        return c.PEFT_TYPE_TO_METHOD.get(str(config.get("peft_type")).upper())
    except (OSError, ValueError, AttributeError, RecursionError, UnreadableFileError):
        return c.FULL if (folder / c.MODEL_CONFIG_FILE).is_file() else None
