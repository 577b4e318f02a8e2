"""Checks of a generated Python test before anything runs, with the structural repairs they allow.

- every name the test reads resolves: a builtin, something the test file defines or imports, or a
  local; a missing import is added when it is unambiguous (`pytest`, the focal module, a name the
  focal module defines, a standard-library module), else the test is rejected with the names;
- every parameter of a pytest test function is a fixture (pytest's own, one the test file or a
  `conftest.py` on the way up defines); others are removed (the model wrote
  `def test_ordinal(ordinal: TypeAlias)`, which pytest fails at set-up);
- a statement that reads a name nothing defines is removed, with what depended on it, and the rest
  of the test goes on to run (a test cut off at the token limit ends in `assert all_prefix`, a name
  cut short; `is_happy(adb)` lost its quotes); a test left with nothing is rejected with the names;
- `pytest.raises(T, f, *args)` and `self.assertRaises(T, f, *args)` calls become the block form
  (`with pytest.raises(T): f(*args)`), so a check that did not hold is repaired as blocks are;
- a table-driven loop (`for text, expected in [("a", 1), ...]: assert f(text) == expected`, the
  table written inline or bound just before) becomes one statement per row, so each row is run,
  repaired and kept or pruned on its own, and the test reads as plain assertions;
- an assertion that compares a value with itself (`assert Version(1, 2) == Version(1, 2)`) becomes a
  placeholder, so repair writes the value observed when run.
The scopes come from `symtable`, the compiler's own, so comprehensions, lambdas and nested
functions resolve as Python resolves them.
"""

from __future__ import annotations

import ast
import builtins
import re
import symtable
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from unitune.assured.module_names import module_names
from unitune.assured.python_assertions import self_comparisons_as_placeholders

#: Fixtures pytest itself provides (its own plugins), which a test may ask for by parameter.
PYTEST_FIXTURES = frozenset({
    "request", "tmp_path", "tmp_path_factory", "tmpdir", "tmpdir_factory", "monkeypatch", "capsys", "capsysbinary",
    "capfd", "capfdbinary", "caplog", "recwarn", "pytestconfig", "record_property", "record_xml_attribute",
    "record_testsuite_property", "cache", "doctest_namespace", "testdir", "pytester", "subtests",
})
_BUILTINS = frozenset(dir(builtins)) | {"__file__", "__name__", "__doc__", "__builtins__", "__spec__"}


@dataclass
class CheckedTest:
    """A test after the checks: its (possibly repaired) source, imports it needs added, what was
    repaired, and the problems that reject it (empty: it may run)."""

    source: str
    imports: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def check_python_test(source: str, name: str, context: str, *, focal_module: str | None,
                      focal_names: set[str], fixtures: set[str]) -> CheckedTest:
    """Check the test `source` (indented as in its file) as it would sit after `context` (the test
    file's text, or the header of a new one). `focal_module` is the dotted module of the focal file,
    `focal_names` what it defines at top level; `fixtures` the fixtures conftest files define."""
    checked = CheckedTest(source)
    checked.source = _drop_unknown_fixtures(checked, fixtures | _defined_fixtures(context))
    checked.source = _raises_calls_as_blocks(checked, name)
    checked.source = _unrolled_tables(checked, name)
    checked.source, compared = self_comparisons_as_placeholders(checked.source)
    # one note per check, quoting what it checks: a test split in parts keeps each note with its check
    checked.repaired.extend(f"`{value}` was compared with itself; its check now expects the value observed when run"
                            for value in compared)
    defined, star = module_names(context)
    if star:
        return checked  # `from x import *`: what it binds is unknown here
    missing = sorted(_free_names(checked.source, name) - defined - _BUILTINS)
    unresolved = []
    for missing_name in missing:
        line = _import_for(missing_name, focal_module, focal_names)
        if line is None:
            unresolved.append(missing_name)
        else:
            checked.imports.append(line)
            checked.repaired.append(f"added `{line}`")
    removed: list[str] = []
    while unresolved:  # a removed statement may have bound a name a later one reads: until none is left
        pruned = _without_statements_reading(checked.source, name, set(unresolved))
        if pruned is None:
            checked.problems.append(f"uses undefined name{'s' if len(unresolved) > 1 else ''} {', '.join(unresolved)}")
            return checked
        checked.source, count = pruned
        removed.append(f"removed {count} statement{'s' if count > 1 else ''} reading undefined "
                       f"name{'s' if len(unresolved) > 1 else ''} {', '.join(unresolved)}")
        unresolved = sorted(_free_names(checked.source, name) - defined - _BUILTINS
                            - {bound_name(line) for line in checked.imports})
    checked.repaired.extend(removed)
    return checked


