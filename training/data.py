"""Training data: pairs (from `unitune mine`) to token ids, with the loss on the completion only.

An example longer than the block size is fitted, not dropped (`over_length = "truncate"`, the default;
the study dropped them, `"drop"`): the focal context loses the lines farthest from the focal method
and the test file's header (`unitune.fitting`), and a test longer than half the block keeps its start,
cut at a line end and without the end-of-text token, so the model never learns to stop mid-test.
Both are counted. Batches are padded on the right; padding and prompt tokens get the label -100 so
they add nothing to the loss.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from unitune.errors import UnituneError
from unitune.files import UnreadableFileError, read_regular
from unitune.fitting import fit_code
from unitune.prompt import PROMPT_FORMAT_VERSION, model_input

IGNORE_INDEX = -100
TRUNCATE, DROP = "truncate", "drop"
OVER_LENGTH = (TRUNCATE, DROP)
#: Most bytes a pairs file may have (a million pairs of a large repository take well under this).
PAIRS_FILE_LIMIT = 4 * 1024 * 1024 * 1024
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
    dropped: int = 0  # longer than the block size and not fitted
    truncated: int = 0  # fitted into the block size (context lines left out, or the test's end cut)
    pairs: int = 0


def read_pairs(path: Path, language: str | None = None) -> list[dict]:
    """The pairs of a JSONL file written by `unitune mine` (one JSON object per line)."""
    pairs = []
    try:
        data = read_regular(path, PAIRS_FILE_LIMIT)
    except UnreadableFileError as error:
        raise DataError(f"{error}; give a pairs file written by `unitune mine`") from None
    except OSError as error:
        raise DataError(f"{path}: cannot read pairs ({error.strerror or error})") from None
    try:
        # JSON lines end at "\n" only: U+2028 and the like may stand inside a string (str.splitlines
        # would split there)
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a UTF-8 JSONL file of pairs; write one with `unitune mine`") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            pair = json.loads(line)
        except ValueError:
            raise DataError(f"{path}:{number}: not JSON; a pairs file has one JSON object per line") from None
        except RecursionError:
            raise DataError(f"{path}:{number}: nested too deeply to be a pair; write pairs with `unitune mine`") from None
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


def tokenize_pairs(pairs: list[dict], tokenizer, block_size: int, reserved: int = 0,
                   over_length: str = TRUNCATE) -> TokenizedSplit:
    """Prompt and completion are tokenized separately and joined (as at inference, where the prompt is
    tokenized alone and the model continues it); the prompt is given as inference gives it
    (`unitune.prompt.model_input`: the chat rendering for an instruct model); the completion ends with
    the end-of-text token.
    `reserved` tokens of the block are taken by virtual tokens (prompt tuning)."""
    split = TokenizedSplit(pairs=len(pairs))
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    limit = block_size - reserved
    for pair in pairs:
        language = pair.get("language", "python")
        prompt = _ids(tokenizer, model_input(tokenizer, pair["prompt"], language, format_version=prompt_format(pair)))
        completion = _ids(tokenizer, pair["completion"]) + eos
        if len(prompt) + len(completion) > limit:
            fitted = _fit(pair, tokenizer, limit, prompt, completion[:len(completion) - len(eos)]) \
                if over_length == TRUNCATE else None
            if fitted is None:
                split.dropped += 1
                continue
            prompt, completion = fitted
            split.truncated += 1
        split.examples.append(Example(prompt + completion, [IGNORE_INDEX] * len(prompt) + completion))
    return split


def prompt_format(pair: dict) -> int:
    """The prompt format a pair's prompt was built with (`unitune mine` records it; a pair without it
    is taken to be of the current format)."""
    return pair.get("prompt_format") or PROMPT_FORMAT_VERSION


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _fit(pair: dict, tokenizer, limit: int, prompt: list[int], body: list[int]) -> tuple[list[int], list[int]] | None:
    """(prompt, completion) ids of a too-long pair within `limit` tokens: the test keeps the room the
    prompt leaves, at least half the block (its end cut at a line, without end-of-text); the prompt
    then loses context lines, and when even the focal method does not fit, its far beginning (as
    inference cuts a prompt). None only for a prompt without the test's opening."""
    room = max(limit - len(prompt), limit // 2)
    completion = body + [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else list(body)
    if len(completion) > room:
        completion = _cut_at_line(tokenizer, body, room)
    if len(prompt) + len(completion) <= limit:
        return prompt, completion
    text, language = pair["prompt"], pair.get("language", "python")
    cut = text.rfind("\n\n")  # the test's opening follows the last blank line (`prompt.split_opening`)
    if cut < 0:
        return None
    code, opening = text[:cut], text[cut:]
    fitted = fit_code(code, language, pair.get("focal_qualified_name") or pair.get("focal_name", ""),
                      limit - len(completion),
                      count=lambda candidate: len(_ids(tokenizer, model_input(tokenizer, candidate + opening, language,
                                                                              format_version=prompt_format(pair)))),
                      line_cost=lambda line: len(_ids(tokenizer, line)))
    if fitted is None:
        # even the focal method does not fit what the test leaves: as at inference, the prompt loses its far
        # beginning and keeps its end (the focal method's last lines and the test's opening)
        budget = limit - len(completion)
        ids = _ids(tokenizer, model_input(tokenizer, text, language, max_tokens=budget, format_version=prompt_format(pair)))
        return ids[-budget:], completion
    return _ids(tokenizer, model_input(tokenizer, fitted + opening, language, format_version=prompt_format(pair))), completion


def _cut_at_line(tokenizer, body: list[int], room: int) -> list[int]:
    """The first `room` tokens of a test, ending at the last whole line within them when there is one."""
    head = tokenizer.decode(body[:room])
    end = head.rfind("\n")
    if end > 0:
        ids = _ids(tokenizer, head[: end + 1])
        if len(ids) <= room:
            return ids
    return body[:room]


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
