"""The assertions of a Python test as oracle repair sees them: the test function parsed with `ast`,
its assertion statements (`assert`, unittest's `self.assert*`) as the comparison they make, and its
`pytest.raises` / `self.assertRaises` blocks as the exception they expect; and an assertion that
compares a value with itself turned into the placeholder that repair fills with what was observed."""

from __future__ import annotations

import ast
import textwrap

# unittest assertion method -> the comparison it makes (None: a truth test of its first argument)
_UNITTEST_ASSERTIONS = {
    "assertEqual": "==", "assertEquals": "==", "assertAlmostEqual": "approx", "assertNotEqual": "!=",
    "assertIs": "is", "assertIsNot": "is not", "assertIn": "in", "assertNotIn": "not in",
    "assertGreater": ">", "assertGreaterEqual": ">=", "assertLess": "<", "assertLessEqual": "<=",
    "assertTrue": "truth", "assertFalse": "falsity", "assertIsNone": "none", "assertIsNotNone": "not none",
    "assertListEqual": "==", "assertDictEqual": "==", "assertTupleEqual": "==", "assertSetEqual": "==",
    "assertCountEqual": "count",
}
_COMPARE_OPS = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
                ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}


def parse_test_function(source: str) -> tuple[ast.FunctionDef | ast.AsyncFunctionDef, str] | None:
    """(the function, the indentation of its first line) of the one test function `source` holds,
    indented as in its file; None when it does not parse or holds something else."""
    lines = source.split("\n")
    first = next((line for line in lines if line.strip()), "")
    indent = first[: len(first) - len(first.lstrip())]
    try:
        tree = ast.parse(textwrap.dedent(source))
    except (SyntaxError, ValueError):
        return None
    functions = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return (functions[0], indent) if len(functions) == 1 else None


def parse_assertion(statement: ast.stmt) -> tuple[ast.expr, ast.expr | None, str, bool] | None:
    """(left, right or None, comparison, unittest style) of an assertion statement, else None."""
    if isinstance(statement, ast.Assert):
        test = statement.test
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and type(test.ops[0]) in _COMPARE_OPS:
            return test.left, test.comparators[0], _COMPARE_OPS[type(test.ops[0])], False
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            return test.operand, None, "falsity", False
        return test, None, "truth", False
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Call):
        function = statement.value.func
        if (isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name)
                and function.value.id == "self" and function.attr in _UNITTEST_ASSERTIONS):
            op = _UNITTEST_ASSERTIONS[function.attr]
            args = statement.value.args
            needed = 1 if op in ("truth", "falsity", "none", "not none") else 2
            if len(args) >= needed:
                return args[0], args[1] if needed == 2 else None, op, True
    return None


def parse_raises_block(statement: ast.stmt) -> tuple[ast.expr, bool] | None:
    """(the expected exception type, unittest style) of `with pytest.raises(T):` or
    `with self.assertRaises(T):`, else None."""
    if not isinstance(statement, ast.With) or len(statement.items) != 1:
        return None
    expression = statement.items[0].context_expr
    if not isinstance(expression, ast.Call) or not expression.args:
        return None
    called = ast.unparse(expression.func)
    if called in ("pytest.raises", "raises"):
        return expression.args[0], False
    if called == "self.assertRaises":
        return expression.args[0], True
    return None


def count_assertions(source: str) -> int:
    """How many assertions and raises blocks the test function `source` holds (0: it does not parse)."""
    parsed = parse_test_function(source)
    if parsed is None:
        return 0
    return sum(1 for node in ast.walk(parsed[0]) if isinstance(node, ast.stmt)
               and (parse_assertion(node) is not None or parse_raises_block(node) is not None))


#: Comparisons that hold whenever both sides are the same expression (for a value with `__eq__`).
_REFLEXIVE = frozenset({"==", "is", "<=", ">=", "approx", "count"})


def self_comparisons_as_placeholders(source: str) -> tuple[str, list[str]]:
    """(`source` with each assertion that compares an expression with itself, `assert Version(1, 2) ==
    Version(1, 2)`, written as the placeholder `assert Version(1, 2) == None`, those expressions). Such an
    assertion holds for almost any code; its placeholder fails on its first run, and repair writes
    the value observed there (`assert str(Version(1, 2)) == '1.2.0'`), which checks something."""
    parsed = parse_test_function(source)
    if parsed is None:
        return source, []
    function, indent = parsed
    code = textwrap.dedent(source)
    lines = source.split("\n")
    edits, compared = [], []
    for statement in ast.walk(function):
        assertion = parse_assertion(statement) if isinstance(statement, ast.stmt) else None
        if assertion is None or assertion[1] is None or assertion[2] not in _REFLEXIVE:
            continue
        left, right, _, unittest = assertion
        if ast.dump(left) != ast.dump(right):
            continue
        value = ast.get_source_segment(code, left) or ast.unparse(left)
        placeholder = f"self.assertEqual({value}, None)" if unittest else f"assert {value} == None"
        edits.append((statement.lineno - 1, statement.end_lineno - 1, indent + " " * statement.col_offset + placeholder))
        compared.append(value)
    for first, last, new in sorted(edits, reverse=True):
        lines[first:last + 1] = [new]
    return "\n".join(lines), compared
