"""Where generated tests go in their test file, as insertions that never replace what is there.

Owns the placement of new tests in a test file, re-indenting them to fit, the imports they need,
and writing the result without losing anything typed meanwhile. `unitune generate --write` writes
an `Insertion`; the language server turns the same `Insertion` into a workspace edit.

Placement:
- pytest: appended at the end of the file, after two blank lines (before a trailing
  `if __name__ == "__main__":` block, so running the file as a script still sees them); tests that
  belong in a class (`test_class`) go at the end of that class, which is added when missing;
- unittest: at the end of the body of the class `test_class` (else the location's class, else the
  last `TestCase` class), at that class's method indentation; a new class when there is none;
- Java: before the closing brace of the test class (the one named `test_class`, else the file's
  first class).
A new file is the header (`unitune.prompt.test_file_header` for a new file: imports and, for unittest
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

from unitune.context import INDENT, module_imports
from unitune.errors import BadFileError, UnituneError
from unitune.files import atomic_write
from unitune.focal import functions
from unitune.frameworks import JUNIT4, JUNIT5, PYTEST, UNITTEST, parse_framework
from unitune.languages import JAVA, PYTHON, parser_for
from unitune.placement import TestLocation
from unitune.source import UTF8_BOM, UTF32, SourceFile, decode_source, read_source_bytes, uses_cr_line_ends

# The imports each framework's tests rely on, should the header not bring them.
_FRAMEWORK_IMPORTS = {
    PYTEST: ("import pytest",),
    UNITTEST: ("import unittest", "import pytest"),
    JUNIT5: ("import org.junit.jupiter.api.Test;", "import static org.junit.jupiter.api.Assertions.*;"),
    JUNIT4: ("import org.junit.Test;", "import static org.junit.Assert.*;"),
}
_PY_IMPORT_NODES = frozenset({"import_statement", "import_from_statement", "future_import_statement"})
_PY_DEFINITIONS = frozenset({"function_definition", "class_definition", "decorated_definition"})
_PY_CLASS_LINE = re.compile(r"^([ \t]*)class\s+\w+[^\n]*:[ \t]*$")
_JAVA_ASSERT_CALL = re.compile(r"(?<![\w.])(assert[A-Z]\w*|fail)\s*\(")


@dataclass(frozen=True)
class TextInsertion:
    """Text inserted at one point of a file; positions are 0-based, in code points."""

    offset: int  # into the existing text
    line: int
    character: int
    text: str


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

    `header` is what a new test file starts with (`test_file_header` without an existing file);
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
    eol = _line_ending(text)
    if not text.strip():
        return _plan_new_content(location, text, tests, language, framework, header, class_name, eol)
    source = SourceFile(text, language)
    unit = _indent_unit(source)
    if language == PYTHON:
        spot = _python_spot(source, text, framework, class_name, unit, location)
    else:
        spot = _java_spot(source, text, class_name, unit, header, framework, location)
    block, starts = _tests_block(tests, language, spot, unit)
    imports = _import_insertion(source, text, block, language, framework, header, eol)
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
        closing_indent = _leading_whitespace(header.rsplit("\n", 1)[-1])
        spot = _Spot(0, closing_indent + INDENT, header + "\n", "\n\n", "\n" + closing_indent + "}\n")
    block, starts = _tests_block(tests, language, spot, INDENT)
    content = block
    content_file = SourceFile(content, language)
    # The whole content counts as using imports: a class the header lacked was added to it.
    imports = _import_insertion(content_file, content, content, language, framework, header, "\n")
    if imports is not None:
        content = content[: imports.offset] + imports.text + content[imports.offset:]
        starts = [(name, start + len(imports.text) if start >= imports.offset else start) for name, start in starts]
    offset = len(text)
    lead = "" if not text or text.endswith("\n") else "\n"  # a blank file's last line is ended first
    starts = [(name, start + len(lead)) for name, start in starts]
    return _insertion(location, text, offset, lead + content, starts, [], eol, creates=not location.exists and not text)


def _insertion(location, text, offset, block, starts, imports, eol, *, creates) -> Insertion:
    """The `Insertion`, with line endings converted and each test's line in the resulting text."""
    line, character = _position(text, offset)
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
        return _python_module_end(source, text, f"class {class_name}{base}:\n", "\n\n", indent=unit)
    body = node.child_by_field_name("body")
    if body is None or body.start_point.row == node.start_point.row:
        raise UnituneError(f"{location.path}: class {class_name} is written on one line; give it a body of its own lines first")
    first = next((child for child in body.named_children if child.type != "comment"), body.named_children[0])
    member_indent = _leading_whitespace(source.line_text(first.start_point.row))
    offset, ended = _line_after(text, body.end_point.row)
    return _Spot(offset, member_indent, ("" if ended else "\n") + "\n", "\n\n", "\n")


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
        offset = _char_offset(text, last.start_point.row)
        return _Spot(offset, indent, class_header, separator, "\n\n\n")
    return _Spot(len(text), indent, _blank_lines_to_end(text, 2) + class_header, separator, "\n")


