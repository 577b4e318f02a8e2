"""Assured tests (`validate = "run"`): each stage on written completions for the example project,
as the model would write them after the prompt's opening: checks, the run, oracle repair, three
runs (flaky tests dropped), coverage and mutants, selection; nothing delivered when nothing survives."""

from __future__ import annotations

import pytest

from unitune.adapters.delivery import deliver
from unitune.adapters.request import GenerationRequest, prepare
from unitune.errors import GenerationFailed
from unitune.insertion import apply, plan_insertion
from unitune.prompt import build_prompt
from unitune.settings import Settings

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
    file, function, location, framework, existing = prepared
    prompt = build_prompt(file, function, framework=framework, module_import=location.module_import,
                          existing_test_source=existing)
    delivery = deliver(request, prepared, prompt, completions, notes if notes is not None else [], lambda *args: None)
    kept, rejected, header = delivery.kept, delivery.rejected, delivery.header
    plan = plan_insertion(location, existing, kept, language="python", framework=framework, header=header,
                          test_class=prompt.test_class)
    return kept, rejected, apply(existing, plan)


DEPOSIT_LINE = 15  # inside Account.deposit


@pytest.mark.slow
def test_a_wrong_expected_value_and_an_unexpected_raise_are_repaired(example_project):
    kept, rejected, text = run(example_project, [
        '    account = Account("ann", 100)\n'
        '    assert account.deposit(50) == 100\n'
        '    assert account.deposit(-50) == 150\n'
    ], line=DEPOSIT_LINE)
    assert [test.name for test in kept] == ["test_deposit"]
    source = kept[0].source
    assert "assert account.deposit(50) == 150" in source
    assert "with pytest.raises(ValueError):\n        account.deposit(-50)" in source
    assert "# expected value observed by running the code (regression oracle)" in source
    assert any("now expects ValueError" in note for note in kept[0].repaired)
    assert "import pytest" in text
    assert kept[0].adds.startswith("covers 4/4 lines, 2/2 branches, kills ")


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
    file, function, location, framework, existing = prepared
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


RAISE_LINE = '            raise ValueError("amount must be positive")'
RAISES_COMPLETION = '    with pytest.raises(ValueError):\n        Account("ada").deposit(0)\n\n\ndef test_other():\n'


@pytest.fixture(scope="module")
def coverage_model(tmp_path_factory):
    """A tiny model trained to answer the first prompt for Account.deposit with a test of its happy
    path, and the coverage prompt naming the `raise` line with a test that makes it run."""
    import tinymodels
    from conftest import PY_COMPLETION, PY_FOCAL, example_prompt
    from unitune.focal import require_focal_at
    from unitune.placement import locate_test_file
    from unitune.source import SourceFile, cli_offset
    from conftest import EXAMPLES

    path = EXAMPLES / PY_FOCAL[0]
    file = SourceFile.from_path(path)
    function = require_focal_at(file, cli_offset(file, PY_FOCAL[1], None))
    location = locate_test_file(path)
    coverage_prompt = build_prompt(file, function, framework=location.framework, module_import=location.module_import,
                                   uncovered=[RAISE_LINE])
    pairs = [(example_prompt(*PY_FOCAL).text, PY_COMPLETION), (coverage_prompt.text, RAISES_COMPLETION)]
    return tinymodels.overfit_model(tmp_path_factory.mktemp("models") / "coverage", pairs, steps=600)


@pytest.mark.slow
def test_a_coverage_round_asks_for_the_uncovered_lines_and_keeps_what_adds(coverage_model, example_project):
    from unitune.adapters.loading import ModelSpec
    from unitune.adapters.runtime import ModelRuntime
    from unitune.adapters.service import TestGenerator

    project = example_project / "python"
    path = project / "bank" / "account.py"
    settings = Settings(model=str(coverage_model), validate="run", time_budget=600)
    request = GenerationRequest(path, path.read_text().index("def deposit"), settings, project_root=project)
    stages = []
    outcome = TestGenerator(ModelRuntime(ModelSpec.from_settings(settings))).generate(
        request, on_progress=lambda stage, fraction, message: stages.append(message))
    assert any(message.startswith("round 2: a test for lines 17") for message in stages), stages
    assert len(outcome.tests) == 2
    assert "pytest.raises(ValueError)" in outcome.tests[1].source
    assert outcome.tests[1].adds.startswith("covers 2/4 lines")
    assert "coverage_round_1" in outcome.timings


@pytest.mark.slow
def test_no_coverage_round_past_the_time_budget(coverage_model, example_project, monkeypatch):
    import time
    from types import SimpleNamespace

    from unitune.adapters import service
    from unitune.adapters.loading import ModelSpec
    from unitune.adapters.runtime import ModelRuntime
    from unitune.adapters.service import TestGenerator

    # The generator's clock runs ten times fast: as on a machine ten times slower, the first round leaves
    # no time for a second within the least budget (a fast CPU did both rounds within 5 s).
    monkeypatch.setattr(service, "time", SimpleNamespace(perf_counter=lambda: 10 * time.perf_counter()))
    project = example_project / "python"
    path = project / "bank" / "account.py"
    settings = Settings(model=str(coverage_model), validate="run", time_budget=5)
    request = GenerationRequest(path, path.read_text().index("def deposit"), settings, project_root=project)
    outcome = TestGenerator(ModelRuntime(ModelSpec.from_settings(settings))).generate(request)
    assert len(outcome.tests) == 1
    assert any("no time left for another round within time_budget = 5 s" in note for note in outcome.notes)