def _test_function(source: str, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    try:
        tree = ast.parse(textwrap.dedent(source))
    except (SyntaxError, ValueError):
        return None
    return next((node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and node.name == name), None)


def _without_statements_reading(source: str, name: str, names: set[str]) -> tuple[str, int] | None:
    """(`source` without the statements of the test's body that read one of `names`, how many went),
    or None when that would leave the body empty or the test cannot be read."""
    function = _test_function(source, name)
    if function is None:
        return None
    doomed = [statement for statement in function.body
              if any(isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in names
                     for node in ast.walk(statement))]
    if not doomed or len(doomed) == len(function.body):
        return None
    # dedenting keeps every line, so the parsed line numbers are the source's rows
    gone = {row for statement in doomed for row in range(statement.lineno - 1, statement.end_lineno)}
    return "\n".join(line for row, line in enumerate(source.split("\n")) if row not in gone), len(doomed)


#: The call forms of a raises check, which take the code to run as a function and its arguments.
_RAISES_CALLS = frozenset({"pytest.raises", "raises", "self.assertRaises"})


def _raises_calls_as_blocks(checked: CheckedTest, name: str) -> str:
    """`pytest.raises(T, f, *args, **kwargs)` statements (and `self.assertRaises(...)`) as
    `with pytest.raises(T): f(*args, **kwargs)`."""
    source = checked.source
    function = _test_function(source, name)
    if function is None:
        return source
    lines = source.split("\n")
    code = textwrap.dedent(source)
    shift = len(lines[function.lineno - 1]) - len(code.split("\n")[function.lineno - 1])  # the dedented indent
    edits = []

    def text(part: ast.AST) -> str:
        return ast.get_source_segment(code, part) or ast.unparse(part)

    for node in ast.walk(function):
        if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)):
            continue
        call = node.value
        context = ast.unparse(call.func)
        if context not in _RAISES_CALLS or len(call.args) < 2 or any(isinstance(a, ast.Starred) for a in call.args[:2]):
            continue
        # `match=` belongs to pytest.raises; every other argument goes to the function under test
        match = [k for k in call.keywords if k.arg == "match" and context != "self.assertRaises"]
        passed = [text(a) for a in call.args[2:]] + [
            f"{k.arg}={text(k.value)}" if k.arg else f"**{text(k.value)}" for k in call.keywords if k not in match]
        head = f"with {context}({text(call.args[0])}" + "".join(f", match={text(k.value)}" for k in match) + "):"
        pad = " " * (node.col_offset + shift)
        edits.append((node.lineno - 1, node.end_lineno - 1, [pad + head, f"{pad}    {text(call.args[1])}({', '.join(passed)})"]))
    for first, last, new in sorted(edits, reverse=True):
        lines[first:last + 1] = new
    if edits:
        checked.repaired.append(f"{len(edits)} raises call{'s' if len(edits) > 1 else ''} written as a `with` block")
    return "\n".join(lines)


#: Most rows a table-driven loop is unrolled into (a longer table stays a loop).
MAX_UNROLLED_ROWS = 30