# -- where: Java ---------------------------------------------------------------------------------

def _java_spot(source: SourceFile, text: str, class_name, unit, header, framework, location) -> _Spot:
    classes = [node for node in source.tree.root_node.named_children if node.type == "class_declaration"]
    node = next((c for c in classes if source.node_text(c.child_by_field_name("name")) == class_name), None)
    node = node or (classes[0] if classes else None)
    if node is None:
        class_line = header.strip().rsplit("\n", 1)[-1] if header.strip().endswith("{") else None
        opening = (class_line or _java_class_line(class_name, framework)).strip()
        return _Spot(len(text), unit, _blank_lines_to_end(text, 1) + opening + "\n", "\n\n", "\n}\n")
    body = node.child_by_field_name("body")
    closing = body.children[-1] if body is not None and body.children else None
    if closing is None or closing.type != "}" or closing.is_missing:
        name = source.node_text(node.child_by_field_name("name"))
        raise UnituneError(f"{location.path}: class {name} has no closing brace; fix the file before adding tests")
    class_indent = _leading_whitespace(source.line_text(node.start_point.row))
    members = [child for child in body.named_children if child.start_point.row > body.start_point.row]
    member_indent = _leading_whitespace(source.line_text(members[0].start_point.row)) if members else class_indent + unit
    row = closing.start_point.row
    line = source.line_text(row)
    brace_column = source.position(closing.start_byte, UTF32)[1]
    if not line[:brace_column].strip():
        previous = source.line_text(row - 1).strip() if row > 0 else ""
        blank = "\n" if previous and not previous.endswith("{") else ""
        return _Spot(_char_offset(text, row), member_indent, blank, "\n\n", "\n")
    # Code before the brace on its line: the tests go between, the brace moves to a line of its own.
    offset = _char_offset(text, row) + brace_column
    blank = "" if line[:brace_column].rstrip().endswith("{") else "\n"
    return _Spot(offset, member_indent, "\n" + blank, "\n\n", "\n" + class_indent)


def _java_class_line(class_name: str | None, framework: str) -> str:
    return ("public " if framework == JUNIT4 else "") + f"class {class_name or 'UnituneTest'} {{"


def _default_class(language: str, location: TestLocation) -> str:
    stem = location.path.stem
    if language == JAVA:
        return stem
    return "Test" + "".join(part[:1].upper() + part[1:] for part in re.sub(r"^test_|_test$", "", stem).split("_"))


# -- imports -------------------------------------------------------------------------------------

def _import_insertion(source: SourceFile, text: str, inserted: str, language, framework, header, eol) -> TextInsertion | None:
    """The imports `inserted` code needs that `source` lacks, after its last import; None if none."""
    existing = module_imports(source)
    candidates = [line.strip() for line in header.replace("\r\n", "\n").split("\n") if line.strip().startswith(("import ", "from "))]
    candidates += [line for line in _FRAMEWORK_IMPORTS[framework] if line not in candidates]
    if language == PYTHON:
        missing = _missing_python_imports(existing, candidates, inserted)
    else:
        missing = _missing_java_imports(existing, candidates, inserted)
    if not missing:
        return None
    lines = "\n".join(missing) + "\n"
    offset, before, after = _imports_anchor(source, text, language)
    line, character = _position(text, offset)
    return TextInsertion(offset, line, character, before + lines + after)


