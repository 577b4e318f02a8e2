"""Candidates with other arguments (`unitune.assured.argument_variation`): the delivered tests' calls to the
focal function with one argument changed, after only the set-up they still need."""

from __future__ import annotations

from unitune.assured.argument_variation import focal_inputs, varied_bodies

DEPOSIT = '''def test_deposit():
    owner = "ada"
    account = Account(owner)
    note = "unused by the call"
    assert account.deposit(5) == 5
    assert account.balance == 5
'''


def test_each_argument_is_tried_with_edges_of_its_kind_and_other_kinds():
    bodies = varied_bodies([(DEPOSIT, "test_deposit")], ("deposit",), "    ")
    calls = [body.strip().split("\n")[-1].strip() for body in bodies]
    assert [call for call in calls if "deposit(5)" not in call] == [
        "assert account.deposit(0) == None", "assert account.deposit(-1) == None",
        "assert account.deposit(None) == None", "assert account.deposit('1') == None",
        "assert account.deposit(10 ** 300) == None"]  # past any float and any length limit
    # the set-up the call needs, and nothing after the call or that it does not read
    assert bodies[0] == '    owner = "ada"\n    account = Account(owner)\n    assert account.deposit(0) == None\n'
    # a literal of the set-up is varied too, within its kind (another kind would make the set-up raise)
    assert "    owner = ''\n    account = Account(owner)\n    assert account.deposit(5) == None\n" in bodies
    assert not any("owner = None" in body or "owner = 1" in body for body in bodies)


def test_a_replaced_argument_takes_its_set_up_along_and_every_argument_gets_a_turn():
    source = ('def test_parse():\n    text = "3.4.5"\n    version = Version.parse(text, strict=True)\n'
              '    assert version.major == 3\n')
    bodies = varied_bodies([(source, "test_parse")], ("parse",), "", limit=4)
    assert bodies == ["assert Version.parse('', strict=True) == None\n",
                      'text = "3.4.5"\nassert Version.parse(text, strict=False) == None\n',
                      "assert Version.parse('x', strict=True) == None\n",
                      'text = "3.4.5"\nassert Version.parse(text, strict=None) == None\n']


def test_an_argument_named_after_a_literal_is_varied_as_that_literal():
    source = ('def test_deposit():\n    account = Account("Alice", 100)\n    amount = 50\n\n'
              '    result = account.deposit(amount)\n    assert result == 150\n')
    bodies = varied_bodies([(source, "test_deposit")], ("deposit",), "", limit=40)
    assert bodies[0] == 'account = Account("Alice", 100)\nassert account.deposit(0) == None\n'
    assert 'account = Account("Alice", 100)\nassert account.deposit(-1) == None\n' in bodies
    assert not any("amount = 0" in body for body in bodies)  # varied once, in the call


def test_a_special_method_is_checked_where_the_test_uses_the_object():
    init = "def __init__(self, major, minor=0, patch=0, prerelease=None):\n    self.major = major\n"
    inputs = focal_inputs("def __getitem__(self, index):\n    return self.parts[index]\n", init)
    getitem = "def test_getitem():\n    assert Version(3, 4, 5)[0] == 3\n"
    bodies = varied_bodies([(getitem, "test_getitem")], ("Version", "__getitem__"), "", limit=40, inputs=inputs)
    assert bodies[:2] == ["assert Version(3, 4, 5)[0:2] == None\n",  # the index first: it is what __getitem__ gets
                          "assert Version(0, 4, 5)[0] == None\n"]
    assert "assert Version(3, 4, 5)[None] == None\n" in bodies
    # the object made otherwise: a constructor's parameter the test left out (not __getitem__'s `index`)
    assert "assert Version(3, 4, 5, prerelease='x')[0] == None\n" in bodies
    assert not any("index=" in body for body in bodies)
    text = 'def test_str():\n    version = Version(1, 2, 3)\n    assert str(version) == "1.2.3"\n'
    bodies = varied_bodies([(text, "test_str")], ("Version", "__str__"), "", limit=40, inputs=inputs)
    assert "version = Version(0, 2, 3)\nassert str(version) == None\n" in bodies
    assert "version = Version(1, 2, 3, prerelease='x')\nassert str(version) == None\n" in bodies
    assert all(body.endswith("assert str(version) == None\n") for body in bodies)


def test_tests_that_cannot_be_varied_give_nothing():
    no_arguments = "def test_now():\n    assert clock.now() == 0\n"
    other_function = "def test_other():\n    assert add(1, 2) == 3\n"
    unittest_method = "def test_deposit(self):\n    self.assertEqual(self.account.deposit(5), 5)\n"
    tests = [(no_arguments, "test_now"), (other_function, "test_other"), (unittest_method, "test_deposit")]
    assert varied_bodies(tests, ("now", "deposit"), "    ") == []


PRECISEDELTA = '''def precisedelta(value, minimum_unit="seconds", suppress=(), *, months=True):
    """Like naturaldelta, but "seconds" is only the default."""
    if minimum_unit not in ("seconds", "days", "years"):
        raise ValueError(f"minimum_unit {minimum_unit!r} is not one of them: it must be a unit")
    if value > 86400:
        return "days"
    return str(value)
'''


