"""The imports new tests need in their test file: those the header and the framework bring that the
file lacks and the tests use, inserted after the file's last import (after a module docstring and
`from __future__` imports in Python, after the package line in Java)."""

from __future__ import annotations

import re

from tree_sitter import Node

from unitune.code_spans import module_imports
from unitune.frameworks import JUNIT4, JUNIT5, PYTEST, UNITTEST
from unitune.languages import PYTHON
from unitune.source import SourceFile
from unitune.syntax_walk import descendants
from unitune.text_layout import TextInsertion, line_after, row_column

# The imports each framework's tests rely on, should the header not bring them.
_FRAMEWORK_IMPORTS = {
    PYTEST: ("import pytest",),
    UNITTEST: ("import unittest", "import pytest"),
    JUNIT5: ("import org.junit.jupiter.api.Test;", "import static org.junit.jupiter.api.Assertions.*;"),
    JUNIT4: ("import org.junit.Test;", "import static org.junit.Assert.*;"),
}
_PY_IMPORT_NODES = frozenset({"import_statement", "import_from_statement", "future_import_statement"})
_PY_DEFINITIONS = frozenset({"function_definition", "class_definition", "decorated_definition"})
_JAVA_ASSERT_CALL = re.compile(r"(?<![\w.])(assert[A-Z]\w*|fail)\s*\(")


def import_insertion(source: SourceFile, text: str, inserted: str, language, framework, header, eol) -> TextInsertion | None:
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
    line, character = row_column(text, offset)
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
    offset, ended = line_after(text, anchor.end_point.row)
    before = ("" if ended else "\n") + ("" if last is not None else "\n")
    following = text[offset:].split("\n", 1)[0].strip()
    after = "\n" if last is None and following else ""
    return offset, before, after


def _holds_import(node: Node) -> bool:
    inside = descendants(node, named_only=True, descend_into=lambda child: child.type not in _PY_DEFINITIONS)
    return any(child.type in _PY_IMPORT_NODES for child in inside)


def _is_docstring(node: Node) -> bool:
    return node.type == "expression_statement" and node.named_child_count == 1 and node.named_children[0].type == "string"
