"""Mined pairs as records: the pair JSONL format of `unitune mine`, the summary of a run, splits and
de-duplication.

A pair is one JSON object per line with these keys (`language`, `test_file`,
`test_name`, `focal_file`, `focal_name`, `focal_qualified_name`, `test_code`, `focal_code`, `prompt`,
`completion`, `split`), then extras: `framework` (the one the prompt was built for), `match` (`name`,
`call` or `checked`: the rule that paired them, `training.matching`), `test_class`, `repo_commit` and `prompt_format`
(`unitune.prompt.PROMPT_FORMAT_VERSION`). Paths are relative to the repository, with `/`.
`test_name` is the test's qualified name (`TestAccount.test_deposit`, `CalcTest.testAdd`), which is
unique within its file.

Splits (`--split`) keep near-duplicate tests of one function in one split. Groups are put in the order
of a SHA-256 of their keys and, in that order, fill train with 80% of the pairs, valid with the next 10%
and test with the rest (a group goes where the middle of its pairs falls), so the same repository
always splits the same way and a split holds its share of the pairs however unequal the groups are
(one method with forty tests and many with one would otherwise leave a split a single pair).
- `file`: groups are focal files (every pair of one module lands in one split);
- `method`: groups are focal methods (all tests of one method together), for repositories with few
  modules;
- `pair`: each pair on its own;
- `none`: every pair is train;
- `auto` (the default): `file` with at least `MIN_GROUPS_TO_HOLD_OUT` focal files, else `method` with as
  many focal methods, else `pair` with as many pairs, else `none`.
With at least three groups, valid and test are never left empty (the train groups whose hashes lie
nearest them move over) and train keeps at least one group. The summary says how it split.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from unitune.files import atomic_write

TRAIN, VALID, TEST = "train", "valid", "test"
SPLITS = (TRAIN, VALID, TEST)
#: Percent of groups in train and in valid; the rest is test.
TRAIN_PERCENT, VALID_PERCENT = 80, 10
MIN_GROUPS_TO_HOLD_OUT = 10
BY_FILE, BY_METHOD, BY_PAIR, NO_SPLIT, AUTO = "file", "method", "pair", "none", "auto"
SPLIT_MODES = (AUTO, BY_FILE, BY_METHOD, BY_PAIR, NO_SPLIT)

REQUIRED_KEYS = (
    "language", "test_file", "test_name", "focal_file", "focal_name", "focal_qualified_name",
    "test_code", "focal_code", "prompt", "completion", "split",
)


@dataclass
class Pair:
    """A focal function and a developer's test of it, with the training example they make."""

    language: str
    test_file: str
    test_name: str
    focal_file: str
    focal_name: str
    focal_qualified_name: str
    test_code: str
    focal_code: str
    prompt: str
    completion: str
    split: str = TRAIN
    framework: str = ""
    match: str = ""
    test_class: str | None = None
    repo_commit: str | None = None
    prompt_format: int = 0

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class UnmatchedTest:
    """A test no focal function was found for, and why."""

    language: str
    test_file: str
    test_name: str
    reason: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class LanguageSummary:
    source_files: int = 0
    test_files: int = 0  # files holding at least one test
    tests: int = 0
    pairs: int = 0
    unmatched: int = 0


@dataclass
class MiningSummary:
    """What a mining run scanned and found."""

    repo: str
    commit: str | None = None
    files_scanned: int = 0  # every file discovery kept, of any kind
    source_files: int = 0
    test_files: int = 0
    tests_found: int = 0
    pairs: int = 0  # after removing duplicates
    unmatched: int = 0
    duplicates: int = 0
    unreadable: int = 0  # source files that are not UTF-8 or cannot be read
    by_language: dict[str, LanguageSummary] = field(default_factory=dict)
    by_split: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SPLITS, 0))
    split_by: str = BY_FILE  # how the splits were assigned: file, method, pair or none
    split_note: str = ""  # why, when `auto` chose or a mode could not hold anything out
    seconds: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class MiningResult:
    pairs: list[Pair]
    unmatched: list[UnmatchedTest]
    summary: MiningSummary
    unreadable: dict[str, str] = field(default_factory=dict)  # relative path -> why


# -- splits and duplicates ------------------------------------------------------------------------

def _bucket(key: str) -> int:
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:12], 16)


