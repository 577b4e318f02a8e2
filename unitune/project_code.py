"""The pieces of the project a prompt may show beside the focal file: a definition the focal function
uses, as a signature stub (`ProjectSymbol`), and an existing test shown as an example
(`ExampleTest`); the caps that keep them small; and the parsed project files they are read from
(`read_project_file`, cached by path, size and modification time, since mining reads the same
modules and test files for every pair of a repository).

`unitune.project_context` gathers and renders them; `unitune.python_symbols`,
`unitune.java_symbols` and `unitune.nearby_tests` find them.
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass
from pathlib import Path

from unitune.errors import UnituneError
from unitune.source import SourceFile

#: At most this many definitions are shown, the most used first.
MAX_SYMBOLS = 8
#: ... in at most this many characters together, and each in at most `MAX_SYMBOL_CHARS`.
MAX_SYMBOLS_CHARS = 2400
MAX_SYMBOL_CHARS = 1000
#: A focal method's own class, whose public API the test works with, gets more room.
MAX_OWN_CLASS_CHARS = 1600
#: A docstring is shown by its first paragraph (a class's or function's) or its first sentence (a
#: method's in a class's API), cut at a word to these lengths.
MAX_DOC_CHARS = 300
MAX_DOC_LINE_CHARS = 120
#: A class's API lists at most this many methods (those the focal function calls first) and fields.
MAX_CLASS_METHODS = 12
MAX_CLASS_FIELDS = 10
#: One or two existing tests, each whole, together at most `MAX_EXAMPLE_LINES` lines and
#: `MAX_EXAMPLES_CHARS` characters: a longer test is not shown at all (half a test teaches nothing).
MAX_EXAMPLE_TESTS = 2
MAX_EXAMPLE_LINES = 30
MAX_EXAMPLES_CHARS = 1600
#: Files larger than this are not read for the project block (generated code, data in code).
MAX_FILE_BYTES = 512 * 1024


@dataclass(frozen=True)
class ProjectSymbol:
    """A definition of the project that the focal function uses, as prompt code."""

    path: str  # the file, relative to the project root, with `/`
    name: str
    code: str  # signatures and docstrings, without bodies
    uses: int  # how often the focal function names it
    first_use: int  # byte offset of its first use in the focal file (ties are broken by it)


@dataclass(frozen=True)
class ExampleTest:
    """An existing test of the project, shown whole as an example of its fixtures, helpers and style."""

    path: str  # relative to the project root, with `/`
    name: str  # qualified, e.g. `TestCart.test_total`
    code: str  # the test, re-indented to the left margin


def relative_label(path: Path, root: Path) -> str:
    """`path` relative to `root` with `/` (the path itself when it is elsewhere)."""
    for inside, base in ((path, root), (path.resolve(), root.resolve())):
        try:
            return inside.relative_to(base).as_posix()
        except ValueError:
            continue
    return path.as_posix()


def read_project_file(path: Path) -> SourceFile | None:
    """The parsed file at `path`, or None when it is missing, too large or not source code."""
    try:
        stat = path.stat()
    except OSError:
        return None
    if not path.is_file() or stat.st_size > MAX_FILE_BYTES:
        return None
    return _parsed(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=512)
def _parsed(path: str, mtime_ns: int, size: int) -> SourceFile | None:
    try:
        return SourceFile.from_path(path)
    except (UnituneError, OSError):
        return None


def same_test_code(a: str, b: str) -> bool:
    """Whether two tests are the same code under any name: a training target and an example may not
    be (the model would learn to copy the example)."""
    return shape_of_test(a) == shape_of_test(b)


def shape_of_test(code: str) -> str:
    """A test's code without its name and whitespace: what `same_test_code` compares."""
    renamed = re.sub(r"\b(def|void)\s+\w+", r"\1 _", code, count=1)
    return "".join(renamed.split())


# -- docstrings ----------------------------------------------------------------------------------

def first_paragraph(doc: str, limit: int = MAX_DOC_CHARS) -> str:
    """A docstring's first paragraph on one line, cut at a word to `limit` characters."""
    cleaned = inspect.cleandoc(doc)
    paragraph = re.split(r"\n\s*\n", cleaned, maxsplit=1)[0]
    return _cut(" ".join(paragraph.split()), limit)


def first_sentence(doc: str, limit: int = MAX_DOC_LINE_CHARS) -> str:
    """A docstring's first sentence on one line (its first line may stop mid-sentence), cut at a word
    to `limit` characters."""
    paragraph = first_paragraph(doc, len(doc) + 1)
    match = re.search(r"[.!?](\s|$)", paragraph)
    return _cut(paragraph[: match.end()].strip() if match else paragraph, limit)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[: limit - 3]
    return (head.rsplit(" ", 1)[0] if " " in head else head).rstrip(" ,;:") + "..."
