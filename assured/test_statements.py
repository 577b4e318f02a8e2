"""The statements of a Python test's body and what flows between them: which names each one binds,
reads and may change, so that a statement can be removed with the ones that depend on it, or a few
kept with the ones they need.

Oracle repair removes a statement that still fails with its dependents; minimization keeps the
assertions that add something with the set-up they need; splitting gives each behaviour its own
test. All of them work on the top-level statements of the test function (a loop or a `with` block
is one unit) and edit the source by whole lines, so what is kept reads exactly as it was written.

Data flow is read off the syntax: a statement *binds* the names it assigns (targets of `=`, `+=`,
`for`, `with ... as`, imports, definitions, `:=`) and *reads* the names it loads. It *may change*
a name it reads when it calls something (a method call `x.add(1)`, or `f(x)`), or assigns to one of
its attributes or items (`x.count = 1`, `x[0] = 1`): a later reader of that name depends on it too.
`self` is the test case, not data: only its attributes (`self.account`) are tracked, as names.
"""

from __future__ import annotations

import ast
import re
import textwrap
from dataclasses import dataclass, field

from unitune.assured.python_assertions import parse_assertion, parse_raises_block, parse_test_function


@dataclass
class Statement:
    """One top-level statement of a test body: its lines (1-based, in the dedented test) and its data flow."""

    index: int
    node: ast.stmt
    first_line: int
    last_line: int
    binds: set[str] = field(default_factory=set)
    reads: set[str] = field(default_factory=set)
    changes: set[str] = field(default_factory=set)
    checks: bool = False  # an assertion or a raises block, or a compound statement holding one

    @property
    def key(self) -> str:
        """How the observing twin names this statement (`unitune.assured.observing`)."""
        return f"{self.node.lineno}:{self.node.col_offset}"


@dataclass
class TestBody:
    """A test function's top-level statements, with what the edits need to rewrite it by lines."""

    __test__ = False  # not a pytest test class

    name: str
    statements: list[Statement]
    lines: list[str]  # the dedented source, split
    indent: str  # the indentation of the `def` line in its file
    def_line: int  # the `def` line (1-based, dedented); decorators are above it

    def by_key(self, key: str) -> Statement | None:
        return next((s for s in self.statements if s.key == key), None)

    def enclosing(self, line: int) -> Statement | None:
        """The top-level statement whose lines hold `line`."""
        return next((s for s in self.statements if s.first_line <= line <= s.last_line), None)


def parse_body(source: str) -> TestBody | None:
    """The test function `source` (one function, indented as in its file) as a `TestBody`; None when it
    does not parse."""
    parsed = parse_test_function(source)
    if parsed is None:
        return None
    function, indent = parsed
    dedented = textwrap.dedent(source).split("\n")
    statements = []
    body = function.body
    for index, node in enumerate(body):
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        statement = Statement(index, node, first, node.end_lineno or node.lineno)
        _flow(node, statement)
        statements.append(statement)
    return TestBody(function.name, statements, dedented, indent, function.lineno)