def _unrolled_tables(checked: CheckedTest, name: str) -> str:
    """The test with each table-driven loop at its top level written out row by row."""
    source = checked.source
    function = _test_function(source, name)
    if function is None:
        return source
    code = textwrap.dedent(source)
    lines = source.split("\n")
    shift = len(lines[function.lineno - 1]) - len(code.split("\n")[function.lineno - 1])
    edits = []
    for index, loop in enumerate(function.body):
        rows = _table_rows(function.body, index)
        if rows is None:
            continue
        table, elements = rows
        names = [loop.target.id] if isinstance(loop.target, ast.Name) else [n.id for n in loop.target.elts]
        pad = " " * (loop.col_offset + shift)
        unrolled = []
        for element in elements:
            values = [element] if len(names) == 1 else element.elts
            for statement in loop.body:
                statement = ast.parse(ast.unparse(statement)).body[0]
                if isinstance(statement, ast.Assert) and statement.msg is not None and any(
                        isinstance(n, ast.Name) and n.id in names for n in ast.walk(statement.msg)):
                    statement.msg = None  # a message about "this row" says nothing once the row is written out
                written = _Substitute(dict(zip(names, values))).visit(statement)
                unrolled.extend(pad + line for line in ast.unparse(written).split("\n"))
        edits.append((loop.lineno - 1, loop.end_lineno - 1, unrolled))
        if table is not None:
            edits.append((table.lineno - 1, table.end_lineno - 1, []))
    for first, last, new in sorted(edits, reverse=True):
        lines[first:last + 1] = new
    if edits:
        loops = sum(1 for _, _, new in edits if new)
        checked.repaired.append(f"{loops} table-driven loop{'s' if loops > 1 else ''} written out row by row")
    return "\n".join(lines)


