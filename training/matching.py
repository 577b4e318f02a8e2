"""What the per-language pairing rules share: the outcome of matching one test, and a cache of parsed files.

A test is matched to its focal function by one of three rules, tried in order:
- `NAME`: the test is named after the function (the language module says how names compare);
- `CALL`: the test calls exactly one candidate function (fixtures, helpers and other code of test
  files never count as candidates);
- `CHECKED` (Python): the test calls several, and checks the result of exactly one of them (the others
  build its input: `deps = resolve(Depends(f))` then `assert deps[...]`).
When neither gives exactly one function the test stays unmatched, with a reason a person can act on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from unitune.errors import UnituneError
from unitune.focal import Function, functions
from unitune.source import SourceFile

NAME = "name"
CALL = "call"
CHECKED = "checked"


@dataclass(frozen=True)
class Match:
    """The focal function of a test and the rule that found it."""

    focal_path: Path
    function: Function
    rule: str  # NAME, CALL or CHECKED


@dataclass(frozen=True)
class NoMatch:
    """Why a test has no focal function."""

    reason: str


@dataclass
class ParsedFiles:
    """Source files parsed once per mining run, with their testable functions.

    A file that cannot be read as source (not UTF-8, unreadable) is remembered with the reason, so it is
    reported once and never retried."""

    _files: dict[Path, SourceFile | None] = field(default_factory=dict)
    _functions: dict[Path, list[Function]] = field(default_factory=dict)
    unreadable: dict[Path, str] = field(default_factory=dict)

    def get(self, path: Path) -> SourceFile | None:
        if path not in self._files:
            try:
                self._files[path] = SourceFile.from_path(path)
            except UnituneError as error:
                self._files[path] = None
                self.unreadable[path] = str(error)
        return self._files[path]

    def functions(self, path: Path) -> list[Function]:
        """The testable functions of `path` (none when it cannot be read)."""
        if path not in self._functions:
            file = self.get(path)
            self._functions[path] = functions(file) if file is not None else []
        return self._functions[path]


def best_scored(scored: list[tuple[tuple, Function]]) -> list[Function]:
    """The functions with the highest score (ties kept, in document order)."""
    if not scored:
        return []
    top = max(score for score, _ in scored)
    return [function for score, function in scored if score == top]


def describe(functions_: list[Function]) -> str:
    """`A.f, B.f` for a reason message (at most five names)."""
    names = list(dict.fromkeys(f.qualified_name for f in functions_))
    shown = ", ".join(names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")