def test_the_focal_functions_own_literals_and_left_out_parameters_are_tried():
    inputs = focal_inputs(PRECISEDELTA)
    assert list(inputs.optional) == ["minimum_unit", "suppress", "months"]
    assert inputs.literals == ("seconds", "days", "years", 86400)  # not the docstring, message or template
    test = "def test_precisedelta():\n    assert precisedelta(5) == '5'\n"
    bodies = varied_bodies([(test, "test_precisedelta")], ("precisedelta",), "", limit=40, inputs=inputs)
    calls = [body.strip().removeprefix("assert ").removesuffix(" == None") for body in bodies]
    assert "precisedelta(86400)" in calls  # the threshold the body compares against
    assert "precisedelta(5, minimum_unit='days')" in calls and "precisedelta(5, minimum_unit='x')" in calls
    assert "precisedelta(5, suppress=())" not in calls and "precisedelta(5, months=False)" in calls
    # a positional argument fills its parameter: it is varied, not added again
    positional = "def test_precisedelta():\n    assert precisedelta(5, 'days') == '5'\n"
    bodies = varied_bodies([(positional, "test_precisedelta")], ("precisedelta",), "", limit=40, inputs=inputs)
    assert not any("minimum_unit=" in body for body in bodies)
    assert "assert precisedelta(5, 'years') == None\n" in bodies


def test_a_later_round_skips_what_was_tried():
    first = varied_bodies([(DEPOSIT, "test_deposit")], ("deposit",), "    ", limit=2)
    later = varied_bodies([(DEPOSIT, "test_deposit")], ("deposit",), "    ", tried=frozenset(first))
    assert first and not set(first) & set(later) and len(first) + len(later) == 9  # every variant, once


def test_a_call_without_arguments_gets_the_parameters_it_left_out():
    inputs = focal_inputs("def bump_build(self, token='build'):\n    return self\n")
    test = 'def test_bump_build():\n    version = Version.parse("1.2.3")\n    assert str(version.bump_build()) == "1.2.3+build.1"\n'
    bodies = varied_bodies([(test, "test_bump_build")], ("bump_build",), "", inputs=inputs)
    assert bodies[0] == 'version = Version.parse("1.2.3")\nassert str(version.bump_build(token=\'\')) == None\n'
    assert "version = Version.parse('')\nassert str(version.bump_build()) == None\n" in bodies  # the receiver's text


def test_a_literal_inside_an_argument_is_varied_in_place():
    inputs = focal_inputs("def naturaldelta(value, months=True):\n    if value.days > 365:\n        return 'years'\n")
    test = "def test_naturaldelta():\n    assert naturaldelta(timedelta(days=1)) == 'a day'\n"
    bodies = varied_bodies([(test, "test_naturaldelta")], ("naturaldelta",), "", limit=40, inputs=inputs)
    assert "assert naturaldelta(timedelta(days=365)) == None\n" in bodies  # the threshold, where it is used
    assert "assert naturaldelta(None) == None\n" in bodies and "assert naturaldelta(timedelta(days=1), months=False) == None\n" in bodies


def test_what_the_function_returns_is_not_taken_for_an_input():
    inputs = focal_inputs("def naturaldelta(value, unit='seconds'):\n    if value == 60:\n        return 'a minute'\n"
                          "    if unit == 'days':\n        return 'days' if value else 'none'\n    return 'a moment'\n")
    assert inputs.literals == (60, "days")  # compared; the texts it returns are outputs


def test_a_method_whose_docstring_reaches_the_left_margin_still_offers_its_inputs():
    # `Function.source` of a method is indented, and a docstring line at column 0 defeats `dedent`
    method = ('    @classmethod\n    def parse(cls, version, optional_minor_and_patch=False):\n        """Parse.\n\n'
              ">>> parse('1.2.3')\nVersion(major=1, \\\nminor=2)\n        \"\"\"\n"
              '        if len(version) > 255:\n            raise ValueError(version)\n'
              '        return cls(version) if optional_minor_and_patch else None\n')
    inputs = focal_inputs(method)
    assert list(inputs.optional) == ["optional_minor_and_patch"] and inputs.positional == ("version", "optional_minor_and_patch")
    assert inputs.literals == (255,)


def test_a_text_argument_is_also_tried_long_enough_for_a_length_limit():
    test = "def test_parse():\n    assert Version.parse('1.2.3') == Version(1, 2, 3)\n"
    bodies = varied_bodies([(test, "test_parse")], ("parse",), "", limit=40)
    assert "assert Version.parse('1.2.3' * 200) == None\n" in bodies  # 1,000 characters
    assert bodies[-1] == "assert Version.parse('1.2.3' * 200) == None\n"  # the last thing tried


def test_the_kinds_a_parameter_is_tested_for_are_tried_as_its_values():
    compare = ("def compare(self, other):\n    if isinstance(other, str):\n        other = parse(other)\n"
               "    elif isinstance(other, dict):\n        other = Version(**other)\n"
               "    elif isinstance(other, (tuple, list)):\n        other = Version(*other)\n    return 0\n")
    inputs = focal_inputs(compare)
    assert inputs.kinds == {"other": ("str", "dict", "tuple", "list")}
    test = 'def test_compare():\n    assert Version.parse("1.0.0").compare("2.0.0") == -1\n'
    bodies = varied_bodies([(test, "test_compare")], ("compare",), "", limit=48, inputs=inputs)
    calls = [body.strip().removeprefix("assert ").removesuffix(" == None") for body in bodies]
    for value in ("{}", "()", "[]"):  # each branch of the dispatch, by a value of its kind
        assert f"Version.parse('1.0.0').compare({value})" in calls
    assert sum("compare('')" in call for call in calls) == 1  # its own kind's edge, once
