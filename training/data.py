"""Training data: pairs (from `unitune mine`) to token ids, with the loss on the completion only.

An example longer than the block size is dropped, never truncated (a cut test teaches the model to
stop mid-test), and the drops are counted. Batches are padded on the right; padding and prompt tokens
get the label -100 so they add nothing to the loss.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from unitune.errors import UnituneError
from unitune.prompt import model_input

IGNORE_INDEX = -100
REQUIRED_KEYS = ("language", "prompt", "completion", "split", "focal_file", "test_file")


class DataError(UnituneError):
    exit_code = 2


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]


@dataclass
class TokenizedSplit:
    examples: list[Example] = field(default_factory=list)
    dropped: int = 0  # longer than the block size
    pairs: int = 0


def read_pairs(path: Path, language: str | None = None) -> list[dict]:
    """The pairs of a JSONL file written by `unitune mine` (one JSON object per line)."""
    pairs = []
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except OSError as error:
        raise DataError(f"{path}: cannot read pairs ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 JSONL file of pairs; write one with `unitune mine`") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            pair = json.loads(line)
        except ValueError:
            raise DataError(f"{path}:{number}: not JSON; a pairs file has one JSON object per line") from None
        missing = [key for key in REQUIRED_KEYS if not isinstance(pair, dict) or key not in pair]
        if missing:
            raise DataError(f"{path}:{number}: a pair needs {', '.join(missing)}; write pairs with `unitune mine`")
        _check_pair(pair, f"{path}:{number}")
        if language is None or pair["language"] == language:
            pairs.append(pair)
    return pairs


def _check_pair(pair: dict, where: str) -> None:
    """The values a pair must have, each with a message naming the line (not a traceback later)."""
    from unitune.languages import LANGUAGES
    from unitune.training.pairs import SPLITS

    for key in REQUIRED_KEYS:
        if not isinstance(pair[key], str):
            raise DataError(f"{where}: `{key}` must be a string, not {type(pair[key]).__name__}")
    if pair["language"] not in LANGUAGES:
        raise DataError(f"{where}: language {pair['language']!r} is not one unitune trains on ({', '.join(LANGUAGES)})")
    if pair["split"] not in SPLITS:
        raise DataError(f"{where}: split {pair['split']!r} is not one of {', '.join(SPLITS)}")


def tokenize_pairs(pairs: list[dict], tokenizer, block_size: int, reserved: int = 0) -> TokenizedSplit:
    """Prompt and completion are tokenized separately and joined (as at inference, where the prompt is
    tokenized alone and the model continues it); the prompt is given as inference gives it
    (`unitune.prompt.model_input`: the chat rendering for an instruct model); the completion ends with
    the end-of-text token.
    `reserved` tokens of the block are taken by virtual tokens (prompt tuning)."""
    split = TokenizedSplit(pairs=len(pairs))
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    limit = block_size - reserved
    for pair in pairs:
        text = model_input(tokenizer, pair["prompt"], pair.get("language", "python"))
        prompt = tokenizer(text, add_special_tokens=False)["input_ids"]
        completion = tokenizer(pair["completion"], add_special_tokens=False)["input_ids"] + eos
        if len(prompt) + len(completion) > limit:
            split.dropped += 1
            continue
        split.examples.append(Example(prompt + completion, [IGNORE_INDEX] * len(prompt) + completion))
    return split


def collate(examples: list[Example], pad_id: int):
    """A padded batch: input_ids, attention_mask, labels."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        n = len(example.input_ids)
        input_ids[row, :n] = torch.tensor(example.input_ids)
        labels[row, :n] = torch.tensor(example.labels)
        attention[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
