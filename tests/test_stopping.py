"""Where a generated Python test ends when the model starts repeating itself (`unitune.stopping`):
the test stops before the line that repeats, whether the text arrives whole or token by token."""

from __future__ import annotations

import ast

import pytest

from unitune.stopping import MAX_CHECKS, MAX_SAME_SHAPE, StopScanner, end_of_test


def ended(completion: str) -> str:
    """The completion (the body of `def test_x():`) up to where the test ends; checks that feeding it
    piece by piece, as generation does, ends at the same place."""
    whole = end_of_test("python", completion, 0, in_signature=False)
    scanner = StopScanner("python", 0, in_signature=False)
    piecewise = None
    for index in range(0, len(completion), 3):
        piecewise = scanner.feed(completion[index:index + 3])
        if piecewise is not None:
            break
    assert piecewise == whole
    return completion[:whole] if whole is not None else completion


def parses(body: str) -> bool:
    try:
        ast.parse("def test_x():\n" + body)
    except SyntaxError:
        return False
    return True


def test_a_pattern_repeated_with_new_constants_ends_the_test():
    lines = [f'    assert parse_quantity("1{"0" * n}") == 1{"0" * n}\n' for n in range(1, 14)]
    kept = ended("    assert parse_quantity(\"3\") == 3\n" + "".join(lines))
    assert kept.count("assert") == MAX_SAME_SHAPE
    assert parses(kept)


def test_a_statement_written_again_word_for_word_ends_the_test():
    kept = ended("    account = Account('a', 1)\n    assert account.deposit(2) == 3\n"
                 "    account = Account('a', 1)\n    assert account.deposit(5) == 6\n")
    assert kept == "    account = Account('a', 1)\n    assert account.deposit(2) == 3\n"


def test_blocks_with_the_same_first_line_and_other_bodies_go_on():
    body = ("    with pytest.raises(ValueError):\n        parse('')\n"
            "    with pytest.raises(ValueError):\n        parse('-1')\n"
            "    assert parse('2') == 2\n")
    assert ended(body) == body


def test_the_same_call_repeated_inside_blocks_ends_the_test_before_it():
    body = ("    for word in words:\n"
            "        with pytest.raises(ValueError):\n            camelize(word, True)\n"
            "        with pytest.raises(ValueError):\n            camelize(word, True)\n")
    kept = ended(body)
    assert kept.count("camelize(word, True)") == 1


def test_more_checks_than_one_behaviour_needs_end_the_test():
    body = "".join(f"    assert f({n}) == g({n}, 'x{n}')\n    assert h({n})\n" for n in range(12))
    kept = ended(body)
    assert kept.count("assert") == MAX_CHECKS
    assert parses(kept)


@pytest.mark.parametrize("body", [
    # distinct statements of a test that checks several cases, each once
    ('    account = Account("ann", 100)\n    assert account.deposit(50) == 150\n    assert account.balance == 150\n'
     "    with pytest.raises(ValueError):\n        account.deposit(-1)\n    assert account.withdraw(20) == 130\n"),
    # one shape, as often as a few cases need
    "".join(f"    assert is_prime({n}) is {n in (2, 3, 5)}\n" for n in range(2, 2 + MAX_SAME_SHAPE)),
])
def test_a_test_that_does_not_repeat_itself_is_left_whole(body):
    assert ended(body) == body