def _flow(node: ast.stmt, statement: Statement) -> None:
    """Fill in what `node` binds, reads and may change."""
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name):
            if isinstance(inner.ctx, ast.Store):
                statement.binds.add(inner.id)
            elif isinstance(inner.ctx, ast.Load) and inner.id != "self":
                statement.reads.add(inner.id)
            elif isinstance(inner.ctx, ast.Del):
                statement.binds.add(inner.id)
        elif isinstance(inner, ast.Attribute) and _is_self(inner.value):
            (statement.binds if isinstance(inner.ctx, ast.Store) else statement.reads).add(f"self.{inner.attr}")
        elif isinstance(inner, (ast.Import, ast.ImportFrom)):
            statement.binds.update((alias.asname or alias.name).split(".")[0] for alias in inner.names)
        elif isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            statement.binds.add(inner.name)
        elif isinstance(inner, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = inner.targets if isinstance(inner, (ast.Assign, ast.Delete)) else [inner.target]
            for target in targets:
                root = _root_name(target)
                if root is not None and not isinstance(target, ast.Name):
                    statement.changes.add(root)  # `x.count = 1`, `x[0] = 1`
        elif isinstance(inner, ast.Call) and not _is_check_call(inner):
            statement.changes.update(_names_reachable(inner))
    statement.checks = any(parse_assertion(s) is not None or parse_raises_block(s) is not None
                           for s in ast.walk(node) if isinstance(s, ast.stmt))


def _is_self(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def _root_name(node: ast.AST) -> str | None:
    """`x` of `x.a.b[0]`; `self.a` of `self.a.b`."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        if isinstance(node, ast.Attribute) and _is_self(node.value):
            return f"self.{node.attr}"
        node = node.value
    return node.id if isinstance(node, ast.Name) and node.id != "self" else None


def _names_reachable(call: ast.Call) -> set[str]:
    """The names a call may change: the object a method is called on, and the arguments' roots."""
    names = set()
    if isinstance(call.func, ast.Attribute):
        root = _root_name(call.func.value)
        if root is not None:
            names.add(root)
    for argument in [*call.args, *(k.value for k in call.keywords)]:
        root = _root_name(argument.value if isinstance(argument, ast.Starred) else argument)
        if root is not None:
            names.add(root)
    return names


def _is_check_call(call: ast.Call) -> bool:
    """`self.assertEqual(...)`, `pytest.raises(...)`: calls that check, and change nothing."""
    text = ast.unparse(call.func)
    return text.startswith("self.assert") or text in ("pytest.raises", "pytest.approx", "raises", "approx")


# -- what depends on what ---------------------------------------------------------------------------

def dependents(body: TestBody, removed: set[int]) -> set[int]:
    """`removed` and every later statement that reads a name one of them bound (and nothing kept bound
    again in between), transitively."""
    gone = set(removed)
    unbound: set[str] = set()
    for statement in body.statements:
        if statement.index in gone:
            unbound |= statement.binds
            continue
        if statement.reads & unbound:
            gone.add(statement.index)
            unbound |= statement.binds
        else:
            unbound -= statement.binds
    return gone


def needed_by(body: TestBody, kept: set[int], *, through_checks: bool = True) -> set[int]:
    """`kept` and every earlier statement they need: for each name a needed statement reads, the last
    statement before it that binds the name and those in between that may change it, transitively.
    Without `through_checks`, a check (an assertion, a raises block) that only may change a name is not
    needed for it: a test split by behaviour does not repeat the other behaviours' checks (whether it
    still passes without them is for a run to say)."""
    needed = set(kept)
    pending = sorted(needed, reverse=True)
    while pending:
        statement = body.statements[pending.pop()]
        for name in statement.reads:
            for earlier in reversed(body.statements[: statement.index]):
                binds = name in earlier.binds
                changes = name in earlier.changes and (through_checks or not earlier.checks)
                if (binds or changes) and earlier.index not in needed:
                    needed.add(earlier.index)
                    pending.append(earlier.index)
                if binds:
                    break  # where the value comes from: what is before it does not matter
    return needed


def render(body: TestBody, kept: set[int], *, name: str | None = None) -> str:
    """The test with only the statements `kept` (a comment right above a statement goes with it),
    indented as in its file, renamed to `name` when given."""
    lines = body.lines
    first = body.statements[0].first_line if body.statements else len(lines) + 1
    header_end = first - 1
    while header_end > body.def_line and (not lines[header_end - 1].strip()
                                          or lines[header_end - 1].strip().startswith("#")):
        header_end -= 1
    out = lines[:header_end]
    previous_end = header_end
    for statement in body.statements:
        start = statement.first_line
        while start - 1 > previous_end and lines[start - 2].strip().startswith("#"):
            start -= 1
        if statement.index in kept:
            if len(out) > header_end and any(not line.strip() for line in lines[previous_end:start - 1]):
                out.append("")  # keep a blank line that separated two kept statements
            out.extend(lines[start - 1: statement.last_line])
        previous_end = statement.last_line
    text = "\n".join(out).rstrip("\n") + "\n"
    if name is not None and name != body.name:
        text = re.sub(rf"\bdef\s+{re.escape(body.name)}\s*\(", f"def {name}(", text, count=1)
    return textwrap.indent(text, body.indent) if body.indent else text
