"""Checks before a generated Python test runs (`unitune.assured.checks`): names resolve as the compiler
resolves them, missing imports are added where clear, parameters no fixture provides are removed."""

from __future__ import annotations

from unitune.assured.checks import check_python_test, conftest_fixtures

HEADER = "import pytest\n\nfrom bank.account import Account\n"


def check(source, context=HEADER, fixtures=frozenset()):
    return check_python_test(source, source.split("(")[0].split()[-1], context, focal_module="bank.account",
                             focal_names={"Account", "add", "InsufficientFunds"}, fixtures=set(fixtures))


def test_names_bound_by_the_test_or_the_file_resolve():
    checked = check("def test_x():\n    total = 0\n    for n in [1, 2]:\n        total += add(n, n)\n"
                    "    squares = [k * k for k in range(3)]\n    f = lambda v: v + total\n"
                    "    assert Account('a').deposit(f(1)) and squares and len(squares)\n")
    assert checked.problems == []
    assert checked.imports == ["from bank.account import add"]  # a name the focal module defines


def test_clear_missing_imports_are_added():
    checked = check("def test_x():\n    assert math.isclose(account.add(1, 2), 3)\n    assert pytest\n",
                    context="from bank.account import Account\n")
    assert checked.imports == ["from bank import account", "import math", "import pytest"]
    assert checked.repaired == ["added `from bank import account`", "added `import math`", "added `import pytest`"]


def test_a_call_through_the_package_as_docstrings_write_it_imports_the_focal_module():
    # `bank.account.Account(...)`, the way a package's doctest examples call it
    checked = check("def test_x():\n    helper = 1\n    assert bank.account.Account('a').deposit(helper) == 1\n"
                    "    assert unknown\n")
    assert checked.imports == ["import bank.account"]
    assert checked.repaired == ["added `import bank.account`", "removed 1 statement reading undefined name unknown"]
    assert checked.problems == []
    assert "bank.account.Account('a')" in checked.source and "unknown" not in checked.source


def test_a_test_made_only_of_unknown_names_is_rejected():
    checked = check("def test_x():\n    assert helper(Account('a')) == frobnicate\n")
    assert checked.problems == ["uses undefined names frobnicate, helper"]


def test_statements_reading_unknown_names_go_with_what_depended_on_them():
    """A test cut off at the token limit ends in a name cut short (`add_t` for `add`); a string that
    lost its quotes reads as a name: those statements go, the rest of the test runs."""
    checked = check("def test_x():\n    assert add(1, 2) == 3\n    value = add(adb, 1)\n    assert value == 2\n"
                    "    assert add(2, 2) == 4\n    assert add_t")
    assert checked.problems == []
    assert checked.source == "def test_x():\n    assert add(1, 2) == 3\n    assert add(2, 2) == 4"
    assert checked.repaired[-2:] == ["removed 2 statements reading undefined names adb, add_t",
                                     "removed 1 statement reading undefined name value"]


def test_raises_calls_become_blocks_that_repair_can_read():
    checked = check("    def test_x(self):\n        pytest.raises(ValueError, add, 1, b=2, match='no')\n"
                    "        self.assertRaises(KeyError, Account('a').deposit, -1)\n")
    assert checked.source == ("    def test_x(self):\n        with pytest.raises(ValueError, match='no'):\n"
                              "            add(1, b=2)\n        with self.assertRaises(KeyError):\n"
                              "            Account('a').deposit(-1)\n")
    assert "2 raises calls written as a `with` block" in checked.repaired


def test_a_star_import_is_trusted():
    assert check("def test_x():\n    assert helper()\n", context="from bank.account import *\n").problems == []


def test_parameters_no_fixture_provides_are_removed(tmp_path):
    (tmp_path / "conftest.py").write_text("import pytest\n\n@pytest.fixture(name='bank')\ndef make():\n    return 1\n")
    (tmp_path / "tests").mkdir()
    fixtures = conftest_fixtures(tmp_path / "tests" / "test_a.py", tmp_path)
    assert fixtures == {"bank"}
    checked = check("def test_ordinal(ordinal: TypeAlias, tmp_path, bank, n=3):\n    assert add(n, bank)\n",
                    fixtures=fixtures)
    assert checked.source.startswith("def test_ordinal(tmp_path, bank, n=3):\n")
    assert checked.repaired[0] == "removed parameter ordinal: no fixture provides it"


def test_parametrized_parameters_and_methods_are_kept():
    source = ("@pytest.mark.parametrize('a, b', [(1, 2)])\ndef test_x(a, b):\n    assert add(a, b) == 3\n")
    assert check(source).source == source
    method = "    def test_x(self):\n        assert add(1, 2) == 3\n"
    assert check(method).source == method


def test_a_table_driven_loop_is_written_out_row_by_row():
    checked = check("def test_x():\n"
                    "    cases = [\n        (1, 2),\n        (5, 6),\n    ]\n"
                    "    for amount, expected in cases:\n"
                    "        assert Account('a', 1).deposit(amount) == expected, f'deposit {amount}'\n"
                    "    for name in ['a', 'b']:\n        assert Account(name).owner == name\n")
    assert checked.source == ("def test_x():\n"
                              "    assert Account('a', 1).deposit(1) == 2\n"
                              "    assert Account('a', 1).deposit(5) == 6\n"
                              "    assert Account('a').owner == 'a'\n"
                              "    assert Account('b').owner == 'b'\n")
    assert checked.repaired == ["2 table-driven loops written out row by row"]


def test_a_loop_that_is_not_a_plain_table_stays_a_loop():
    for source in [
        # the table is used again after the loop
        "def test_x():\n    cases = [1, 2]\n    for n in cases:\n        assert add(n, 0) == n\n    assert len(cases) == 2\n",
        # the loop breaks out early
        "def test_x():\n    for n in [1, 2]:\n        if n > 1:\n            break\n        assert add(n, 0) == n\n",
        # rows of another width than the loop's names
        "def test_x():\n    for a, b in [(1, 2), (3,)]:\n        assert add(a, 0) == a\n",
    ]:
        assert check(source).source == source


def test_an_assertion_comparing_a_value_with_itself_becomes_a_placeholder_for_repair():
    checked = check("def test_x():\n    account = Account('a', 1)\n    assert Account('a', 1) == Account('a', 1)\n"
                    "    assert account == account, 'same'\n    assert account != Account('b', 1)\n")
    assert checked.source == ("def test_x():\n    account = Account('a', 1)\n    assert Account('a', 1) == None\n"
                              "    assert account == None\n    assert account != Account('b', 1)\n")
    assert checked.repaired == [
        "`Account('a', 1)` was compared with itself; its check now expects the value observed when run",
        "`account` was compared with itself; its check now expects the value observed when run"]
    unittest_style = check("    def test_x(self):\n        self.assertEqual(add(1, 2), add(1, 2))\n")
    assert unittest_style.source == "    def test_x(self):\n        self.assertEqual(add(1, 2), None)\n"
