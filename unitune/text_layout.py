"""Text helpers for placing tests in a file: one insertion of text (`TextInsertion`), re-indenting a
test to its new place, the file's indentation unit and line ending, and line/offset arithmetic
(0-based lines, offsets in code points)."""

from __future__ import annotations

from dataclasses import dataclass

from unitune.context import INDENT
from unitune.languages import JAVA, PYTHON, parser_for
from unitune.source import SourceFile
from unitune.syntax_walk import descendants


@dataclass(frozen=True)
class TextInsertion:
    """Text inserted at one point of a file; positions are 0-based, in code points."""

    offset: int  # into the existing text
    line: int
    character: int
    text: str


def reindent_test(source: str, language: str, indent: str, unit: str = INDENT) -> str:
    """One test's source re-based so its first line starts with `indent`, each level of the prompt's
    four-space indentation becoming `unit`. Lines inside multi-line string values keep their text."""
    lines = source.replace("\r\n", "\n").rstrip("\n").split("\n")
    base = leading_whitespace(lines[0])
    verbatim = _string_continuation_rows(lines, base, language)
    out = []
    for row, line in enumerate(lines):
        if row in verbatim:
            out.append(line)
            continue
        if not line.strip():
            out.append("")
            continue
        rest = line[len(base):] if line.startswith(base) else line.lstrip()
        leading = leading_whitespace(rest)
        if unit != INDENT and leading == " " * len(leading):
            leading = unit * (len(leading) // len(INDENT)) + " " * (len(leading) % len(INDENT))
        out.append(indent + leading + rest.lstrip())
    return "\n".join(out)


def _string_continuation_rows(lines: list[str], base: str, language: str) -> set[int]:
    """Rows that begin inside a multi-line string value (docstrings move with the code)."""
    dedented = "\n".join(line.removeprefix(base) for line in lines)
    shift = 0
    if language == JAVA:
        dedented, shift = "class UnituneWrapper {\n" + dedented + "\n}\n", 1
    root = parser_for(language).parse(dedented.encode("utf-8")).root_node
    strings = ("string", "string_literal")
    rows = set()
    for node in descendants(root, descend_into=lambda node: node.type not in strings):
        if node.type in strings and node.end_point.row > node.start_point.row:
            parent = node.parent
            if not (parent is not None and parent.type == "expression_statement" and parent.named_child_count == 1):
                rows.update(row - shift for row in range(node.start_point.row + 1, node.end_point.row + 1))
    return rows


def indent_unit(source: SourceFile) -> str:
    """One level of the file's indentation, from its first function with a multi-line body."""
    wanted = "function_definition" if source.language == PYTHON else "method_declaration"
    for node in descendants(source.tree.root_node, named_only=True):
        if node.type == wanted:
            body = node.child_by_field_name("body")
            statements = [child for child in body.named_children if child.start_point.row > node.start_point.row] if body is not None else []
            if statements:
                outer = leading_whitespace(source.line_text(node.start_point.row))
                inner = leading_whitespace(source.line_text(statements[0].start_point.row))
                if inner.startswith(outer) and len(inner) > len(outer):
                    return inner[len(outer):]
    return INDENT


def leading_whitespace(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def line_ending(text: str) -> str:
    crlf = text.count("\r\n")
    return "\r\n" if crlf and crlf >= text.count("\n") - crlf else "\n"


def blank_lines_to_end(text: str, blank_lines: int) -> str:
    """Newlines that end the file's last line and leave `blank_lines` blank lines after its code."""
    if not text.strip():
        return "" if not text or text.endswith("\n") else "\n"
    have = text[len(text.rstrip()):].count("\n")
    need = max(blank_lines + 1 - have, 0 if text.endswith("\n") else 1)
    return "\n" * need


def char_offset(text: str, row: int) -> int:
    """Code-point offset of the start of 0-based line `row` (the end of the text past the last line)."""
    offset = 0
    for _ in range(row):
        found = text.find("\n", offset)
        if found < 0:
            return len(text)
        offset = found + 1
    return offset


def line_after(text: str, row: int) -> tuple[int, bool]:
    """(offset of the line after `row`, whether `row` ends with a line break)."""
    start = char_offset(text, row)
    end = text.find("\n", start)
    return (end + 1, True) if end >= 0 else (len(text), False)


def row_column(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset)
    return line, offset - (text.rfind("\n", 0, offset) + 1)
