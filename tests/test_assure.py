"""Assured tests (`validate = "run"`): each stage on written completions for the example project,
as the model would write them after the prompt's opening: checks, the run, oracle repair, three
runs (flaky tests dropped), coverage and mutants, selection; nothing delivered when nothing survives."""

from __future__ import annotations

import pytest

from unitune.assured.delivery import deliver
from unitune.request import GenerationRequest, prepare
from unitune.errors import GenerationFailed
from unitune.insertion import apply, plan_insertion
from unitune.prompt import build_prompt
from unitune.settings import Settings
from unitune.stopping import MAX_SAME_SHAPE

pytestmark = pytest.mark.usefixtures("home")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "home"))


def run(project, completions, *, line, repair="observe", notes=None):
    """Deliver `completions` for the function at `line` of the example account module: (kept,
    rejected, the test file as it would be written)."""
    path = project / "python" / "bank" / "account.py"
    text = path.read_text()
    offset = len("".join(text.splitlines(keepends=True)[: line - 1]).encode())
    request = GenerationRequest(path, offset, Settings(validate="run", repair=repair), project_root=project / "python")
    prepared = prepare(request)
    file, function, location = prepared.file, prepared.function, prepared.location
    framework, existing = prepared.framework, prepared.existing_test
    prompt = build_prompt(file, function, framework=framework, module_import=location.module_import,
                          existing_test_source=existing)
    delivery = deliver(request, prepared, prompt, completions, notes if notes is not None else [], lambda *args: None)
    kept, rejected, header = delivery.kept, delivery.rejected, delivery.header
    plan = plan_insertion(location, existing, kept, language="python", framework=framework, header=header,
                          test_class=prompt.test_class)
    return kept, rejected, apply(existing, plan)


DEPOSIT_LINE = 15  # inside Account.deposit
INIT_LINE = 12  # inside Account.__init__


@pytest.mark.slow
def test_a_wrong_expected_value_and_an_unexpected_raise_are_repaired(example_project):
    kept, rejected, text = run(example_project, [
        '    account = Account("ann", 100)\n'
        '    assert account.deposit(50) == 100\n'
        '    assert account.deposit(-50) == 150\n'
    ], line=DEPOSIT_LINE)
    # two behaviours, two tests, each with the set-up it needs
    assert [test.name for test in kept] == ["test_deposit_50", "test_deposit_raises_value_error"]
    assert 'account = Account("ann", 100)\n    # expected value observed by running the code (regression oracle)\n' \
           "    assert account.deposit(50) == 150\n" in kept[0].source
    assert "with pytest.raises(ValueError):\n        account.deposit(-50)" in kept[1].source
    assert "deposit(50)" not in kept[1].source
    assert any("now expects ValueError" in note for note in kept[1].repaired)  # the note goes with its code
    assert not any("now expects ValueError" in note for note in kept[0].repaired)
    assert "import pytest" in text
    assert kept[0].adds.startswith("covers 3/4 lines, 1/2 branches, kills ")
    assert kept[1].adds.startswith("covers 2/4 lines, 1/2 branches, kills ")


@pytest.mark.slow
def test_a_statement_that_still_fails_is_removed_with_what_depends_on_it(example_project):
    kept, _, _ = run(example_project, [
        '    account = Account("ann", 100)\n'
        '    assert account.deposit(50) == 150\n'
        '    result = account.deposit("ten")\n'  # a wrong argument type among good calls
        '    assert result == 160\n'
        '    with pytest.raises(ValueError):\n        account.deposit(0)\n'
    ], line=DEPOSIT_LINE)
    sources = "".join(test.source for test in kept)
    assert '"ten"' not in sources and "result" not in sources
    assert "assert account.deposit(50) == 150" in sources and "account.deposit(0)" in sources
    assert any("removed `result = account.deposit(\"ten\")`: it raised TypeError" in note for note in kept[0].repaired)