_GROUP_KEYS = {
    BY_FILE: lambda pair: pair.focal_file,
    BY_METHOD: lambda pair: f"{pair.focal_file}::{pair.focal_qualified_name}",
    BY_PAIR: lambda pair: f"{pair.test_file}::{pair.test_name}",
}
_UNITS = {BY_FILE: "focal files", BY_METHOD: "focal methods", BY_PAIR: "pairs"}


def assign_splits(pairs: list[Pair], by: str = AUTO) -> tuple[str, str]:
    """Set each pair's split (see the module's docstring for the rule). Returns (how it split, a note
    saying why when `auto` chose or nothing could be held out)."""
    if by not in SPLIT_MODES:
        raise ValueError(f"split mode {by!r} is not one of {', '.join(SPLIT_MODES)}")
    note = ""
    if by == AUTO:
        counts = {mode: len({key(pair) for pair in pairs}) for mode, key in _GROUP_KEYS.items()}
        by = next((mode for mode in (BY_FILE, BY_METHOD, BY_PAIR) if counts[mode] >= MIN_GROUPS_TO_HOLD_OUT), NO_SPLIT)
        if by == NO_SPLIT:
            note = (f"{counts[BY_PAIR]} pairs are too few to hold any out (fewer than {MIN_GROUPS_TO_HOLD_OUT}): "
                    "all are train")
        elif by != BY_FILE:
            note = (f"{counts[BY_FILE]} focal files are too few to split by file (fewer than "
                    f"{MIN_GROUPS_TO_HOLD_OUT}): split by {by} over {counts[by]} {_UNITS[by]}")
    if by == NO_SPLIT:
        for pair in pairs:
            pair.split = TRAIN
        return by, note
    key = _GROUP_KEYS[by]
    sizes: dict[str, int] = {}
    for pair in pairs:
        sizes[key(pair)] = sizes.get(key(pair), 0) + 1
    groups = sorted(sizes, key=lambda name: (_bucket(name), name))
    chosen = _by_share_of_pairs(groups, sizes)
    if len(groups) >= 3:
        for wanted in (TEST, VALID):  # the train groups hashed nearest the held-out range move over
            train = [name for name in groups if chosen[name] == TRAIN]
            if wanted not in chosen.values() and len(train) > 1:
                chosen[train[-1]] = wanted
        if TRAIN not in chosen.values():
            chosen[groups[0]] = TRAIN
    else:
        chosen = dict.fromkeys(groups, TRAIN)
        note = f"{len(groups)} {_UNITS[by]} are too few to hold any out: all pairs are train"
    for pair in pairs:
        pair.split = chosen[key(pair)]
    return by, note


def _by_share_of_pairs(groups: list[str], sizes: dict[str, int]) -> dict[str, str]:
    """Each group's split: where the middle of its pairs falls in `groups`' order, train below
    `TRAIN_PERCENT` of all pairs, valid below `TRAIN_PERCENT + VALID_PERCENT`, test above."""
    total, before, chosen = sum(sizes.values()), 0, {}
    for name in groups:
        middle = 100 * (before + sizes[name] / 2) / total
        chosen[name] = TRAIN if middle < TRAIN_PERCENT else VALID if middle < TRAIN_PERCENT + VALID_PERCENT else TEST
        before += sizes[name]
    return chosen


def without_duplicates(pairs: list[Pair]) -> tuple[list[Pair], int]:
    """The pairs with the first of each identical (prompt, completion) kept, and the first of each
    (test, focal method) (a test found twice, e.g. through two class paths, is one pair), and how
    many were dropped."""
    seen: set[tuple[str, ...]] = set()
    kept = []
    for pair in pairs:
        keys = [("example", pair.prompt, pair.completion),
                ("pair", pair.test_file, pair.test_name, pair.focal_file, pair.focal_qualified_name)]
        if not any(key in seen for key in keys):
            seen.update(keys)
            kept.append(pair)
    return kept, len(pairs) - len(kept)


# -- writing --------------------------------------------------------------------------------------

def write_pairs(pairs: list[Pair], path: str | Path) -> Path:
    """Write `pairs` as JSONL to `path` atomically: a temporary file beside it, then a rename, so a
    crash or Ctrl-C never leaves half a file (nor replaces a good one with it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, "".join(json.dumps(pair.to_json(), ensure_ascii=False) + "\n" for pair in pairs))
    return path
