"""Assured Java tests (`validate = "run"` with JUnit 5): compile, run, repair from JUnit's reports,
three runs. Written completions for the example's Account.deposit, as the model would write them
after the prompt's opening."""

from __future__ import annotations

import pytest

from unitune.assured.delivery import deliver
from unitune.request import GenerationRequest, prepare
from unitune.errors import GenerationFailed
from unitune.prompt import build_prompt
from unitune.settings import Settings
from unitune.assured.java_runner import jacoco_jars, java_available

pytestmark = pytest.mark.skipif(bool(java_available()), reason=java_available() or "")


def run(project, completions, repair="observe"):
    path = project / "java" / "src" / "main" / "java" / "com" / "example" / "bank" / "Account.java"
    offset = path.read_text().index("public int deposit")
    request = GenerationRequest(path, offset, Settings(validate="run", repair=repair), project_root=project / "java")
    prepared = prepare(request)
    file, function, location = prepared.file, prepared.function, prepared.location
    framework, existing = prepared.framework, prepared.existing_test
    prompt = build_prompt(file, function, framework=framework, module_import=location.module_import,
                          existing_test_source=existing)
    return deliver(request, prepared, prompt, completions, [], lambda *args: None)


@pytest.mark.slow
def test_java_tests_are_compiled_run_and_repaired(example_project):
    delivery = run(example_project, [
        '        Account account = new Account("ann", 100);\n'
        '        assertEquals(100, account.deposit(50));\n'
        '        account.deposit(-5);\n'
        '    }\n',
        '        Account account = new Account("bob", 1);\n'
        '        assertEquals(2, account.deposit(1, 2, 3));\n'  # does not compile: dropped, the other kept
        '    }\n',
    ])
    assert len(delivery.kept) == 1
    source = delivery.kept[0].source
    assert "assertEquals(150, account.deposit(50));" in source
    assert "assertThrows(IllegalArgumentException.class, () -> account.deposit(-5));" in source
    assert "// expected value observed by running the code (regression oracle)" in source
    assert delivery.kept[0].adds.startswith("passed 3 runs")
    if jacoco_jars():  # JaCoCo: both branches of deposit's check, four of its lines
        assert delivery.kept[0].adds == "passed 3 runs; covers 4/4 lines, 2/2 branches"
    problems = [p for test in delivery.rejected for p in test.problems]
    assert any(p.startswith("does not compile:") for p in problems), problems


@pytest.mark.slow
def test_a_failing_java_test_is_dropped_without_repair(example_project):
    with pytest.raises(GenerationFailed) as failure:
        run(example_project, ['        assertEquals(3, new Account("ann", 1).deposit(1));\n    }\n'], repair="none")
    assert "failed when run" in str(failure.value) and "nothing was inserted" in str(failure.value)


@pytest.mark.slow
@pytest.mark.skipif(not jacoco_jars(), reason="JaCoCo is not installed (Debian: libjacoco-java)")
def test_a_java_test_that_adds_no_coverage_is_dropped(example_project):
    delivery = run(example_project, [
        '        assertEquals(2, new Account("ann", 1).deposit(1));\n    }\n',
        '        assertEquals(7, new Account("bob", 5).deposit(2));\n    }\n',  # the same lines and branch
    ])
    assert len(delivery.kept) == 1
    assert any("adds no line, branch or killed mutant" in p for t in delivery.rejected for p in t.problems)