@pytest.mark.slow
def test_a_misspelt_method_is_renamed_to_the_one_close_name_it_has(example_project):
    kept, _, _ = run(example_project, [
        '    account = Account("ann", 1)\n'
        '    assert account.deposits(1) == 2\n'  # Account has deposit (and nothing else close)
    ], line=DEPOSIT_LINE)
    assert "assert account.deposit(1) == 2" in kept[0].source
    assert any("`.deposits` does not exist; renamed to `.deposit`" in note for note in kept[0].repaired)


@pytest.mark.slow
def test_a_test_that_never_runs_the_function_is_not_delivered(example_project):
    # calling the method on the class fails before its first line: the test passes, and tests nothing
    with pytest.raises(GenerationFailed) as failure:
        run(example_project, ['    with pytest.raises(TypeError):\n        Account.deposit(amount=5)\n'],
            line=DEPOSIT_LINE)
    assert "runs none of the function's lines and catches no mutant" in str(failure.value)


@pytest.mark.slow
def test_a_later_candidate_delivered_alone_gets_the_plain_name(example_project):
    kept, rejected, _ = run(example_project, [
        '    assert 1 + 1 == 2\n',  # never calls deposit: dropped
        '    assert Account("ann", 1).deposit(1) == 2\n',  # test_deposit_2 as a candidate
    ], line=DEPOSIT_LINE)
    assert [test.name for test in kept] == ["test_deposit"]
    assert kept[0].source.startswith("def test_deposit():")


@pytest.mark.slow
def test_a_constructor_is_tested_through_its_class(example_project):
    # Account.__init__ runs when Account(...) is called: that is calling the focal method
    kept, _, _ = run(example_project, ['    assert Account("ann", 5).balance == 5\n'], line=INIT_LINE)
    assert kept[0].name == "test_init" and 'Account("ann", 5).balance == 5' in kept[0].source


@pytest.mark.slow
def test_an_import_added_for_a_statement_that_was_removed_goes_too(example_project):
    kept, _, text = run(example_project, [
        '    assert add(1, 2) == 3\n'  # `add` is imported by the checks, then adds nothing to deposit
        '    assert Account("ann", 1).deposit(1) == 2\n'
    ], line=DEPOSIT_LINE)
    assert "add(1, 2)" not in kept[0].source
    assert "import add" not in text and "from bank.account import Account" in text


VISITS = '''"""Visits, counted in a file of the working folder: a different answer every time."""
import os


def visit(path="visits.txt"):
    count = int(open(path).read()) + 1 if os.path.exists(path) else 1
    with open(path, "w") as handle:
        handle.write(str(count))
    if count > 1000:
        return 0
    return count
'''