def _missing_python_imports(existing: list[str], candidates: list[str], code: str) -> list[str]:
    bound, star_modules = set(), set()
    for line in existing:
        for module, name, alias in _python_import_names(line):
            if name == "*":
                star_modules.add(module)
            else:
                bound.add(alias)
    missing = []
    for line in candidates:
        wanted = []
        for module, name, alias in _python_import_names(line):
            if name == "*" or alias in bound or (module and module in star_modules):
                continue
            pattern = rf"(?<![\w.]){re.escape(alias)}\." if module is None else rf"(?<![\w.]){re.escape(alias)}\b"
            if re.search(pattern, code):
                wanted.append(name if alias == name or module is None else f"{name} as {alias}")
                bound.add(alias)
        if wanted and line.startswith("from "):
            missing.append(f"from {line.split()[1]} import {', '.join(wanted)}")
        elif wanted:
            missing.append(line)
    return missing


def _python_import_names(line: str) -> list[tuple[str | None, str, str]]:
    """(module for `from` imports else None, imported name, name bound) of one import line."""
    line = re.sub(r"#.*", "", line).strip()
    found = []
    if line.startswith("from "):
        match = re.match(r"from\s+(\S+)\s+import\s+(.*)$", line)
        if match:
            for part in match.group(2).strip("() ").split(","):
                name, _, alias = part.strip().partition(" as ")
                if name.strip():
                    found.append((match.group(1), name.strip(), (alias or name).strip()))
    elif line.startswith("import "):
        for part in line[len("import "):].split(","):
            name, _, alias = part.strip().partition(" as ")
            if name.strip():
                found.append((None, name.strip(), (alias or name.split(".")[0]).strip()))
    return found


def _missing_java_imports(existing: list[str], candidates: list[str], code: str) -> list[str]:
    types, packages, static_names, static_classes = set(), set(), set(), set()
    for line in existing:
        static, target = _java_import(line)
        if target is None:
            continue
        owner, _, member = target.rpartition(".")
        if static and member == "*":
            static_classes.add(owner.rsplit(".", 1)[-1])
        elif static:
            static_names.add(member)
        elif member == "*":
            packages.add(owner)
        else:
            types.add(member)
    asserted = {match.group(1) for match in _JAVA_ASSERT_CALL.finditer(code)}
    assertions_imported = bool(static_classes & {"Assert", "Assertions"}) or asserted <= static_names
    missing = []
    for line in candidates:
        static, target = _java_import(line)
        if target is None:
            continue
        owner, _, member = target.rpartition(".")
        owner_class = owner.rsplit(".", 1)[-1]
        if static and member == "*":
            needed = owner_class in ("Assert", "Assertions") and bool(asserted) and not assertions_imported \
                and owner_class not in static_classes
            if needed:
                static_classes.add(owner_class)
                assertions_imported = True
        elif static:
            needed = bool(re.search(rf"(?<![\w.]){re.escape(member)}\s*\(", code)) and member not in static_names \
                and owner_class not in static_classes
            static_names.add(member)
        else:
            needed = bool(re.search(rf"\b{re.escape(member)}\b", code)) and member not in types and owner not in packages
            types.add(member)
        if needed:
            missing.append(line)
    return missing


def _java_import(line: str) -> tuple[bool, str | None]:
    match = re.match(r"import\s+(static\s+)?([\w.]+(?:\.\*)?)\s*;", line.strip())
    return (bool(match.group(1)), match.group(2)) if match else (False, None)


