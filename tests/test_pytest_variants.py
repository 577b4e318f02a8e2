"""Tests of the pytest variants of mined unittest pairs: the rewrite of test methods into pytest
functions (unitune.training.unittest_to_pytest), what it refuses, and the training pairs built from
the rewrites (unitune.training.pytest_variants)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from unitune.training.mining import mine
from unitune.training.pytest_variants import pytest_variant, pytest_variants
from unitune.training.unittest_to_pytest import unittest_to_pytest


def method(body: str, decorators: str = "", signature: str = "def test_x(self):") -> str:
    """A test method as mining cuts it: indented one level, its body one more."""
    lines = [line for line in textwrap.dedent(decorators).splitlines() if line.strip()]
    head = "".join(f"    {line}\n" for line in lines) + f"    {signature}\n"
    return head + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8, lambda line: True) + "\n"


def function(body: str, decorators: str = "") -> str:
    lines = [line for line in textwrap.dedent(decorators).splitlines() if line.strip()]
    head = "".join(f"{line}\n" for line in lines) + "def test_x():\n"
    return head + textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 4, lambda line: True) + "\n"


CONVERTED = {
    "equal": ("self.assertEqual(total(), 3)", "assert total() == 3"),
    "not equal": ("self.assertNotEqual(a, b)", "assert a != b"),
    "true": ("self.assertTrue(x.ok)", "assert x.ok"),
    "false": ("self.assertFalse(x)", "assert not x"),
    "is": ("self.assertIs(a, b)", "assert a is b"),
    "is not": ("self.assertIsNot(a, b)", "assert a is not b"),
    "is none": ("self.assertIsNone(f())", "assert f() is None"),
    "is not none": ("self.assertIsNotNone(f())", "assert f() is not None"),
    "in": ("self.assertIn('a', names)", "assert 'a' in names"),
    "not in": ("self.assertNotIn(1, {1: 2})", "assert 1 not in {1: 2}"),
    "isinstance": ("self.assertIsInstance(x, (int, float))", "assert isinstance(x, (int, float))"),
    "not isinstance": ("self.assertNotIsInstance(x, str)", "assert not isinstance(x, str)"),
    "greater": ("self.assertGreater(a, b)", "assert a > b"),
    "greater equal": ("self.assertGreaterEqual(a, b)", "assert a >= b"),
    "less": ("self.assertLess(a, b)", "assert a < b"),
    "less equal": ("self.assertLessEqual(a, b)", "assert a <= b"),
    "old aliases": (
        "self.assertEquals(a, 1)\nself.assertNotEquals(a, 2)\nself.failUnless(a)\nself.assert_(a)",
        "assert a == 1\nassert a != 2\nassert a\nassert a",
    ),
    "positional msg": ("self.assertEqual(a, b, 'differ')", "assert a == b, 'differ'"),
    "keyword msg": ("self.assertTrue(ok, msg=f'{x} failed')", "assert ok, f'{x} failed'"),
    "operands that bind loosely": (
        ("self.assertEqual(a or b, c)\nself.assertFalse(a and b)\nself.assertIsNone(a == b)\n"
         "self.assertEqual(x, y if c else z)\nself.assertTrue(a or not b)\nself.assertIn(n := f(), seen)"),
        ("assert (a or b) == c\nassert not (a and b)\nassert (a == b) is None\n"
         "assert x == (y if c else z)\nassert a or not b\nassert (n := f()) in seen"),
    ),
    "operands that bind tightly": (
        "self.assertEqual(a + b, -c)\nself.assertFalse(a == b)\nself.assertEqual(x[0].y(1), {'k': [1]})",
        "assert a + b == -c\nassert not a == b\nassert x[0].y(1) == {'k': [1]}",
    ),
    "assertRaises with a callable": (
        "self.assertRaises(ValueError, int, 'x', base=3)  # why\nself.assertRaises(KeyError, lambda: d['k'])",
        "with pytest.raises(ValueError):\n    int('x', base=3)  # why\nwith pytest.raises(KeyError):\n    d['k']",
    ),
    "assertRaisesRegex with a callable": (
        "self.assertRaisesRegex(ValueError, 'bad', parse, '')",
        "with pytest.raises(ValueError, match='bad'):\n    parse('')",
    ),
    "with assertRaises": ("with self.assertRaises(KeyError):\n    d['k']", "with pytest.raises(KeyError):\n    d['k']"),
    "with assertRaises as cm, cm.exception used": (
        "with self.assertRaises(KeyError) as cm:\n    d['k']\nself.assertEqual(cm.exception.args[0], 'k')",
        "with pytest.raises(KeyError) as cm:\n    d['k']\nassert cm.value.args[0] == 'k'",
    ),
    "with assertRaisesRegex": (
        "with self.assertRaisesRegex(TypeError, r'\\bint\\b'), open(p) as f:\n    g(f)",
        "with pytest.raises(TypeError, match=r'\\bint\\b'), open(p) as f:\n    g(f)",
    ),
    "fail and skipTest": (
        "if broken:\n    self.skipTest('broken')\nfor x in xs:\n    if x < 0:\n        self.fail(f'{x} < 0')",
        "if broken:\n    pytest.skip('broken')\nfor x in xs:\n    if x < 0:\n        pytest.fail(f'{x} < 0')",
    ),
    "assert method alias": (
        "eq = self.assertEqual\neq(f(1), 2)\neq(f(2),\n   4)",
        "assert f(1) == 2\nassert f(2) == 4",
    ),
    "decorators in the body stay": (
        "@functools.singledispatch\ndef f(x):\n    pass\nself.assertTrue(f)",
        "@functools.singledispatch\ndef f(x):\n    pass\nassert f",
    ),
    "a nested class's own self": (
        "class Foo(unittest.TestCase):\n    def test_1(self):\n        pass\nself.assertTrue(Foo('test_1'))\nc.update(self=1)",
        "class Foo(unittest.TestCase):\n    def test_1(self):\n        pass\nassert Foo('test_1')\nc.update(self=1)",
    ),
}


@pytest.mark.parametrize("unittest_body, pytest_body", CONVERTED.values(), ids=CONVERTED.keys())
def test_converts(unittest_body, pytest_body):
    assert unittest_to_pytest(method(unittest_body)) == function(pytest_body)


# Whole methods: line breaks inside the call, and strings whose lines must stay as they are.
LAID_OUT = {
    "multi-line arguments": (
        ("    def test_x(self):\n"
         "        self.assertEqual(\n"
         "            f(1),\n"
         "            [1,\n"
         "             2])\n"),
        ("def test_x():\n"
         "    assert f(1) == [1,\n"
         "         2]\n"),
    ),
    "implicit concatenation across lines": (
        ("    def test_x(self):\n"
         "        self.assertEqual(text, 'a'\n"
         "                               'b')\n"),
        ("def test_x():\n"
         "    assert text == ('a'\n"
         "                           'b')\n"),
    ),
    "boolean operator across lines": (
        ("    def test_x(self):\n"
         "        self.assertTrue(a and\n"
         "                        b)\n"),
        ("def test_x():\n"
         "    assert (a and\n"
         "                    b)\n"),
    ),
    "backslash continuation": (
        ("    def test_x(self):\n"
         "        self.assertFalse(a + \\\n"
         "                         b)\n"),
        ("def test_x():\n"
         "    assert not (a + \\\n"
         "                     b)\n"),
    ),
    "multi-line strings keep their lines": (
        ("    def test_x(self):\n"
         "        '''Docstring.'''\n"
         '        self.assertEqual(f(), """\\\n'
         "first\n"
         '  second""")\n'
         "        self.assertEqual(g(), dedent('''\n"
         "            x\n"
         "            '''))\n"),
        ("def test_x():\n"
         "    '''Docstring.'''\n"
         '    assert f() == """\\\n'
         "first\n"
         '  second"""\n'
         "    assert g() == dedent('''\n"
         "            x\n"
         "            ''')\n"),
    ),
}


