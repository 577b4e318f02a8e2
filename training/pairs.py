"""Mined pairs as records: the pair JSONL format of `unitune mine`, the summary of a run, splits and
de-duplication.

A pair is one JSON object per line with the keys DESIGN.md fixes (`language`, `test_file`,
`test_name`, `focal_file`, `focal_name`, `focal_qualified_name`, `test_code`, `focal_code`, `prompt`,
`completion`, `split`), then extras: `framework` (the one the prompt was built for), `match` (`name` or
`call`: the rule that paired them), `test_class`, `repo_commit` and `prompt_format`
(`unitune.prompt.PROMPT_FORMAT_VERSION`). Paths are relative to the repository, with `/`.
`test_name` is the test's qualified name (`TestAccount.test_deposit`, `CalcTest.testAdd`), which is
unique within its file.

Splits are assigned by focal file, so every pair of one module lands in the same split and
near-duplicate tests of one function never cross splits: a SHA-256 of the focal file's path picks
train (80%), valid (10%) or test (10%). With fewer than `MIN_FOCAL_FILES_TO_HOLD_OUT` focal files
every pair is train (a held-out split of a handful of files measures nothing); if hashing leaves
train empty, the focal file with the lowest hash goes to train. The same repository always splits
the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

TRAIN, VALID, TEST = "train", "valid", "test"
SPLITS = (TRAIN, VALID, TEST)
#: Percent of focal files in train and in valid; the rest is test.
TRAIN_PERCENT, VALID_PERCENT = 80, 10
MIN_FOCAL_FILES_TO_HOLD_OUT = 10

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

def _bucket(focal_file: str) -> int:
    return int(hashlib.sha256(focal_file.encode("utf-8")).hexdigest()[:12], 16)


def split_of(focal_file: str) -> str:
    """The split of a focal file (its path relative to the repository, with `/`) in a repository
    with enough focal files to hold some out."""
    percent = _bucket(focal_file) % 100
    if percent < TRAIN_PERCENT:
        return TRAIN
    return VALID if percent < TRAIN_PERCENT + VALID_PERCENT else TEST


def assign_splits(pairs: list[Pair]) -> None:
    """Set each pair's split from its focal file (see the module's docstring for the rule)."""
    files = sorted({pair.focal_file for pair in pairs})
    if len(files) < MIN_FOCAL_FILES_TO_HOLD_OUT:
        chosen = dict.fromkeys(files, TRAIN)
    else:
        chosen = {name: split_of(name) for name in files}
        if TRAIN not in chosen.values():
            chosen[min(files, key=_bucket)] = TRAIN
    for pair in pairs:
        pair.split = chosen[pair.focal_file]


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
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            for pair in pairs:
                out.write(json.dumps(pair.to_json(), ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
