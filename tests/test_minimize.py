"""Tests a person would keep (`unitune.assured.minimize`, `unitune.assured.test_statements`): from what each statement
of a passing test ran and caught, the statements that add nothing go, the set-up a kept check needs
stays, and several behaviours become several small tests, each named for what it checks."""

from __future__ import annotations

import ast

from unitune.assured.minimize import StatementValue as Value, shape
from unitune.assured.test_statements import dependents, needed_by, parse_body, render

ACCOUNT_TEST = '''\
def test_deposit():
    # an account with money
    account = Account("ann", 100)
    other = Account("bob")
    assert account.deposit(50) == 150
    account.withdraw(20)
    assert account.balance == 130
    assert other.balance == 0
'''


def test_what_a_statement_needs_and_what_depends_on_it():
    body = parse_body(ACCOUNT_TEST)
    # the balance check needs the account, the deposit (a check that changes it) and the withdrawal
    assert needed_by(body, {4}) == {0, 2, 3, 4}
    # a split test does not repeat another behaviour's check: whether it passes without it, a run says
    assert needed_by(body, {4}, through_checks=False) == {0, 3, 4}
    # removing the account removes everything that reads it, and nothing else
    assert dependents(body, {0}) == {0, 2, 3, 4}


def test_rendering_keeps_a_statements_comment_and_renames():
    body = parse_body("    " + ACCOUNT_TEST.replace("\n", "\n    ").rstrip(" "))
    text = render(body, {0, 2}, name="test_deposit_50")
    assert text == ('    def test_deposit_50():\n        # an account with money\n        account = Account("ann", 100)\n'
                    '        assert account.deposit(50) == 150\n')


REPEATING = '''\
def test_parse_quantity():
    assert parse_quantity("3") == 3
    assert parse_quantity("10") == 10
    assert parse_quantity("100") == 100
    result = parse_quantity("2 dozen")
    assert result == 24
    with pytest.raises(ValueError):
        parse_quantity("-1")
'''
PLAIN, DOZEN, NEGATIVE = {(1, 2), (2, 5)}, {(1, 2), (2, 3)}, {(1, 4)}


def values(**changes) -> dict[int, Value]:
    found = {0: Value({1, 2, 5}, set(PLAIN), {0}), 1: Value({1, 2, 5}, set(PLAIN), {0}),
             2: Value({1, 2, 5}, set(PLAIN), {0}), 3: Value({1, 2, 3}, set(DOZEN)), 4: Value(killed={2}),
             5: Value({1, 4}, set(NEGATIVE), {3})}
    for index, value in changes.items():
        found[int(index.lstrip("s"))] = value
    return found


def test_assertions_that_add_nothing_go_and_each_behaviour_becomes_a_test():
    shaped = shape(REPEATING, ("parse_quantity",), values())
    assert shaped.minimized_notes == ["removed 2 assertions that ran no new line or branch of parse_quantity and "
                                      "caught no new mutant"]
    assert list(shaped.split) == ["test_parse_quantity_3", "test_parse_quantity_2_dozen",
                                  "test_parse_quantity_raises_value_error"]
    assert shaped.split["test_parse_quantity_2_dozen"] == ('def test_parse_quantity_2_dozen():\n'
                                                           '    result = parse_quantity("2 dozen")\n'
                                                           '    assert result == 24\n')
    for source in shaped.split.values():
        ast.parse(source)
    assert '"10"' not in shaped.minimized and '"100"' not in shaped.minimized


def test_an_assertion_that_catches_a_mutant_no_other_does_stays():
    shaped = shape(REPEATING, ("parse_quantity",), values(s2=Value({1, 2, 5}, set(PLAIN), {0, 1})))
    assert 'parse_quantity("100") == 100' in shaped.split["test_parse_quantity_3"]  # same path, another mutant
    assert 'parse_quantity("10") == 10' not in shaped.minimized


def test_a_test_that_adds_all_it_has_on_one_path_is_left_alone():
    source = "def test_x():\n    assert f(1) == 2\n    assert f(2) == 3\n"
    shaped = shape(source, ("f",), {0: Value({1}, {(1, 2)}, {0}), 1: Value({1}, {(1, 2)}, {1})})
    assert shaped.minimized is None and shaped.split == {} and not shaped.changed


def test_with_nothing_measured_the_first_check_on_the_function_is_kept():
    shaped = shape("def test_x():\n    assert g(1)\n    assert f(1) == 2\n", ("f",), {})
    assert shaped.minimized == "def test_x():\n    assert f(1) == 2\n"


def test_names_fall_back_to_what_is_expected_when_the_arguments_name_two_behaviours_alike():
    source = ('def test_compare_2():\n    assert Version.parse("1.0.0").compare("2.0.0") == -1\n'
              '    assert Version.parse("2.0.0").compare("2.0.0") == 0\n')
    shaped = shape(source, ("compare",), {0: Value({1}, {(1, 2)}, {0}), 1: Value({1, 3}, {(1, 3)}, {1})})
    assert list(shaped.split) == ["test_compare_2_0_0", "test_compare_returns_zero"]  # not `_2` of a candidate
