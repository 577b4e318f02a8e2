"""Checks before a generated Python test runs (`unitune.checks`): names resolve as the compiler
resolves them, missing imports are added where clear, parameters no fixture provides are removed."""

from __future__ import annotations

from unitune.checks import check_python_test, conftest_fixtures

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


def test_an_unknown_name_rejects_the_test():
    checked = check("def test_x():\n    assert helper(Account('a')) == frobnicate\n")
    assert checked.problems == ["uses undefined names frobnicate, helper"]


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