@pytest.mark.parametrize("test_code, expected", LAID_OUT.values(), ids=LAID_OUT.keys())
def test_line_breaks(test_code, expected):
    converted = unittest_to_pytest(test_code)
    assert converted == expected
    compile(converted, "<test>", "exec")


@pytest.mark.parametrize("decorators, expected", [
    ("@unittest.skip('later')", "@pytest.mark.skip(reason='later')"),
    ("@unittest.skipIf(sys.maxsize < 2**32, '64 bits')", "@pytest.mark.skipif(sys.maxsize < 2**32, reason='64 bits')"),
    ("@unittest.skipUnless(a or b, 'needs a or b')", "@pytest.mark.skipif(not (a or b), reason='needs a or b')"),
    ("@unittest.expectedFailure", "@pytest.mark.xfail(strict=True)"),
    ("@support.cpython_only", "@support.cpython_only"),
    ("@os_helper.skip_unless_symlink\n@requires_zlib()", "@os_helper.skip_unless_symlink\n@requires_zlib()"),
], ids=["skip", "skipIf", "skipUnless", "expectedFailure", "cpython_only", "other skips"])
def test_decorators(decorators, expected):
    converted = unittest_to_pytest(method("self.assertTrue(x)", decorators))
    assert converted == function("assert x", expected)