def _table_rows(body: list[ast.stmt], index: int) -> tuple[ast.Assign | None, list[ast.expr]] | None:
    """(the statement binding the table, if apart, its rows) of the loop `body[index]`, when it is a
    plain table-driven loop that can be written out; else None."""
    loop = body[index]
    if not isinstance(loop, ast.For) or loop.orelse:
        return None
    if isinstance(loop.target, ast.Name):
        width = 1
    elif isinstance(loop.target, (ast.Tuple, ast.List)) and all(isinstance(n, ast.Name) for n in loop.target.elts):
        width = len(loop.target.elts)
    else:
        return None
    table, rows = None, loop.iter
    if isinstance(rows, ast.Name):
        bound = [s for s in body[:index] if isinstance(s, ast.Assign) and len(s.targets) == 1
                 and isinstance(s.targets[0], ast.Name) and s.targets[0].id == rows.id]
        used_elsewhere = sum(isinstance(node, ast.Name) and node.id == rows.id
                             for statement in body for node in ast.walk(statement)) > 2
        if not bound or bound[-1] is not body[index - 1] or used_elsewhere:
            return None
        table, rows = bound[-1], bound[-1].value
    if not isinstance(rows, (ast.List, ast.Tuple)) or not rows.elts or len(rows.elts) > MAX_UNROLLED_ROWS:
        return None
    if width > 1 and not all(isinstance(e, (ast.Tuple, ast.List)) and len(e.elts) == width
                             and not any(isinstance(v, ast.Starred) for v in e.elts) for e in rows.elts):
        return None
    names = {loop.target.id} if width == 1 else {n.id for n in loop.target.elts}
    for node in ast.walk(ast.Module(body=loop.body, type_ignores=[])):
        if isinstance(node, (ast.Break, ast.Continue, ast.Return, ast.Yield, ast.YieldFrom, ast.FunctionDef,
                             ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            return None
        if isinstance(node, ast.Name) and node.id in names and not isinstance(node.ctx, ast.Load):
            return None
    return table, list(rows.elts)


class _Substitute(ast.NodeTransformer):
    """Replaces the loop's names by one row's values."""

    def __init__(self, values: dict[str, ast.expr]):
        self.values = values

    def visit_Name(self, node: ast.Name) -> ast.expr:
        if isinstance(node.ctx, ast.Load) and node.id in self.values:
            return ast.parse(ast.unparse(self.values[node.id]), mode="eval").body
        return node


def _import_for(name: str, focal_module: str | None, focal_names: set[str]) -> str | None:
    if focal_module and name == focal_module.split(".")[-1]:
        return f"import {focal_module}" if "." not in focal_module else f"from {focal_module.rsplit('.', 1)[0]} import {name}"
    if focal_module and name == focal_module.split(".")[0]:
        # `semver.Version.parse(...)`, as the package's docstrings write it: importing the focal module
        # binds its package and makes sure the module itself is loaded
        return f"import {focal_module}"
    if focal_module and name in focal_names:
        return f"from {focal_module} import {name}"
    if name == "pytest" or name in sys.stdlib_module_names and not name.startswith("_"):
        return f"import {name}"
    return None


def bound_name(import_line: str) -> str:
    """The name an import line of `_import_for` binds: `import a.b` -> `a`, `from a import b` -> `b`."""
    imported = import_line.split()[-1]
    return imported.split(".")[0] if import_line.startswith("import ") else imported


def _free_names(source: str, name: str) -> set[str]:
    """Names the test function reads that it does not bind (globals, as the compiler sees them)."""
    code = textwrap.dedent(source)
    try:
        table = symtable.symtable(code, "<test>", "exec")
    except (SyntaxError, ValueError):
        return set()
    found: set[str] = set()
    stack = [child for child in table.get_children() if child.get_name() == name]
    while stack:
        scope = stack.pop()
        for symbol in scope.get_symbols():
            if symbol.is_referenced() and symbol.is_global() and not symbol.is_declared_global():
                found.add(symbol.get_name())
        stack.extend(scope.get_children())
    return found


def _defined_fixtures(text: str) -> set[str]:
    """Fixtures a test file or conftest.py defines (functions decorated with `fixture`)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for decorator in node.decorator_list:
                called = decorator.func if isinstance(decorator, ast.Call) else decorator
                if ast.unparse(called).split(".")[-1] == "fixture":
                    name = node.name
                    if isinstance(decorator, ast.Call):
                        for keyword in decorator.keywords:
                            if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                                name = str(keyword.value.value)
                    found.add(name)
    return found


def conftest_fixtures(test_file: Path, root: Path) -> set[str]:
    """Fixtures of the `conftest.py` files from the project's root down to the test file's folder."""
    found: set[str] = set()
    folder = test_file.parent
    try:
        folder.resolve().relative_to(root.resolve())
    except ValueError:
        return found
    while True:
        conftest = folder / "conftest.py"
        if conftest.is_file():
            try:
                found |= _defined_fixtures(conftest.read_text("utf-8", errors="replace")[:1_000_000])
            except OSError:
                pass
        if folder.resolve() == root.resolve() or folder.parent == folder:
            return found
        folder = folder.parent


def _drop_unknown_fixtures(checked: CheckedTest, fixtures: set[str]) -> str:
    """The test without parameters no fixture provides (a method keeps `self`; parametrized and
    defaulted parameters are provided)."""
    source = checked.source
    try:
        function = ast.parse(textwrap.dedent(source)).body[0]
    except (SyntaxError, ValueError, IndexError):
        return source
    if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return source
    parametrized = set()
    for decorator in function.decorator_list:
        if isinstance(decorator, ast.Call) and "parametrize" in ast.unparse(decorator.func) and decorator.args:
            first = decorator.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                parametrized |= {part.strip() for part in first.value.split(",")}
    arguments = function.args
    positional = arguments.posonlyargs + arguments.args
    defaulted = {a.arg for a in positional[len(positional) - len(arguments.defaults):]} if arguments.defaults else set()
    unknown = [a.arg for a in positional if a.arg not in fixtures | PYTEST_FIXTURES | parametrized | defaulted
               and a.arg not in ("self", "cls")]
    if not unknown or arguments.vararg or arguments.kwarg or arguments.kwonlyargs:
        return source
    # the parameter list, rewritten on the def line only (what the model writes fits on it)
    lines = source.split("\n")
    for index, line in enumerate(lines):
        match = re.match(r"^(\s*(?:async\s+)?def\s+\w+\s*)\((.*)\)(\s*(->[^:]*)?:.*)$", line)
        if match:
            kept = [p for p in _split_parameters(match.group(2)) if p.split(":")[0].split("=")[0].strip() not in unknown]
            lines[index] = f"{match.group(1)}({', '.join(kept)}){match.group(3)}"
            checked.repaired.append(f"removed parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
                                    "no fixture provides it")
            return "\n".join(lines)
    return source


def _split_parameters(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts
