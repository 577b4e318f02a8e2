"""Tidying the delivered tests (`unitune.assured.tidy`): the imports and notes the user reads."""

from __future__ import annotations

from unitune.assured.sessions import TestValue
from unitune.assured.tidy import plain_names, still_relevant, without_unused_imports
from unitune.assured.postprocess import GeneratedTest

HEADER = "import pytest\nimport bank.account\nimport math\n\nfrom bank.account import Account\n"
# through the package, which re-exports its module's names (`semver.Version` of semver/version.py)
THROUGH_THE_PACKAGE = "def test_deposit():\n    assert bank.Account('a').deposit(5) == 5\n"


def test_an_import_of_the_focal_module_stays_while_a_test_reads_its_package():
    kept = [GeneratedTest("test_deposit", THROUGH_THE_PACKAGE, "python", True)]
    header = without_unused_imports(HEADER, ["import bank.account", "import math"], kept)
    assert header == "import pytest\nimport bank.account\n\nfrom bank.account import Account\n"


def test_the_note_about_an_added_import_stays_while_the_test_uses_it():
    notes = ["added `import bank.account`", "added `import math`"]
    assert still_relevant(notes, THROUGH_THE_PACKAGE) == ["added `import bank.account`"]


def numbered(name: str, body: str) -> GeneratedTest:
    return GeneratedTest(name, f"def {name}():\n{body}", "python", True, numbered_from="test_parse")


def test_numbered_tests_are_named_after_what_they_check_and_one_that_raises_says_so_first():
    tests = [numbered("test_parse_2", "    with pytest.raises(TypeError):\n        Version.parse(1)\n"),
             numbered("test_parse_3", "    assert Version.parse('1.2.3').major == 1\n"),
             numbered("test_parse_4", "    with pytest.raises(TypeError):\n        Version.parse(None, 2)\n"),
             numbered("test_parse_5", "    with pytest.raises(ValueError):\n        Version.parse('x')\n")]
    values = {test.name: TestValue() for test in tests}
    named = plain_names(tests, set(), values, ("parse",))
    assert [test.name for test in named] == ["test_parse_raises_type_error", "test_parse",
                                             "test_parse_none_2_raises_type_error", "test_parse_raises_value_error"]
    assert named[2].source.startswith("def test_parse_none_2_raises_type_error():")
    assert set(values) >= {test.name for test in named}  # the measured values follow the new names


def test_a_special_method_that_raises_is_named_after_its_index_not_the_constructors_arguments():
    tests = [GeneratedTest("test_getitem_2", "def test_getitem_2():\n    with pytest.raises(IndexError):\n"
                           "        Version(3, 4, 5)[-1]\n", "python", True, numbered_from="test_getitem")]
    named = plain_names(tests, {"test_getitem_raises_index_error"}, {"test_getitem_2": TestValue()},
                        ("Version", "__getitem__"))
    assert named[0].name == "test_getitem_negative_raises_index_error"


def test_a_test_named_in_an_earlier_round_keeps_its_name_in_the_next():
    # the user already has it in the file under the first round's name; a second name would be a second test
    first = plain_names([numbered("test_parse_2", "    assert Version.parse('1.2.3').major == 1\n")],
                        {"test_parse"}, {"test_parse_2": TestValue()}, ("parse",))
    again = plain_names(first, {"test_parse"}, {first[0].name: TestValue()}, ("parse",))
    assert [test.name for test in again] == [test.name for test in first] == ["test_parse_1_2_3"]
