"""A parsed source file and the conversions between the positions people, editors and tree-sitter use.

Three coordinate systems meet here, and are converted only here:
- the command line: 1-based lines, columns in characters (code points), 1-based;
- the language server protocol: 0-based lines, columns in UTF-16 code units (or UTF-8 bytes / code
  points when negotiated);
- tree-sitter: byte offsets and (row, byte column) points.
"""

from __future__ import annotations

import re

import bisect
from dataclasses import dataclass, field
from pathlib import Path

from tree_sitter import Tree

from unitune.errors import BadFileError, BadPositionError
from unitune.languages import language_for_path, parser_for

#: Files larger than this are not parsed (generated or vendored code, not something to test by hand).
MAX_FILE_BYTES = 20 * 1024 * 1024

UTF8_BOM = b"\xef\xbb\xbf"

# Column units of the language server protocol's position encodings.
UTF16 = "utf-16"
UTF8 = "utf-8"
UTF32 = "utf-32"


def read_source_bytes(path: str | Path) -> bytes:
    """The bytes of a source file, or `BadFileError` with a message a user can act on: read as every file
    unitune did not write is (`unitune.files.read_regular`: regular files only, never blocking, capped)."""
    from unitune.files import UnreadableFileError, read_regular

    path = Path(path)
    if not path.exists():
        raise BadFileError(f"{path}: no such file")
    if path.is_dir():
        raise BadFileError(f"{path}: is a directory, not a source file")
    try:
        return read_regular(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise BadFileError(f"{path}: no such file") from None
    except UnreadableFileError as error:
        raise BadFileError(str(error)) from None


def decode_source(data: bytes, name: str = "<source>") -> str:
    """UTF-8 text of a source file; binary files and other encodings are refused."""
    if b"\x00" in data[:8192]:
        raise BadFileError(f"{name}: is a binary file, not source code")
    if data.startswith(UTF8_BOM):
        data = data[len(UTF8_BOM):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise BadFileError(
            f"{name}: not UTF-8 (byte 0x{data[error.start]:02x} on line {line}); save the file as UTF-8"
        ) from None
    if "\r" in text and "\n" not in text:
        # Old Mac line ends (CR only): read as lines, like editors and Python do. One byte for one,
        # so offsets are unchanged; `--write` writes CR line ends back (unitune.insertion).
        text = text.replace("\r", "\n")
    return text


def uses_cr_line_ends(data: bytes) -> bool:
    """Whether a file's lines end with a bare CR (and none with LF)."""
    return b"\r" in data and b"\n" not in data


@dataclass
class SourceFile:
    """The text of one file, its language and its syntax tree."""

    text: str
    language: str
    path: Path | None = None
    tree: Tree = field(init=False)
    data: bytes = field(init=False)
    _line_starts: list[int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.data = self.text.encode("utf-8")
        self._line_starts = _line_starts(self.data)
        self.tree = parser_for(self.language).parse(_for_parser(self.data))

    def edited(self, start: tuple[int, int], end: tuple[int, int], new_text: str, unit: str = UTF32) -> "SourceFile":
        """A new SourceFile with the text between 0-based positions `start` and `end` (columns in
        `unit`) replaced by `new_text`, re-parsed incrementally from this file's tree."""
        start_byte = self.offset(*start, unit=unit) if start[0] < self.line_count else len(self.data)
        end_byte = self.offset(*end, unit=unit) if end[0] < self.line_count else len(self.data)
        end_byte = max(start_byte, end_byte)
        inserted = new_text.encode("utf-8")
        data = self.data[:start_byte] + inserted + self.data[end_byte:]
        start_point = self._point(start_byte)
        old_end_point = self._point(end_byte)
        rows = inserted.count(b"\n")
        last_line = inserted.rsplit(b"\n", 1)[-1]
        new_end_point = (start_point[0] + rows, (start_point[1] if rows == 0 else 0) + len(last_line))
        tree = self.tree.copy()
        tree.edit(start_byte=start_byte, old_end_byte=end_byte, new_end_byte=start_byte + len(inserted),
                  start_point=start_point, old_end_point=old_end_point, new_end_point=new_end_point)
        edited = object.__new__(SourceFile)
        edited.text = data.decode("utf-8")
        edited.language = self.language
        edited.path = self.path
        edited.data = data
        edited._line_starts = _line_starts(data)
        edited.tree = parser_for(self.language).parse(_for_parser(data), tree)
        return edited

    def _point(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self._line_starts, offset) - 1
        return line, offset - self._line_starts[line]

    @classmethod
    def from_path(cls, path: str | Path) -> "SourceFile":
        """Read and parse a file; `BadFileError` for anything that is not a readable source file."""
        path = Path(path)
        data = read_source_bytes(path)  # a missing file or a directory says so before its extension
        language = language_for_path(path)
        text = decode_source(data, str(path))
        return cls(text, language, path)

    @property
    def name(self) -> str:
        return str(self.path) if self.path else "<source>"

    # -- lines -------------------------------------------------------------------------------
    @property
    def line_count(self) -> int:
        """Lines as an editor numbers them (a trailing newline opens one more, empty line)."""
        return len(self._line_starts)

    def line_bytes(self, line: int) -> bytes:
        """The bytes of 0-based `line`, without its line break."""
        start = self._line_starts[line]
        end = self._line_starts[line + 1] if line + 1 < len(self._line_starts) else len(self.data)
        return self.data[start:end].rstrip(b"\r\n")

    def line_text(self, line: int) -> str:
        return self.line_bytes(line).decode("utf-8")

    # -- positions -> byte offsets ---------------------------------------------------------
    def _check_line(self, line: int) -> None:
        if line < 0 or line >= self.line_count:
            raise BadPositionError(
                f"{self.name}: line {line + 1} is past the end of the file ({self.line_count} lines)"
            )

    def offset(self, line: int, column: int = 0, unit: str = UTF32) -> int:
        """Byte offset of a 0-based `line` and `column` counted in `unit` (code points by default).

        A column past the end of its line means the end of the line, as the protocol asks."""
        self._check_line(line)
        if column < 0:
            raise BadPositionError(f"{self.name}: column {column + 1} is before the start of the line")
        raw = self.line_bytes(line)
        start = self._line_starts[line]
        if unit == UTF8:
            return start + min(column, len(raw))
        text = raw.decode("utf-8")
        if unit == UTF32:
            return start + len(text[:column].encode("utf-8"))
        # UTF-16: characters outside the basic plane take two code units.
        units = 0
        for index, char in enumerate(text):
            if units >= column:
                return start + len(text[:index].encode("utf-8"))
            units += 2 if ord(char) > 0xFFFF else 1
        return start + len(raw)

    def position(self, offset: int, unit: str = UTF32) -> tuple[int, int]:
        """0-based (line, column in `unit`) of a byte offset."""
        offset = max(0, min(offset, len(self.data)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        prefix = self.data[self._line_starts[line]:offset]
        if unit == UTF8:
            return line, len(prefix)
        text = prefix.decode("utf-8", errors="ignore")
        if unit == UTF32:
            return line, len(text)
        return line, sum(2 if ord(char) > 0xFFFF else 1 for char in text)

    def node_text(self, node) -> str:
        return self.data[node.start_byte:node.end_byte].decode("utf-8", errors="replace")

    def bytes_text(self, start: int, end: int) -> str:
        return self.data[start:end].decode("utf-8", errors="replace")


_LINE_END = re.compile(rb"\r\n|\r|\n")
_LONE_CR = re.compile(rb"\r(?!\n)")


def _for_parser(data: bytes) -> bytes:
    """The bytes tree-sitter parses: a lone "\r" ends a line for editors, Python and Java, but not for
    tree-sitter's grammars, so it is given a "\n" in its place (one byte for one: every offset holds)."""
    return _LONE_CR.sub(b"\n", data) if b"\r" in data else data


def _line_starts(data: bytes) -> list[int]:
    """Where each line starts, as editors and the LSP count lines: a line ends at "\r\n", "\n" or a lone
    "\r" (a file with mixed line ends has all three)."""
    if b"\r" not in data:
        starts = [0]
        index = data.find(b"\n")
        while index != -1:
            starts.append(index + 1)
            index = data.find(b"\n", index + 1)
        return starts
    return [0] + [match.end() for match in _LINE_END.finditer(data)]


def cli_offset(source: SourceFile, line: int, column: int | None) -> int:
    """Byte offset of a command-line position (1-based line, 1-based code-point column).

    Without a column the position is the first non-blank character of the line, so `--line` alone
    points into the code on that line rather than at its indentation."""
    if line < 1:
        raise BadPositionError(f"{source.name}: line {line} is not a line number (lines start at 1)")
    if column is not None and column < 1:
        raise BadPositionError(f"{source.name}: column {column} is not a column number (columns start at 1)")
    if column is None:
        text = source.line_text(line - 1) if 0 <= line - 1 < source.line_count else ""
        column = len(text) - len(text.lstrip()) + 1
    elif 0 <= line - 1 < source.line_count and column - 1 > len(source.line_text(line - 1).rstrip("\r\n")):
        length = len(source.line_text(line - 1).rstrip("\r\n"))
        raise BadPositionError(f"{source.name}: column {column} is past the end of line {line} ({length} characters)")
    return source.offset(line - 1, column - 1)
