"""What the user reads of the delivered tests, tidied once the assured pipeline has chosen them: the
test file's header without imports that only removed statements needed, names without the number
that kept a later candidate apart from an earlier one (or named after what they check), and only the
repair notes about code the test still holds."""

from __future__ import annotations

import ast
import dataclasses
import re
import textwrap

from unitune.assured.sessions import TestValue
from unitune.assured.postprocess import GeneratedTest, rename_test
from unitune.assured.checks import bound_name
from unitune.assured.minimize import behaviour_names


def with_import(header: str, line: str) -> str:
    """`header` with the import `line` after its last import line (at its start when it has none)."""
    lines = header.split("\n")
    last = max((i for i, text in enumerate(lines) if text.startswith(("import ", "from "))), default=-1)
    lines.insert(last + 1, line)
    return "\n".join(lines)


def without_unused_imports(header: str, added: list[str], kept: list[GeneratedTest]) -> str:
    """`header` without the import lines the checks added for statements that are no longer in any kept
    test (repair or shaping removed them)."""
    read: set[str] = set()
    for test in kept:
        try:
            tree = ast.parse(textwrap.dedent(test.source))
        except SyntaxError:
            return header
        read |= {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        read |= {node.value.id for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                 and isinstance(node.value, ast.Name)}
    unused = {line for line in added if bound_name(line) not in read}
    return "\n".join(line for line in header.split("\n") if line not in unused)


def plain_names(tests: list[GeneratedTest], existing: set[str], values: dict[str, TestValue],
                focal_names: tuple[str, ...]) -> list[GeneratedTest]:
    """The delivered tests, a name numbered to keep it apart from another candidate's (`test_parse_2`)
    back to its plain form where that is free in the test file and among them, else named after what
    it checks (`test_parse_raises_type_error`, then `test_parse_1_raises_type_error`) where that is
    free; a test that expects an exception is named after it first. A number that a behaviour's name
    ends in (`test_deposit_50`) stays."""
    taken = existing | {test.name for test in tests}
    named = []
    for test in tests:
        plain = test.numbered_from
        if plain is not None and plain != test.name:
            parts = behaviour_names(test.source, focal_names)
            behaviours = [f"{plain}_{part}" for part in parts]
            # a test that expects an exception says so even where the plain name is free
            choices = behaviours + [plain] if parts and parts[0].startswith("raises_") else [plain] + behaviours
            # its own name is not taken by another: a test named in an earlier round keeps that name
            free = next((choice for choice in choices if choice == test.name or choice not in taken), None)
            if free is not None and free != test.name:
                taken.discard(test.name)
                taken.add(free)
                values[free] = values[test.name]
                renamed = rename_test(test.source, test.name, free, test.language)
                test = dataclasses.replace(test, name=free, source=renamed)
        named.append(test)
    return named


def still_relevant(notes: list[str], source: str) -> list[str]:
    """The repair notes of a delivered test that are about what it still holds: a note quoting code that
    repair or shaping has since removed (an import added for it, an expected value written into it)
    says nothing about the test the user gets."""
    code = " ".join(source.split())
    kept = []
    for note in notes:
        quoted = [" ".join(part.split()).removesuffix("...") for part in note.split("`")[1::2]]
        if note.startswith("added `"):
            name = bound_name(quoted[0]) if quoted else ""
            if re.search(rf"\b{re.escape(name)}\b", code):
                kept.append(note)
        elif not quoted or any(part and part in code for part in quoted) or note.startswith("removed "):
            kept.append(note)
        elif " now expects " in note and _checked_expression(quoted[0]) in code:
            kept.append(note)  # the statement it quotes was rewritten, and what it checks is still there
    return kept


def _checked_expression(assertion: str) -> str:
    """What an assertion's text checks: `account.deposit(-50)` for `assert account.deposit(-50) == 150`."""
    checked = assertion.removeprefix("assert ")
    for operator in (" == ", " != ", " is not ", " is ", " in "):
        checked = checked.split(operator)[0]
    return checked.strip() or assertion
