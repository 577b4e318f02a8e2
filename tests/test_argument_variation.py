"""Candidates with other arguments (`unitune.argument_variation`): the delivered tests' calls to the
focal function with one argument changed, after only the set-up they still need."""

from __future__ import annotations

from unitune.argument_variation import varied_bodies

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
    assert calls == ["assert account.deposit(0) == None", "assert account.deposit(-1) == None",
                     "assert account.deposit(None) == None", "assert account.deposit('1') == None"]
    # the set-up the call needs, and nothing after the call or that it does not read
    assert bodies[0] == '    owner = "ada"\n    account = Account(owner)\n    assert account.deposit(0) == None\n'


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
    bodies = varied_bodies([(source, "test_deposit")], ("deposit",), "", limit=2)
    assert bodies == ['account = Account("Alice", 100)\nassert account.deposit(0) == None\n',
                      'account = Account("Alice", 100)\nassert account.deposit(-1) == None\n']


def test_tests_that_cannot_be_varied_give_nothing():
    no_arguments = "def test_now():\n    assert clock.now() == 0\n"
    other_function = "def test_other():\n    assert add(1, 2) == 3\n"
    unittest_method = "def test_deposit(self):\n    self.assertEqual(self.account.deposit(5), 5)\n"
    tests = [(no_arguments, "test_now"), (other_function, "test_other"), (unittest_method, "test_deposit")]
    assert varied_bodies(tests, ("now", "deposit"), "    ") == []
