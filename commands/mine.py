"""The training subcommands of the `unitune` command line.

    unitune mine REPO [--out PAIRS.jsonl] [--language python|java] [--split auto|file|method|pair|none] [--json]

`unitune mine` writes the pairs of a repository as JSONL (by default to `REPO/.unitune/pairs.jsonl`,
beside the project's adapters in `REPO/.unitune/`) and prints what it scanned and found: files
scanned, tests found, pairs, unmatched tests (with the reason of each), by language and by split; or
all of it as one JSON object with `--json`. The file is written atomically, and only when there are
pairs. Exit 2 when REPO is not a directory, holds no source files or no tests; exit 1 when it has
tests but none could be paired.

`unitune.cli` calls `add_mine_parser(subparsers)` lazily, as it does every subcommand's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from unitune.languages import LANGUAGES
from unitune.progress_line import ProgressLine
from unitune.training.pairs import AUTO, MIN_GROUPS_TO_HOLD_OUT, SPLIT_MODES

DEFAULT_PAIRS_PATH = Path(".unitune") / "pairs.jsonl"  # relative to the mined repository
_UNMATCHED_SHOWN = 10


# -- unitune mine ----------------------------------------------------------------------------------

def add_mine_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "mine",
        help="find focal-method/test pairs in a repository and write them as training data (JSONL)",
        description=(
            "Pair each test of REPO with the function it tests (by name, else by the one function it calls) "
            "and write one training example per pair: the prompt unitune would build for that function and "
            "the developer's test as the completion. Files are git's tracked and untracked files (.gitignore "
            "respected) or, outside git, a walk that skips virtual environments, dependencies and build "
            "output. Exit 2 when REPO is not a directory or holds no tests, 1 when no test could be paired."
        ),
    )
    parser.add_argument("repo", metavar="REPO", type=Path, help="the repository (a directory) to mine")
    parser.add_argument(
        "--out", metavar="PAIRS.jsonl", type=Path,
        help=f"where to write the pairs (default: REPO/{DEFAULT_PAIRS_PATH.as_posix()})",
    )
    parser.add_argument("--language", choices=LANGUAGES, help="mine only this language (default: all)")
    parser.add_argument(
        "--split", choices=SPLIT_MODES, default=AUTO,
        help=("how pairs are held out for validation and test (80/10/10 of the pairs, groups taken in the order of a hash): by focal file, by focal method, "
              f"by pair, or none (all train); auto (default) takes the first of file, method, pair with at least "
              f"{MIN_GROUPS_TO_HOLD_OUT} groups"),
    )
    parser.add_argument(
        "--json", action="store_true",
        help="print one JSON object (summary, pairs file, unmatched tests) instead of the table",
    )
    parser.set_defaults(handler=_cmd_mine)


def _cmd_mine(args: argparse.Namespace) -> int:
    from unitune.training.mining import mine, require_pairs, write_pairs

    progress = _MiningProgress() if sys.stderr.isatty() and not args.json else None
    try:
        result = mine(args.repo, language=args.language, on_progress=progress, split=args.split)
    finally:
        if progress is not None:
            progress.clear()
    require_pairs(result, args.language)
    out = args.out if args.out is not None else Path(result.summary.repo) / DEFAULT_PAIRS_PATH
    written = write_pairs(result.pairs, out)
    if args.json:
        print(json.dumps({
            "summary": result.summary.to_json(),
            "pairs_file": str(written),
            "unmatched": [test.to_json() for test in result.unmatched],
            "unreadable": result.unreadable,
        }, ensure_ascii=False, indent=2))
    else:
        print(format_summary(result))
        print()
        print(f"wrote {len(result.pairs)} pairs to {written}")
    return 0


def format_summary(result) -> str:
    """The summary of a mining run as a small table, with the first unmatched tests and why."""
    s = result.summary
    commit = f" at {s.commit[:12]}" if s.commit else ""
    lines = [
        f"mined {s.repo}{commit} in {s.seconds:.2f} s",
        "",
        f"  files scanned  {s.files_scanned:>7}",
        f"  source files   {s.source_files:>7}",
        f"  test files     {s.test_files:>7}",
        f"  tests found    {s.tests_found:>7}",
        f"  pairs          {s.pairs:>7}" + (f"   ({s.duplicates} duplicates removed)" if s.duplicates else ""),
        f"  unmatched      {s.unmatched:>7}",
    ]
    if s.unreadable:
        lines.append(f"  unreadable     {s.unreadable:>7}   (not UTF-8 or cannot be read)")
    lines += ["", "  language   source files  test files    tests    pairs  unmatched"]
    for language, c in s.by_language.items():
        lines.append(f"  {language:<9}{c.source_files:>14}{c.test_files:>12}{c.tests:>9}{c.pairs:>9}{c.unmatched:>11}")
    lines += ["", f"  split      pairs   (by {s.split_by})" if s.split_by != "none" else "  split      pairs   (none held out)"]
    lines += [f"  {split:<9}{count:>7}" for split, count in s.by_split.items()]
    if s.split_note:
        lines.append(f"  {s.split_note}")
    if result.unmatched:
        lines += ["", "unmatched tests:"]
        for test in result.unmatched[:_UNMATCHED_SHOWN]:
            lines.append(f"  {test.test_file}::{test.test_name}: {test.reason}")
        if len(result.unmatched) > _UNMATCHED_SHOWN:
            lines.append(f"  ... and {len(result.unmatched) - _UNMATCHED_SHOWN} more (all of them with --json)")
    return "\n".join(lines)


class _MiningProgress:
    """The test files mined so far, as a bar on stderr."""

    def __init__(self) -> None:
        self._line = ProgressLine(unit="file")

    def __call__(self, done: int, total: int, current: str) -> None:
        self._line.update(done, total, "mining test files", current)

    def clear(self) -> None:
        self._line.close()


# -- further training subcommands ------------------------------------------------------------------
# `add_train_parser(subparsers)` and the other training subcommands are registered here, each an
# `add_<name>_parser` plus its `_cmd_<name>` handler, and listed in `unitune.cli.SUBCOMMANDS`.