@pytest.mark.slow
def test_an_observed_value_contradicted_when_run_again_is_removed(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'visits'\n")
    (tmp_path / "visits.py").write_text(VISITS)
    kept, _, _ = run_module(tmp_path, "visits.py", "def visit", [
        "    assert visit() == 7\n"
        '    assert visit("other.txt") >= 1\n'
    ])
    assert len(kept) == 1
    assert "assert visit() ==" not in kept[0].source and 'assert visit("other.txt") >= 1' in kept[0].source
    assert any("the value an earlier run gave was contradicted when run again" in note for note in kept[0].repaired)


QUANTITIES = '''"""A newcomer's own parser."""


def parse_quantity(text):
    text = text.strip()
    if not text:
        raise ValueError("empty")
    parts = text.split()
    number = int(parts[0])
    if len(parts) > 1 and parts[1] == "dozen":
        number *= 12
    if number < 0:
        raise ValueError("negative")
    return number
'''


@pytest.mark.slow
def test_a_bloated_test_becomes_small_tests_one_per_behaviour(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'quantities'\n")
    (tmp_path / "quantities.py").write_text(QUANTITIES)
    # one assertion shape as often as the stop rule lets a model write it (`MAX_SAME_SHAPE`, "2 dozen" included)
    repeated = "".join(f'    assert parse_quantity("1{"0" * n}") == 1{"0" * n}\n' for n in range(1, MAX_SAME_SHAPE - 1))
    kept, rejected, text = run_module(tmp_path, "quantities.py", "def parse_quantity", [
        '    assert parse_quantity("3") == 3\n' + repeated +
        '    assert parse_quantity("2 dozen") == 2\n'
        '    with pytest.raises(ValueError):\n        parse_quantity("-4")\n'
    ])
    assertions = [line for test in kept for line in test.source.splitlines() if "assert " in line or "raises" in line]
    assert 2 <= len(kept) <= 4 and len(assertions) <= 5, text
    assert sum('("10' in line for line in assertions) == 0  # the repeated pattern added nothing
    assert any("assert parse_quantity(\"2 dozen\") == 24" in test.source for test in kept)  # repaired, kept
    assert len({test.name for test in kept}) == len(kept)
    assert any(test.name.endswith("raises_value_error") for test in kept)
    assert any("split from test_parse_quantity" in note for test in kept for note in test.repaired)


MONEY = '''"""A value with equality and a text form."""


class Money:
    def __init__(self, amount, currency="EUR"):
        if amount < 0:
            raise ValueError("negative")
        self.amount = amount
        self.currency = currency

    def __eq__(self, other):
        return (self.amount, self.currency) == (other.amount, other.currency)

    def __str__(self):
        return f"{self.amount} {self.currency}"
'''


@pytest.mark.slow
def test_a_value_compared_with_itself_is_checked_against_what_it_shows(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'money'\n")
    (tmp_path / "money.py").write_text(MONEY)
    kept, _, _ = run_module(tmp_path, "money.py", "if amount < 0", ["    assert Money(5) == Money(5)\n"])
    assert len(kept) == 1 and "assert str(Money(5)) == '5 EUR'" in kept[0].source, kept[0].source
    assert "Money(5) == Money(5)" not in kept[0].source
    assert any("was compared with itself" in note for note in kept[0].repaired)


@pytest.mark.slow
def test_the_note_on_a_value_compared_with_itself_goes_with_the_split_test_that_checks_it(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'money'\n")
    (tmp_path / "money.py").write_text(MONEY)
    kept, _, _ = run_module(tmp_path, "money.py", "if amount < 0", [
        "    with pytest.raises(ValueError):\n        Money(-1)\n    assert Money(5) == Money(5)\n"])
    assert len(kept) == 2, [test.source for test in kept]
    checking = next(test for test in kept if "str(Money(5))" in test.source)
    raising = next(test for test in kept if "Money(-1)" in test.source)
    assert any("`Money(5)` was compared with itself" in note for note in checking.repaired), checking.repaired
    assert not any("compared with itself" in note for note in raising.repaired), raising.repaired


def run_module(project, module_rel, anchor, completions):
    """Deliver `completions` for the function at `anchor` in `module_rel` of `project`: (kept, rejected, file)."""
    path = project / module_rel
    request = GenerationRequest(path, path.read_text().index(anchor), Settings(validate="run"), project_root=project)
    prepared = prepare(request)
    file, function, location = prepared.file, prepared.function, prepared.location
    framework, existing = prepared.framework, prepared.existing_test
    prompt = build_prompt(file, function, framework=framework, module_import=location.module_import,
                          existing_test_source=existing)
    delivery = deliver(request, prepared, prompt, completions, [], lambda *args: None)
    plan = plan_insertion(location, existing, delivery.kept, language="python", framework=framework,
                          header=delivery.header, test_class=prompt.test_class)
    return delivery.kept, delivery.rejected, apply(existing, plan)


@pytest.mark.slow
def test_repair_drop_removes_what_failed_and_keeps_what_held(example_project):
    kept, _, _ = run(example_project, [
        '    account = Account("ann", 100)\n'
        '    assert account.deposit(50) == 150\n'
        '    assert account.balance == 7\n'
    ], line=DEPOSIT_LINE, repair="drop")
    assert "assert account.deposit(50) == 150" in kept[0].source
    assert "account.balance == 7" not in kept[0].source


@pytest.mark.slow
def test_repair_none_drops_a_failing_test_and_nothing_is_delivered(example_project):
    with pytest.raises(GenerationFailed) as failure:
        run(example_project, ['    assert Account("ann", 1).deposit(1) == 3\n'], line=DEPOSIT_LINE, repair="none")
    assert "nothing was inserted" in str(failure.value)
    assert "failed when run" in str(failure.value)


def test_a_test_that_cannot_be_repaired_is_dropped(example_project):
    with pytest.raises(GenerationFailed) as failure:
        run(example_project, ['    assert Account("ann", 1).deposit(1) == helper_that_does_not_exist()\n'],
            line=DEPOSIT_LINE)
    assert "uses undefined name helper_that_does_not_exist" in str(failure.value)


@pytest.mark.slow
def test_checks_before_running(example_project):
    notes: list[str] = []
    kept, rejected, text = run(example_project, [
        '    assert 1 + 1 == 2\n',  # never calls deposit
        '    Account("ann", 1).deposit(1)\n',  # asserts nothing
        '    assert Account("ann", 1).deposit(math.floor(2.5)) == 3\n',  # math: import added
    ], line=DEPOSIT_LINE, notes=notes)
    problems = {problem for test in rejected for problem in test.problems}
    assert "does not call deposit" in problems
    assert "asserts nothing" in problems
    assert [test.repaired for test in kept] == [["added `import math`"]]
    assert "import math" in text


@pytest.mark.slow
def test_a_parameter_no_fixture_provides_is_removed(example_project):
    project = example_project / "python"
    (project / "conftest.py").write_text("import pytest\n\n\n@pytest.fixture\ndef rich():\n"
                                                    "    from bank.account import Account\n    return Account('r', 1000)\n")
    path = project / "bank" / "account.py"
    text = path.read_text()
    offset = text.index("def deposit")
    request = GenerationRequest(path, offset, Settings(validate="run"), project_root=project)
    prepared = prepare(request)
    file, function, location = prepared.file, prepared.function, prepared.location
    framework, existing = prepared.framework, prepared.existing_test
    prompt = build_prompt(file, function, framework=framework, module_import=location.module_import,
                          existing_test_source=existing, prefix="def test_deposit(rich, amount: int")
    kept = deliver(request, prepared, prompt, ["):\n    assert rich.deposit(5) == 1005\n"], [], lambda *a: None).kept
    assert kept[0].source.startswith("def test_deposit(rich):")
    assert kept[0].repaired == ["removed parameter amount: no fixture provides it"]


@pytest.mark.slow
def test_a_flaky_test_is_dropped(example_project):
    with pytest.raises(GenerationFailed) as failure:
        run(example_project, [
            '    import os, tempfile\n'
            '    marker = os.path.join(tempfile.gettempdir(), "unitune-flaky")\n'
            '    first = not os.path.exists(marker)\n'
            '    open(marker, "w").close()\n'
            '    assert Account("ann", 1).deposit(1) == 2\n'
            '    assert first\n'
        ], line=DEPOSIT_LINE)
    assert "flaky: passed, then failed when run again" in str(failure.value)


@pytest.mark.slow
def test_only_tests_that_add_coverage_or_kill_mutants_are_delivered(example_project):
    kept, rejected, _ = run(example_project, [
        '    assert Account("ann", 1).deposit(1) == 2\n',
        '    assert Account("bob", 5).deposit(2) == 7\n',  # the same lines, the same mutants
        '    with pytest.raises(ValueError):\n        Account("cy", 1).deposit(0)\n',  # the raise branch
    ], line=DEPOSIT_LINE)
    assert len(kept) == 2
    assert {"raise" in test.source for test in kept} == {True, False}
    dropped = [test for test in rejected if any("adds no line, branch or killed mutant" in p for p in test.problems)]
    assert len(dropped) == 1
    assert all(test.adds for test in kept)


def test_variants_go_on_only_when_their_first_run_reaches_what_the_others_do_not():
    """A variation round tries many calls and measures in full only the few that reach more: what a
    failing placeholder check reached is known after its first run."""
    from unitune.assured.sessions import screened
    from unitune.assured.sessions import Failure, Measured, TestValue
    from unitune.assured.postprocess import GeneratedTest

    def test(name: str) -> GeneratedTest:
        return GeneratedTest(name, f"def {name}():\n    assert f(1) == None\n", "python", True)

    earlier, same, guard, else_arm, both, passing = (test(name) for name in ("test_f", "test_same", "test_guard",
                                                                            "test_else", "test_both", "test_none"))
    measured = Measured(values={"test_f": TestValue({1, 2}, {(1, 2)}), "test_none": TestValue({1, 2}, {(1, 2)})})
    measured.failures = {
        "test_same": Failure("failed", "assert 2 == None", reached=({1, 2}, {(1, 2)})),  # what test_f runs
        "test_guard": Failure("failed", "ValueError", reached=({1, 3}, {(1, 3)})),  # the guard: 2 new
        "test_else": Failure("failed", "assert 5 == None", reached=({1, 4}, {(1, 4)})),  # the else arm: 2 new
        "test_both": Failure("failed", "assert 0 == None", reached=({1, 3, 4}, {(1, 3), (1, 4)})),  # 4 new
    }
    kept = screened([earlier, same, guard, else_arm, both, passing], measured, most=12)
    # the one reaching most goes on; what it leaves to the others is nothing; passing tests are untouched
    assert [t.name for t in kept] == ["test_f", "test_both", "test_none"]
    assert set(measured.failures) == {"test_both"}  # the others are not repaired or measured
    measured.failures = {"test_guard": Failure("failed", "", reached=({3}, set())),
                         "test_else": Failure("failed", "", reached=({4, 5}, set()))}
    assert [t.name for t in screened([guard, else_arm], measured, most=1)] == ["test_else"]  # the larger gain


def generate_deposit_test(model, example_project, time_budget: int, stages: list[str] | None = None,
                          on_delivered=None):
    """What `TestGenerator` delivers for the example's Account.deposit with `model` (progress messages
    into `stages`; the tests as they come to `on_delivered`)."""
    from unitune.runtime.loading import ModelSpec
    from unitune.runtime.runtime import ModelRuntime
    from unitune.generation.service import TestGenerator

    project = example_project / "python"
    path = project / "bank" / "account.py"
    settings = Settings(model=str(model), validate="run", time_budget=time_budget)
    request = GenerationRequest(path, path.read_text().index("def deposit"), settings, project_root=project,
                                on_delivered=on_delivered)
    report = (lambda stage, fraction, message: stages.append(message)) if stages is not None else None
    return TestGenerator(ModelRuntime(ModelSpec.from_settings(settings))).generate(request, on_progress=report)


@pytest.mark.slow
def test_other_arguments_reach_the_guard_the_model_left_unrun(trained_base, example_project):
    stages = []
    outcome = generate_deposit_test(trained_base, example_project, 600, stages)
    assert any("calls with other arguments, for lines 17" in message for message in stages), stages
    assert len(outcome.tests) == 2
    raising = outcome.tests[1]
    assert "pytest.raises(ValueError)" in raising.source and "account.deposit(0)" in raising.source
    assert any("`account.deposit(0)` raised ValueError when run" in note for note in raising.repaired), raising.repaired
    assert raising.adds.startswith("covers 2/4 lines")
    assert "variation_round_1" in outcome.timings and "variation_round_2" not in outcome.timings  # nothing left unrun


@pytest.mark.slow
def test_the_first_test_is_handed_over_before_the_rounds_that_add_more(trained_base, example_project):
    stages, handed = [], []
    outcome = generate_deposit_test(trained_base, example_project, 600, stages,
                                    lambda partial: handed.append((len(stages), [test.name for test in partial.tests])))
    assert [names for _, names in handed] == [["test_deposit"], ["test_deposit_raises_value_error"]]
    (first_at, _), (second_at, _) = handed
    assert not any("calls with other arguments" in message for message in stages[:first_at]), stages
    assert any("calls with other arguments" in message for message in stages[first_at:second_at]), stages
    assert [test.name for test in outcome.tests] == ["test_deposit", "test_deposit_raises_value_error"]
    assert outcome.timings["first_test"] < outcome.timings["total"]


@pytest.mark.slow
def test_the_command_line_writes_each_test_as_it_is_delivered(trained_base, example_project, capsys):
    from unitune.cli import main

    path = example_project / "python" / "bank" / "account.py"
    line = path.read_text()[:path.read_text().index("def deposit")].count("\n") + 1
    assert main(["generate", str(path), "--line", str(line), "--model", str(trained_base), "--write"]) == 0
    out, err = capsys.readouterr()
    test_file = example_project / "python" / "tests" / "test_account.py"
    assert out.strip() == str(test_file)  # the path, once, when the first test was written
    first, more = err.index("unitune: first test(s) after"), err.index("unitune: more test(s) after")
    assert first < more and "test_deposit" in err[first:more] and "test_deposit_raises_value_error" not in err[first:more]
    assert "test_deposit_raises_value_error" in err[more:]
    text = test_file.read_text()
    assert text.count("import pytest") == 1 and "def test_deposit():" in text and "def test_deposit_raises_value_error" in text


@pytest.mark.slow
def test_no_round_of_other_arguments_past_the_time_budget(trained_base, example_project, monkeypatch):
    import time
    from types import SimpleNamespace

    from unitune.generation import service

    # The generator's clock runs ten times fast: as on a machine ten times slower, the first round leaves
    # no time for a second within the least budget (a fast CPU did both rounds within 5 s).
    monkeypatch.setattr(service, "time", SimpleNamespace(perf_counter=lambda: 10 * time.perf_counter()))
    outcome = generate_deposit_test(trained_base, example_project, 5)
    assert len(outcome.tests) == 1
    assert any("no time left for another round within time_budget = 5 s" in note for note in outcome.notes)


#: What the tiny model writes first: a test that never calls deposit, so nothing survives the checks.
OFF_TARGET_COMPLETION = '    assert Account("ada").balance == 0\n\n\ndef test_other():\n'


@pytest.fixture(scope="module")
def retry_model(tmp_path_factory):
    """A tiny model trained to answer the first prompt for Account.deposit with a test that does not
    call it, and the retry prompt (which says so) with a test that does."""
    import tinymodels
    from conftest import PY_COMPLETION, PY_FOCAL, example_prompt
    from unitune.assured.delivery import failure_hint

    hint = failure_hint(["does not call deposit"], "deposit")
    pairs = [(example_prompt(*PY_FOCAL).text, OFF_TARGET_COMPLETION),
             (example_prompt(*PY_FOCAL, failure=hint).text, PY_COMPLETION)]
    return tinymodels.overfit_model(tmp_path_factory.mktemp("models") / "retry", pairs, steps=600)


@pytest.mark.slow
def test_when_nothing_survives_a_new_round_is_told_what_went_wrong(retry_model, example_project):
    from unitune.generation.service import RETRY_CANDIDATES

    stages = []
    outcome = generate_deposit_test(retry_model, example_project, 600, stages)
    assert f"round 2: {RETRY_CANDIDATES} new candidates (the test did not call deposit: the next one calls it " \
           "and checks what it returns)" in stages
    assert "assert account.deposit(5) == 5" in outcome.tests[0].source
    assert any(note.startswith("round 2 delivered; before it, 1 candidate (greedy), dropped: does not call deposit")
               for note in outcome.notes), outcome.notes
    assert "retry_round_1" in outcome.timings


@pytest.mark.slow
def test_a_name_the_focal_module_defines_is_imported_not_removed(example_project, home):
    """`InsufficientFunds`, an exception class of the focal module with no method of its own, was taken
    for an undefined name: the statement using it was removed instead of the import added."""
    line = next(number for number, text in enumerate(
        (example_project / "python" / "bank" / "account.py").read_text().splitlines(), 1) if "def withdraw" in text) + 1
    completion = ("    account = Account('a', 5)\n    with pytest.raises(InsufficientFunds):\n"
                  "        account.withdraw(10)\n")
    kept, rejected, text = run(example_project, [completion], line=line)
    assert kept, [test.problems for test in rejected]
    assert "from bank.account import InsufficientFunds" in text or "InsufficientFunds" in text.split("def test")[0]
    assert "with pytest.raises(InsufficientFunds):" in text