def _imports_anchor(source: SourceFile, text: str, language: str) -> tuple[int, str, str]:
    """(offset, text before, text after) for new imports: after the last import, else at the top."""
    last, preamble = None, None
    for node in source.tree.root_node.named_children:
        if language == PYTHON:
            if node.type in _PY_DEFINITIONS:
                break
            if node.type in _PY_IMPORT_NODES or (node.type in ("if_statement", "try_statement") and _holds_import(node)):
                last = node
            elif last is None and (node.type == "comment" or _is_docstring(node)):
                preamble = node
        elif node.type == "import_declaration":
            last = node
        elif node.type == "package_declaration":
            preamble = node
        elif node.type != "line_comment" and node.type != "block_comment":
            break
    anchor = last or preamble
    if anchor is None:
        return 0, "", "\n"
    offset, ended = _line_after(text, anchor.end_point.row)
    before = ("" if ended else "\n") + ("" if last is not None else "\n")
    following = text[offset:].split("\n", 1)[0].strip()
    after = "\n" if last is None and following else ""
    return offset, before, after


def _holds_import(node: Node) -> bool:
    stack = list(node.named_children)
    while stack:
        child = stack.pop()
        if child.type in _PY_IMPORT_NODES:
            return True
        if child.type not in _PY_DEFINITIONS:
            stack.extend(child.named_children)
    return False


def _is_docstring(node: Node) -> bool:
    return node.type == "expression_statement" and node.named_child_count == 1 and node.named_children[0].type == "string"


# -- text helpers --------------------------------------------------------------------------------

def reindent_test(source: str, language: str, indent: str, unit: str = INDENT) -> str:
    """One test's source re-based so its first line starts with `indent`, each level of the prompt's
    four-space indentation becoming `unit`. Lines inside multi-line string values keep their text."""
    lines = source.replace("\r\n", "\n").rstrip("\n").split("\n")
    base = _leading_whitespace(lines[0])
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
        leading = _leading_whitespace(rest)
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
    rows, stack = set(), [root]
    while stack:
        node = stack.pop()
        if node.type in ("string", "string_literal") and node.end_point.row > node.start_point.row:
            parent = node.parent
            if not (parent is not None and parent.type == "expression_statement" and parent.named_child_count == 1):
                rows.update(row - shift for row in range(node.start_point.row + 1, node.end_point.row + 1))
            continue
        stack.extend(node.children)
    return rows


def _indent_unit(source: SourceFile) -> str:
    """One level of the file's indentation, from its first function with a multi-line body."""
    wanted = "function_definition" if source.language == PYTHON else "method_declaration"
    stack = [source.tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == wanted:
            body = node.child_by_field_name("body")
            statements = [child for child in body.named_children if child.start_point.row > node.start_point.row] if body is not None else []
            if statements:
                outer = _leading_whitespace(source.line_text(node.start_point.row))
                inner = _leading_whitespace(source.line_text(statements[0].start_point.row))
                if inner.startswith(outer) and len(inner) > len(outer):
                    return inner[len(outer):]
        stack.extend(reversed(node.named_children))
    return INDENT


def _leading_whitespace(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def _line_ending(text: str) -> str:
    crlf = text.count("\r\n")
    return "\r\n" if crlf and crlf >= text.count("\n") - crlf else "\n"


def _blank_lines_to_end(text: str, blank_lines: int) -> str:
    """Newlines that end the file's last line and leave `blank_lines` blank lines after its code."""
    if not text.strip():
        return "" if not text or text.endswith("\n") else "\n"
    have = text[len(text.rstrip()):].count("\n")
    need = max(blank_lines + 1 - have, 0 if text.endswith("\n") else 1)
    return "\n" * need


def _char_offset(text: str, row: int) -> int:
    """Code-point offset of the start of 0-based line `row` (the end of the text past the last line)."""
    offset = 0
    for _ in range(row):
        found = text.find("\n", offset)
        if found < 0:
            return len(text)
        offset = found + 1
    return offset


def _line_after(text: str, row: int) -> tuple[int, bool]:
    """(offset of the line after `row`, whether `row` ends with a line break)."""
    start = _char_offset(text, row)
    end = text.find("\n", start)
    return (end + 1, True) if end >= 0 else (len(text), False)


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset)
    return line, offset - (text.rfind("\n", 0, offset) + 1)


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

