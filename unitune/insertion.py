"""Where generated tests go in their test file, as insertions that never replace what is there.

Owns the placement of new tests in a test file (re-indenting them: `unitune.text_layout`; the imports
they need: `unitune.needed_imports`) and writing the result without losing anything typed meanwhile.
`unitune generate --write` writes an `Insertion`; the language server turns the same `Insertion`
into a workspace edit.

Placement:
- pytest: appended at the end of the file, after two blank lines (before a trailing
  `if __name__ == "__main__":` block, so running the file as a script still sees them); tests that
  belong in a class (`test_class`) go at the end of that class, which is added when missing;
- unittest: at the end of the body of the class `test_class` (else the location's class, else the
  last `TestCase` class), at that class's method indentation; a new class when there is none;
- Java: before the closing brace of the test class (the one named `test_class`, else the file's
  first class).
A new file is the header (`unitune.prompt.header_for_test_file` for a new file: imports and, for unittest
and Java, the opening of the test class) with the tests inside the class it opens, and for Java the
class's closing brace.

Imports the tests use and the file lacks (the header's imports, `import pytest`, the JUnit `Test`
and assertion imports) go after the file's last import as a separate insertion. Existing lines are
kept byte for byte; inserted text uses the file's line ending (LF or CRLF).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tree_sitter import Node

from unitune.context import INDENT
from unitune.errors import BadFileError, UnituneError
from unitune.files import atomic_write
from unitune.focal import functions
from unitune.frameworks import JUNIT4, UNITTEST, parse_framework
from unitune.languages import JAVA, PYTHON
from unitune.placement import TestLocation
from unitune.syntax_walk import descendants
from unitune.source import UTF8_BOM, UTF32, SourceFile, decode_source, read_source_bytes, uses_cr_line_ends
from unitune.needed_imports import import_insertion
from unitune.text_layout import (
    TextInsertion, blank_lines_to_end, char_offset, indent_unit, leading_whitespace, line_after, line_ending,
    reindent_test, row_column,
)

_PY_CLASS_LINE = re.compile(r"^([ \t]*)class\s+\w+[^\n]*:[ \t]*$")


@dataclass(frozen=True)
class Insertion:
    """Everything that adds tests to one test file: the tests' insertion (`offset`, `line`,
    `character`, `text`) and the imports they need (`imports`), all against `original_text`."""

    path: Path
    creates_file: bool
    offset: int
    line: int
    character: int
    text: str
    imports: tuple[TextInsertion, ...] = ()
    original_text: str = ""  # the text the plan was made on ("" for a new file)
    line_ending: str = "\n"
    test_lines: tuple[tuple[str, int], ...] = ()  # (test name, 0-based line of its first line) after applying

    @property
    def tests_edit(self) -> TextInsertion:
        return TextInsertion(self.offset, self.line, self.character, self.text)

    @property
    def edits(self) -> list[TextInsertion]:
        """All insertions by offset (imports before the tests at the same offset); none overlap."""
        ordered = [(edit.offset, 0, edit) for edit in self.imports] + [(self.offset, 1, self.tests_edit)]
        return [edit for _, _, edit in sorted(ordered, key=lambda item: item[:2])]


# -- planning ------------------------------------------------------------------------------------

def plan_insertion(
    location: TestLocation,
    existing_text: str | None,
    tests: Sequence[tuple[str, str] | object],
    *,
    language: str,
    framework: str,
    header: str,
    test_class: str | None = None,
) -> Insertion:
    """How to add `tests` ((name, source) pairs or objects with `name` and `source`, such as
    generated tests; sources indented as the prompt indents them) to the test file at `location`,
    whose current text is `existing_text` (None: the file does not exist yet).

    `header` is what a new test file starts with (`header_for_test_file` without an existing file);
    `test_class` is the class the tests belong in (`Prompt.test_class`; default: the location's)."""
    framework = parse_framework(framework, language)
    if not tests:
        raise UnituneError("no tests to insert")
    if existing_text is None and location.exists:
        raise UnituneError(f"{location.path}: the test file exists; read it before planning where tests go")
    tests = [(name, source.replace("\r\n", "\n")) for name, source in map(_name_and_source, tests)]
    in_class = language == JAVA or framework == UNITTEST or test_class is not None
    class_name = (test_class or location.test_class_name or _default_class(language, location)) if in_class else None
    text = existing_text or ""
    eol = line_ending(text)
    if not text.strip():
        return _plan_new_content(location, text, tests, language, framework, header, class_name, eol)
    source = SourceFile(text, language)
    unit = indent_unit(source)
    if language == PYTHON:
        spot = _python_spot(source, text, framework, class_name, unit, location)
    else:
        spot = _java_spot(source, text, class_name, unit, header, framework, location)
    block, starts = _tests_block(tests, language, spot, unit)
    imports = import_insertion(source, text, block, language, framework, header, eol)
    return _insertion(location, text, spot.offset, block, starts, [imports] if imports else [], eol, creates=False)


def _name_and_source(test) -> tuple[str, str]:
    if hasattr(test, "name") and hasattr(test, "source"):
        return test.name, test.source
    name, source = test
    return name, source


@dataclass(frozen=True)
class _Spot:
    """Where the tests go and what surrounds them (LF line endings; converted at the end)."""

    offset: int  # code points into the existing text
    indent: str  # of each test's first line
    before: str  # text before the first test (blank lines; a new class's header)
    separator: str  # between tests
    after: str  # after the last test


def _plan_new_content(location, text, tests, language, framework, header, class_name, eol) -> Insertion:
    """A new (or blank) test file: the header, the tests in the class it opens, imports it lacks."""
    header = header.replace("\r\n", "\n").strip("\n")
    if language == PYTHON:
        class_line = _PY_CLASS_LINE.match(header.rsplit("\n", 1)[-1]) if header else None
        if class_line is None and class_name is not None:
            base = "(unittest.TestCase)" if framework == UNITTEST else ""
            header = (header + "\n\n\n" if header else "") + f"class {class_name}{base}:"
            class_line = _PY_CLASS_LINE.match(header.rsplit("\n", 1)[-1])
        if class_line is not None:
            spot = _Spot(0, class_line.group(1) + INDENT, header + "\n", "\n\n", "\n")
        else:
            spot = _Spot(0, "", header + "\n\n\n" if header else "", "\n\n\n", "\n")
    else:
        if not header.rstrip().endswith("{"):
            header = (header + "\n\n" if header else "") + _java_class_line(class_name, framework)
        closing_indent = leading_whitespace(header.rsplit("\n", 1)[-1])
        spot = _Spot(0, closing_indent + INDENT, header + "\n", "\n\n", "\n" + closing_indent + "}\n")
    block, starts = _tests_block(tests, language, spot, INDENT)
    content = block
    content_file = SourceFile(content, language)
    # The whole content counts as using imports: a class the header lacked was added to it.
    imports = import_insertion(content_file, content, content, language, framework, header, "\n")
    if imports is not None:
        content = content[: imports.offset] + imports.text + content[imports.offset:]
        starts = [(name, start + len(imports.text) if start >= imports.offset else start) for name, start in starts]
    offset = len(text)
    lead = "" if not text or text.endswith("\n") else "\n"  # a blank file's last line is ended first
    starts = [(name, start + len(lead)) for name, start in starts]
    return _insertion(location, text, offset, lead + content, starts, [], eol, creates=not location.exists and not text)


def _insertion(location, text, offset, block, starts, imports, eol, *, creates) -> Insertion:
    """The `Insertion`, with line endings converted and each test's line in the resulting text."""
    line, character = row_column(text, offset)
    converted_imports = tuple(
        TextInsertion(edit.offset, edit.line, edit.character, edit.text.replace("\n", eol)) for edit in imports
    )
    shift = sum(edit.text.count("\n") for edit in imports if edit.offset <= offset)
    test_lines = tuple((name, line + shift + block[:start].count("\n")) for name, start in starts)
    return Insertion(
        path=location.path, creates_file=creates, offset=offset, line=line, character=character,
        text=block.replace("\n", eol), imports=converted_imports, original_text=text, line_ending=eol,
        test_lines=test_lines,
    )


def _tests_block(tests, language, spot: _Spot, unit: str) -> tuple[str, list[tuple[str, int]]]:
    """The inserted text and where in it each test starts."""
    pieces, starts, cursor = [spot.before], [], len(spot.before)
    for index, (name, source) in enumerate(tests):
        if index:
            pieces.append(spot.separator)
            cursor += len(spot.separator)
        body = reindent_test(source, language, spot.indent, unit)
        starts.append((name, cursor))
        pieces.append(body)
        cursor += len(body)
    pieces.append(spot.after)
    return "".join(pieces), starts


# -- where: Python -------------------------------------------------------------------------------

def _python_spot(source: SourceFile, text: str, framework, class_name, unit, location) -> _Spot:
    if class_name is None:
        return _python_module_end(source, text, "", "\n\n\n")
    node = _python_test_class(source, class_name, framework)
    if node is None:
        base = "(unittest.TestCase)" if framework == UNITTEST else ""
        class_name = _unshadowing_name(source, class_name)
        return _python_module_end(source, text, f"class {class_name}{base}:\n", "\n\n", indent=unit)
    body = node.child_by_field_name("body")
    if body is None or body.start_point.row == node.start_point.row:
        raise UnituneError(f"{location.path}: class {class_name} is written on one line; give it a body of its own lines first")
    first = next((child for child in body.named_children if child.type != "comment"), body.named_children[0])
    member_indent = leading_whitespace(source.line_text(first.start_point.row))
    offset, ended = line_after(text, body.end_point.row)
    return _Spot(offset, member_indent, ("" if ended else "\n") + "\n", "\n\n", "\n")


def _unshadowing_name(source: SourceFile, class_name: str) -> str:
    """`class_name` for a new module-level class, unless the file defines that name already somewhere not
    at its top level (inside `if`, `try`, ...): a second class of the name would shadow the first, and
    pytest would silently stop collecting its tests. Then the first of `class_name`2, 3, ... that is free."""
    defined = {source.node_text(node.child_by_field_name("name"))
               for node in descendants(source.tree.root_node, named_only=True)
               if node.type in ("class_definition", "function_definition") and node.child_by_field_name("name")}
    if class_name not in defined:
        return class_name
    return next(f"{class_name}{number}" for number in range(2, len(defined) + 3) if f"{class_name}{number}" not in defined)


def _python_test_class(source: SourceFile, class_name: str, framework: str) -> Node | None:
    """The top-level class named `class_name`; for unittest, else the last `TestCase` class."""
    classes = []
    for node in source.tree.root_node.named_children:
        definition = node.child_by_field_name("definition") if node.type == "decorated_definition" else node
        if definition is not None and definition.type == "class_definition":
            classes.append(definition)
    for node in classes:
        if source.node_text(node.child_by_field_name("name")) == class_name:
            return node
    if framework == UNITTEST:
        for node in reversed(classes):
            bases = node.child_by_field_name("superclasses")
            if bases is not None and "TestCase" in source.node_text(bases):
                return node
    return None


def _python_module_end(source: SourceFile, text: str, class_header: str, separator: str, indent: str = "") -> _Spot:
    """The end of the module, two blank lines after its code, or before a closing `__main__` block."""
    statements = [node for node in source.tree.root_node.named_children if node.type != "comment"]
    last = statements[-1] if statements else None
    if last is not None and last.type == "if_statement" and "__name__" in source.node_text(last.child_by_field_name("condition")):
        offset = char_offset(text, last.start_point.row)
        return _Spot(offset, indent, class_header, separator, "\n\n\n")
    return _Spot(len(text), indent, blank_lines_to_end(text, 2) + class_header, separator, "\n")


# -- where: Java ---------------------------------------------------------------------------------

def _java_spot(source: SourceFile, text: str, class_name, unit, header, framework, location) -> _Spot:
    classes = [node for node in source.tree.root_node.named_children if node.type == "class_declaration"]
    node = next((c for c in classes if source.node_text(c.child_by_field_name("name")) == class_name), None)
    node = node or (classes[0] if classes else None)
    if node is None:
        class_line = header.strip().rsplit("\n", 1)[-1] if header.strip().endswith("{") else None
        opening = (class_line or _java_class_line(class_name, framework)).strip()
        return _Spot(len(text), unit, blank_lines_to_end(text, 1) + opening + "\n", "\n\n", "\n}\n")
    body = node.child_by_field_name("body")
    closing = body.children[-1] if body is not None and body.children else None
    if closing is None or closing.type != "}" or closing.is_missing:
        name = source.node_text(node.child_by_field_name("name"))
        raise UnituneError(f"{location.path}: class {name} has no closing brace; fix the file before adding tests")
    class_indent = leading_whitespace(source.line_text(node.start_point.row))
    members = [child for child in body.named_children if child.start_point.row > body.start_point.row]
    member_indent = leading_whitespace(source.line_text(members[0].start_point.row)) if members else class_indent + unit
    row = closing.start_point.row
    line = source.line_text(row)
    brace_column = source.position(closing.start_byte, UTF32)[1]
    if not line[:brace_column].strip():
        previous = source.line_text(row - 1).strip() if row > 0 else ""
        blank = "\n" if previous and not previous.endswith("{") else ""
        return _Spot(char_offset(text, row), member_indent, blank, "\n\n", "\n")
    # Code before the brace on its line: the tests go between, the brace moves to a line of its own.
    offset = char_offset(text, row) + brace_column
    blank = "" if line[:brace_column].rstrip().endswith("{") else "\n"
    return _Spot(offset, member_indent, "\n" + blank, "\n\n", "\n" + class_indent)


def _java_class_line(class_name: str | None, framework: str) -> str:
    return ("public " if framework == JUNIT4 else "") + f"class {class_name or 'UnituneTest'} {{"


def _default_class(language: str, location: TestLocation) -> str:
    stem = location.path.stem
    if language == JAVA:
        return stem
    return "Test" + "".join(part[:1].upper() + part[1:] for part in re.sub(r"^test_|_test$", "", stem).split("_"))


# -- applying and writing ------------------------------------------------------------------------

def apply(existing_text: str | None, insertion: Insertion) -> str:
    """The text after `insertion`; `existing_text` must be the text it was planned on."""
    text = existing_text or ""
    if text != insertion.original_text:
        raise UnituneError(f"{insertion.path}: the text changed since the tests were placed; generate again")
    pieces, cursor = [], 0
    for edit in insertion.edits:
        pieces += [text[cursor:edit.offset], edit.text]
        cursor = edit.offset
    pieces.append(text[cursor:])
    return "".join(pieces)


def write_insertion(insertion: Insertion) -> Path:
    """Write `insertion` to its file (folders and file created as needed) atomically, and return
    the path. Refuses with `UnituneError`, writing nothing, when the file on disk is no longer the
    text the insertion was planned on (something was saved meanwhile)."""
    path = insertion.path
    target = path.resolve() if path.is_symlink() else path
    bom = b""
    if target.exists():
        data = read_source_bytes(target)
        bom = UTF8_BOM if data.startswith(UTF8_BOM) else b""
        current = decode_source(data, str(path))
    elif insertion.creates_file:
        current = ""
    else:
        raise UnituneError(f"{path}: the test file was removed since the tests were placed; nothing was written")
    if current != insertion.original_text:
        raise UnituneError(f"{path}: the file changed on disk since the tests were placed; nothing was written (generate again)")
    # root may write anything: the mode bits say what the user meant
    if target.exists() and (not os.access(target, os.W_OK) or not os.stat(target).st_mode & 0o222):
        raise BadFileError(f"{path}: the test file is read-only; nothing was written (make it writable, or add "
                           "the tests by hand from `unitune generate` without --write)")
    new_text = apply(current, insertion)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadFileError(f"{target.parent}: cannot create the folder ({error.strerror or error})") from None
    if target.exists() and uses_cr_line_ends(data):
        new_text = new_text.replace("\n", "\r")  # the file's own line ends, as it was read (CR only)
    _atomic_write(target, bom + new_text.encode("utf-8"))
    return path


def _atomic_write(path: Path, data: bytes) -> None:
    try:
        atomic_write(path, data)
    except OSError as error:
        raise BadFileError(f"{path}: cannot write ({error.strerror or error})") from None


def existing_test_names(text: str | None, language: str) -> frozenset[str]:
    """The names of the tests and other functions in a test file's text (names new tests avoid)."""
    if not text:
        return frozenset()
    return frozenset(function.name for function in functions(SourceFile(text, language)))

