"""Oracle repair (`unitune.assured.oracles`): each kind of repair on a small module, the observing twins run
for real in one sandbox session."""

from __future__ import annotations

import textwrap

import pytest

from unitune.assured.oracles import DROP, observing_twin, repair
from unitune.assured.sandbox import Round, run_rounds

MODULE = '''\
class Box:
    def __init__(self, items):
        self.items = list(items)

    def add(self, item):
        if item is None:
            raise TypeError("no None")
        self.items.append(item)
        return len(self.items)

def stats(xs):
    return {"n": len(xs), "mean": sum(xs) / len(xs)}

def halves(xs):
    return [x / 2 for x in xs]

def pair(x):
    return (x, -x)

def unique(xs):
    return set(xs)

def nothing(x):
    return None

def is_even(x):
    return x % 2 == 0

def box(x):
    return Box([x])

class Error(ValueError):
    pass

def strict(x):
    if x < 0:
        raise Error("negative")
    return x

class Tag:
    def __init__(self, name):
        self.name = name

    def __str__(self):
        return "v" + self.name

def tag(name):
    return Tag(name)
'''

TESTS = {
    "test_value": "def test_value():\n    b = Box([1])\n    assert b.add(2) == 5\n    assert b.items == []\n",
    "test_dict_and_floats": "def test_dict_and_floats():\n    assert stats([1, 2]) == {}\n    assert halves([1, 3]) == [0, 1]\n",
    "test_tuple_set_none": ("def test_tuple_set_none():\n    assert pair(2) == (2, 2)\n    assert unique([1, 1]) == {2}\n"
                            "    assert nothing(1) == 3\n"),
    "test_truth": "def test_truth():\n    assert is_even(3)\n    assert not is_even(4)\n",
    "test_raises": "def test_raises():\n    assert Box([]).add(None) == 1\n    strict(-1)\n    assert strict(2) == 2\n",
    "test_raises_block": ("def test_raises_block():\n    with pytest.raises(KeyError):\n        strict(-1)\n"
                          "    with pytest.raises(ValueError):\n        strict(5)\n"),
    "test_not_literal": "def test_not_literal():\n    assert box(1) == 3\n    assert is_even(2)\n",
    "test_loop": "def test_loop():\n    for x in [1, 2]:\n        assert is_even(x) == 'yes'\n    assert is_even(2)\n",
    "test_nothing_left": "def test_nothing_left():\n    assert box(1) == 3\n",
    "test_text": "def test_text():\n    assert tag('1.0') == '1.0'\n",
    "test_placeholder": "def test_placeholder():\n    assert strict(-1) == None\n    assert pair(1) == None\n",
    "test_one_line_helper": ("def test_one_line_helper():\n    def helper(x: int = 2) -> None: ...\n\n"
                             "    assert pair(helper.__defaults__[0]) == (0, 0)\n"),
    "test_repeats": ("def test_repeats():\n    assert pair(1) == (1, 1)\n    assert pair(1) == (1, 2)\n\n"
                     "    assert pair(1) == (1, 3)\n    b = Box([])\n    assert pair(1) == (2, 2)\n"),
}
UNITTEST = ("    def test_method(self):\n        self.assertEqual(pair(1), (0, 0))\n        self.assertTrue(is_even(1))\n"
            "        self.assertAlmostEqual(halves([1])[0], 2.0)\n")


@pytest.fixture(scope="module")
def observed(tmp_path_factory):
    project = tmp_path_factory.mktemp("oracles")
    (project / "subject.py").write_text(MODULE)
    header = "import unittest\n\nimport pytest\n\nfrom subject import *\n\n\n"
    twins = [observing_twin(source, name) for name, source in TESTS.items()]
    twin_class = "class TestSubject(unittest.TestCase):\n" + observing_twin(UNITTEST, "test_method")
    text = header + "\n\n".join(twins) + "\n\n" + twin_class
    result = run_rounds(project, "test_subject.py", [Round(observe=True)], {"test_subject.py": text})
    assert result.status == "passed", result.output
    return result.rounds[0].observations


def repaired(observed, name, source=None, mode="observe"):
    records = [record for record in observed if record["test"] == name]
    return repair(source or TESTS[name], name, records, mode)


@pytest.mark.slow
def test_observed_values_replace_wrong_expected_values(observed):
    fixed = repaired(observed, "test_value")
    assert "assert b.add(2) == 2" in fixed.source
    assert "assert b.items == [1, 2]" in fixed.source  # the state the earlier call left
    assert fixed.source.count("# expected value observed by running the code (regression oracle)") == 2


