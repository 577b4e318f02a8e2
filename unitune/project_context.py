"""The project block of a prompt: what of the project beyond the focal file the model is shown, so that
it calls what exists instead of inventing it. Two parts, both found with tree-sitter, no model:

- the signatures and docstrings of the project code the focal function uses (`unitune.python_symbols`,
  `unitune.java_symbols`), its own class's public API first, then the most used, at most
  `MAX_SYMBOLS` of them in `MAX_SYMBOLS_CHARS` characters;
- one or two of the project's existing tests nearest to it (`unitune.nearby_tests`), as an example of
  the project's fixtures, helpers and style; never, in training, the test that is the target.

`gather_project_context` finds them for inference and training alike; `unitune.prompt.build_prompt`
puts the rendered block before the focal code, as comments and code:

    # Signatures and docstrings of the project code that apply_discount uses:

    # shop/money.py
    def round_cents(value: Decimal) -> Decimal:
        \"\"\"Round to cents, half up.\"\"\"


    # An existing test, test_round_cents in tests/test_pricing.py:

    def test_round_cents():
        assert round_cents(Decimal("1.005")) == Decimal("1.01")


    # The code under test, shop/pricing.py:

A prompt over its budget tries the smaller blocks `shrunk` gives (the example test dropped first, then
definitions from the least used, then the whole block) before its focal context is reduced
(`unitune.request.fit_prompt`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from unitune.errors import UnituneError
from unitune.focal import Function
from unitune.java_symbols import java_symbols
from unitune.languages import JAVA, PYTHON
from unitune.nearby_tests import nearest_tests
from unitune.placement import TestLocation, locate_test_path
from unitune.project_code import MAX_SYMBOLS, MAX_SYMBOLS_CHARS, ExampleTest, ProjectSymbol, relative_label
from unitune.python_symbols import python_symbols
from unitune.source import SourceFile

#: The line that ends the block and introduces the focal code; fitting a training prompt looks for the
#: focal method after it (`unitune.fitting`).
CODE_UNDER_TEST = "The code under test"
_COMMENT = {PYTHON: "#", JAVA: "//"}


@dataclass(frozen=True)
class ProjectContext:
    """What of the project a prompt shows beside the focal file, in the order shown."""

    language: str
    focal_name: str  # qualified, as the block's first line names it
    focal_path: str  # relative to the project root
    symbols: tuple[ProjectSymbol, ...] = ()
    examples: tuple[ExampleTest, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.symbols and not self.examples

    def render(self) -> str:
        """The block, ending with the comment that introduces the focal code; "" when empty."""
        if self.empty:
            return ""
        mark = _COMMENT.get(self.language, "#")
        sections = []
        if self.symbols:
            by_file: dict[str, list[str]] = {}  # files in the order of their first, most used, definition
            for symbol in self.symbols:
                by_file.setdefault(symbol.path, []).append(symbol.code)
            entries = [f"{mark} {path}\n" + "\n\n".join(codes) for path, codes in by_file.items()]
            title = f"{mark} Signatures and docstrings of the project code that {self.focal_name} uses:"
            sections.append(title + "\n\n" + "\n\n".join(entries))
        for example in self.examples:
            sections.append(f"{mark} An existing test, {example.name} in {example.path}:\n\n{example.code.rstrip()}")
        sections.append(f"{mark} {CODE_UNDER_TEST}, {self.focal_path}:")
        return "\n\n\n".join(sections)

    def shrunk(self) -> list["ProjectContext"]:
        """Smaller blocks to try when the prompt is too long, largest first, the empty block last."""
        smaller = []
        current = self
        if current.examples:
            current = replace(current, examples=())
            smaller.append(current)
        count = len(current.symbols)
        while count > 1:
            count //= 2
            smaller.append(replace(current, symbols=current.symbols[:count]))
        if not self.empty:
            smaller.append(replace(self, symbols=(), examples=()))
        return smaller

    def describe(self) -> str:
        """What the block holds, for a note: `3 signatures and 1 existing test`."""
        parts = []
        if self.symbols:
            parts.append(f"{len(self.symbols)} definition{'s' if len(self.symbols) != 1 else ''}")
        if self.examples:
            parts.append(f"{len(self.examples)} existing test{'s' if len(self.examples) != 1 else ''}")
        return " and ".join(parts) or "nothing"


def gather_project_context(file: SourceFile, function: Function, project_root: Path, *,
                           location: TestLocation | None = None, location_text: str | None = None,
                           hidden_tests: Iterable[str] = ()) -> ProjectContext:
    """The project block for `function` of `file`. `location` is where its tests go (default: where
    placement puts them) and `location_text` that file's unsaved text in an editor; `hidden_tests`
    (source code) are never shown as the example."""
    root = Path(project_root).resolve()
    focal_path = relative_label(Path(file.path), root) if file.path is not None else "<source>"
    empty = ProjectContext(file.language, function.qualified_name, focal_path)
    if file.path is None:
        return empty
    try:
        found = python_symbols(file, function, root) if file.language == PYTHON else java_symbols(file, function, root)
        placed = location.path if location is not None else locate_test_path(file.path, root)[0]
        examples = nearest_tests(function, root, placed, location_text, hidden_tests)
    except (OSError, UnituneError):  # an unreadable corner of the project never stops a prompt
        return empty
    return replace(empty, symbols=_capped(found), examples=tuple(examples))


def _capped(symbols: list[ProjectSymbol]) -> tuple[ProjectSymbol, ...]:
    """At most `MAX_SYMBOLS` in `MAX_SYMBOLS_CHARS` characters, in rank order; one too long to fit
    is passed over for the next ones."""
    kept: list[ProjectSymbol] = []
    size = 0
    for symbol in symbols:
        if len(kept) == MAX_SYMBOLS:
            break
        if size + len(symbol.code) <= MAX_SYMBOLS_CHARS:
            kept.append(symbol)
            size += len(symbol.code)
    return tuple(kept)