NOT_CONVERTED = {
    "uses set-up state": method("self.assertEqual(self.calc.add(1, 2), 3)"),
    "calls a helper of the class": method("self.check(1)"),
    "subTest": method("for i in range(3):\n    with self.subTest(i=i):\n        self.assertTrue(i >= 0)"),
    "assert without a pytest spelling": method("self.assertAlmostEqual(x, 0.1)"),
    "assertWarns": method("with self.assertWarns(DeprecationWarning):\n    old()"),
    "failureException": method("with self.assertRaises(self.failureException):\n    f()"),
    "cm used beyond cm.exception": method("with self.assertRaises(KeyError) as cm:\n    d['k']\nprint(cm.expected)"),
    "assertRaises with msg": method("with self.assertRaises(KeyError, msg='no key'):\n    d['k']"),
    "assertRaises callable not on a line of its own": method("if x: self.assertRaises(E, f)"),
    "splatted assert arguments": method("self.assertEqual(*pair)"),
    "fail inside a try body": method("try:\n    f()\n    self.fail('no error')\nexcept Exception:\n    pass"),
    "alias used as a value": method("eq = self.assertEqual\neq(1, 1)\ncheck(eq)"),
    "a decorator that may expect a method": method("self.assertTrue(x)", "@support.bigmemtest(size=2**33, memuse=1)"),
    "parameters besides self": method("self.assertTrue(m.called)", signature="def test_x(self, m):"),
    "async": method("self.assertTrue(await f())", signature="async def test_x(self):"),
    "no self parameter": method("assert True", signature="def test_x():"),
    "super()": method("super().test_x()\nself.assertTrue(x)"),
    "private name mangled in the class": method("self.assertTrue(obj.__secret)"),
    "expects a qualified name": method("class C: pass\nself.assertEqual(C.__qualname__, 'T.test_x.<locals>.C')"),
    "a generator": method("yield 1\nself.assertTrue(x)"),
    "does not parse": "    def test_x(self):\n        self.assertEqual(1,\n",
    "Python 2": method("print 'x'\nself.assertTrue(x)"),
}


@pytest.mark.parametrize("test_code", NOT_CONVERTED.values(), ids=NOT_CONVERTED.keys())
def test_refuses(test_code):
    assert unittest_to_pytest(test_code) is None


# -- pairs ---------------------------------------------------------------------------------------

CALC = '''\
"""A small calculator."""


class Calculator:
    def __init__(self):
        self.memory = 0

    def add(self, a, b):
        return a + b


def double(x):
    return x * 2
'''

TEST_CALC = '''\
import unittest

from pkg.calc import Calculator, double


class CalculatorTest(unittest.TestCase):
    def setUp(self):
        self.calc = Calculator()

    def test_add(self):
        calc = Calculator()
        self.assertEqual(calc.add(2, 3), 5)

    def test_double(self):
        self.assertEqual(double(4), 8)
        with self.assertRaises(TypeError):
            double(None) + 1

    def test_add_after_setup(self):
        self.assertEqual(self.calc.add(1, 1), 2)
'''


@pytest.fixture
def repo(tmp_path) -> Path:
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "calc.py").write_text(CALC)
    (root / "tests" / "test_calc.py").write_text(TEST_CALC)
    return root


def test_pytest_variant_of_a_mined_pair(repo):
    pairs = {pair.test_name: pair.to_json() for pair in mine(repo, language="python").pairs}
    original = pairs["CalculatorTest.test_double"]
    assert original["framework"] == "unittest" and original["focal_qualified_name"] == "double"

    variant = pytest_variant(original, repo)

    assert variant is not None
    assert set(variant) == set(original) | {"variant_of"}
    assert variant["framework"] == "pytest" and variant["test_class"] is None
    assert variant["test_name"] == "test_double" and variant["variant_of"] == "CalculatorTest.test_double"
    assert variant["test_code"] == (
        "def test_double():\n    assert double(4) == 8\n    with pytest.raises(TypeError):\n        double(None) + 1\n"
    )
    header = variant["prompt"].split("def double(x):", 1)[1]
    assert header.endswith("\n\n\nimport pytest\nimport unittest\nfrom pkg.calc import Calculator, double\n\n\ndef test_double():\n")
    assert variant["completion"] == "    assert double(4) == 8\n    with pytest.raises(TypeError):\n        double(None) + 1\n"
    assert original["prompt"].endswith("    def test_double(self):\n")  # the unittest pair opens the same way
    assert variant["prompt"].startswith(original["prompt"].split("import unittest", 1)[0])  # same focal context
    assert variant["prompt"] + variant["completion"] == variant["prompt"][: -len("def test_double():\n")] + variant["test_code"]
    compile(variant["prompt"] + variant["completion"], "<variant>", "exec")
    for key in ("focal_file", "focal_name", "focal_qualified_name", "focal_code", "split", "test_file", "match"):
        assert variant[key] == original[key]


def test_pytest_variants_counts_and_skips(repo):
    pairs = [pair.to_json() for pair in mine(repo, language="python").pairs]
    pytest_pair = dict(pairs[0], framework="pytest")
    missing = dict(pairs[0], focal_file="pkg/gone.py")

    variants, counts = pytest_variants(pairs + [pytest_pair, missing], repo)

    assert sorted(v["variant_of"] for v in variants) == ["CalculatorTest.test_add", "CalculatorTest.test_double"]
    assert counts == {"unittest_pairs": 4, "variants": 2, "not_convertible": 2, "duplicates": 0}
    add = next(v for v in variants if v["test_name"] == "test_add")
    assert add["prompt"].endswith("from pkg.calc import Calculator, double\n\n\ndef test_add():\n")
    assert "class Calculator:" in add["prompt"]  # the focal class context, as for the unittest pair
    compile(add["prompt"] + add["completion"], "<variant>", "exec")