def test_a_one_line_helper_defined_in_the_test_does_not_stop_the_repair(observed):
    # `def helper(): ...` is two statements on one line; they are not the test's own steps
    fixed = repaired(observed, "test_one_line_helper")
    assert "assert pair(helper.__defaults__[0]) == (2, -2)" in fixed.source, fixed.notes
    assert "def helper(x: int = 2) -> None: ..." in fixed.source


def test_dicts_floats_tuples_sets_and_none(observed):
    fixed = repaired(observed, "test_dict_and_floats").source
    assert "assert stats([1, 2]) == pytest.approx({'n': 2, 'mean': 1.5})" in fixed
    assert "assert halves([1, 3]) == pytest.approx([0.5, 1.5])" in fixed
    fixed = repaired(observed, "test_tuple_set_none").source
    assert "assert pair(2) == (2, -2)" in fixed
    assert "assert unique([1, 1]) == {1}" in fixed
    assert "assert nothing(1) is None" in fixed


def test_a_failing_truth_test_is_negated(observed):
    fixed = repaired(observed, "test_truth").source
    assert "assert is_even(3) is False" in fixed
    assert "    assert not is_even(4)\n" not in fixed and "assert is_even(4) is True" in fixed


def test_a_repaired_assertion_that_repeats_the_one_before_it_is_removed(observed):
    fixed = repaired(observed, "test_repeats")
    # three wrong guesses at one call become one observed value; after another statement it is kept
    assert fixed.source.count("assert pair(1) == (1, -1)") == 2
    assert fixed.source.index("b = Box([])") < fixed.source.rindex("assert pair(1) == (1, -1)")
    assert sum("repeats the assertion before it" in note for note in fixed.notes) == 2


def test_what_raised_is_expected_to_raise(observed):
    fixed = repaired(observed, "test_raises")
    assert "with pytest.raises(TypeError):\n        Box([]).add(None)" in fixed.source
    # a custom exception is expected as its built-in base: no import needed
    assert "with pytest.raises(ValueError):\n        strict(-1)" in fixed.source
    assert "assert strict(2) == 2" in fixed.source


def test_raises_blocks_name_what_was_raised_or_become_assertions(observed):
    fixed = repaired(observed, "test_raises_block").source
    assert "with pytest.raises(ValueError):\n        strict(-1)" in fixed
    assert "assert strict(5) == 5" in fixed


def test_values_without_a_literal_are_removed_and_a_test_without_assertions_dropped(observed):
    fixed = repaired(observed, "test_not_literal")
    assert "box(1) == 3" not in fixed.source and "    box(1)\n" in fixed.source  # the call stays
    assert "assert is_even(2)" in fixed.source
    assert repaired(observed, "test_nothing_left").source is None


def test_an_object_without_a_literal_is_checked_by_its_own_text(observed):
    fixed = repaired(observed, "test_text").source
    assert "assert str(tag('1.0')) == 'v1.0'" in fixed  # Box, with no text of its own, is removed above


def test_a_placeholder_expectation_is_described_as_what_was_observed(observed):
    fixed = repaired(observed, "test_placeholder")
    assert "with pytest.raises(ValueError):\n        strict(-1)" in fixed.source and "assert pair(1) == (1, -1)" in fixed.source
    assert fixed.notes == ["`strict(-1)` raised ValueError when run", "`assert pair(1) == (1, -1)`: the value observed when run"]


def test_an_assertion_in_a_loop_that_saw_different_values_is_removed(observed):
    fixed = repaired(observed, "test_loop").source
    assert "'yes'" not in fixed
    assert "assert is_even(2)" in fixed


def test_unittest_assertions_are_repaired_in_their_own_style(observed):
    fixed = repaired(observed, "test_method", UNITTEST).source
    assert "self.assertEqual(pair(1), (1, -1))" in fixed
    assert "self.assertFalse(is_even(1))" in fixed
    assert "self.assertAlmostEqual(halves([1])[0], 0.5)" in fixed


def test_drop_mode_removes_failing_assertions_only(observed):
    fixed = repaired(observed, "test_raises", mode=DROP).source
    assert "Box([]).add(None)" not in fixed and "observed" not in fixed
    assert "assert strict(2) == 2" in fixed
    assert repaired(observed, "test_value", mode=DROP).source is None  # nothing held: no assertion left


def test_the_twin_keeps_the_test_name_and_indentation():
    twin = observing_twin(UNITTEST, "test_method")
    assert twin.startswith("    def test_method(self):\n")
    assert "_unitune_observe(" in twin and "assertEqual" not in textwrap.dedent(twin).split("_unitune_observe(", 1)[1]
