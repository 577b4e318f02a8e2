"""Mining throughput on a real code base everyone has: the running interpreter's standard library.

The standard library folder (`sysconfig.get_paths()["stdlib"]`) is mined as a repository: its
`test/` package (`test/test_x.py`, and the `test/test_x/` packages) against the modules beside it
(`x.py` or the package `x/`), plus the few packages that carry their own tests (`unittest/test/`,
`idlelib/idle_test/`, ...). Its `site-packages` is skipped like any virtual environment's.

    python -m unitune.training.stdlib      # prints files, seconds, files/s and pairs by split
"""

from __future__ import annotations

import sys
import sysconfig
import time
from pathlib import Path

from unitune.languages import PYTHON
from unitune.training.pairs import MiningSummary


def stdlib_path() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def mine_stdlib() -> tuple[float, int, int, MiningSummary]:
    """(seconds, files scanned, pairs, summary) of mining the standard library's Python tests."""
    from unitune.training.mining import mine

    started = time.perf_counter()
    result = mine(stdlib_path(), language=PYTHON)
    seconds = time.perf_counter() - started
    return seconds, result.summary.files_scanned, result.summary.pairs, result.summary


def main() -> int:
    seconds, files, pairs, summary = mine_stdlib()
    splits = ", ".join(f"{name} {count}" for name, count in summary.by_split.items())
    print(f"python {sys.version.split()[0]} standard library: {stdlib_path()}")
    print(f"files scanned {files}, python files {summary.source_files}, test files {summary.test_files}, "
          f"tests {summary.tests_found}")
    print(f"{seconds:.1f} s, {files / seconds:.0f} files/s")
    print(f"pairs {pairs} ({splits}), unmatched {summary.unmatched}, duplicates removed {summary.duplicates}, "
          f"unreadable {summary.unreadable}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
