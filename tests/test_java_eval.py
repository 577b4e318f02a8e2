"""Running JUnit 5 tests of a Java project in the sandbox, and HumanEval-X Java problems."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from unitune.assured.java_runner import java_test_class
from unitune.evaluation.java_eval import FOCAL_REL, evaluate_java_problem, judge_java, load_humaneval_java, write_project
from unitune.assured.java_runner import java_available, junit_jar, run_java_tests

JAVA_MISSING = java_available()
needs_java = pytest.mark.skipif(JAVA_MISSING is not None, reason=f"Java tests cannot run here: {JAVA_MISSING}")

FOCAL = """package com.example;

public class Calculator {
    public int add(int a, int b) {
        return a + b;
    }

    public int spin() {
        while (true) { }
    }
}
"""
TEST = """package com.example;

import org.junit.jupiter.api.Test;
import static org.junit.jupiter.api.Assertions.*;

class CalculatorTest {
    @Test
    void testAdd() {
        assertEquals(%s, new Calculator().add(1, 2));
    }
}
"""
TEST_REL = "src/test/java/com/example/CalculatorTest.java"


@pytest.fixture
def project(tmp_path):
    focal = tmp_path / "src/main/java/com/example/Calculator.java"
    focal.parent.mkdir(parents=True)
    focal.write_text(FOCAL)
    return tmp_path


def run(project, test_text, timeout=30.0):
    return run_java_tests(project, "com.example.CalculatorTest", timeout, {TEST_REL: test_text})


@pytest.mark.slow
@needs_java
def test_a_passing_test_passes(project):
    result = run(project, TEST % "3")
    assert result.status == "passed", result.output
    assert (result.passed, result.failed) == (1, 0)


@pytest.mark.slow
@needs_java
def test_a_failing_assertion_fails(project):
    result = run(project, TEST % "4")
    assert result.status == "failed", result.output
    assert (result.passed, result.failed) == (0, 1)
    assert "expected: <4> but was: <3>" in result.output


@needs_java
def test_a_test_that_does_not_compile_is_a_compile_error(project):
    result = run(project, TEST % "new Calculator().nope()")
    assert result.status == "compile_error"
    assert "nope" in result.output and result.passed == 0


@pytest.mark.slow
@needs_java
def test_an_endless_loop_is_killed_at_the_timeout(project):
    result = run(project, (TEST % "3").replace("new Calculator().add(1, 2)", "new Calculator().spin()"), timeout=6)
    assert result.status == "timeout"
    assert 5 < result.duration < 15
    leftover = subprocess.run(["pgrep", "-f", "CalculatorTest"], capture_output=True, text=True)
    assert leftover.returncode == 1 and leftover.stdout.strip() == ""  # pgrep found no process left


@pytest.mark.slow
@needs_java
def test_the_project_itself_is_left_alone(project):
    run(project, TEST % "3")
    assert not (project / TEST_REL).exists()
    assert sorted(p.name for p in project.rglob("*") if p.is_file()) == ["Calculator.java"]


@pytest.mark.slow
@needs_java
def test_a_humaneval_java_problem_with_a_hand_written_test(tmp_path):
    problem = load_humaneval_java(1)[0]
    project = write_project(problem, tmp_path)
    assert (project / FOCAL_REL).read_text() == problem.module
    test = """package humaneval;

import org.junit.jupiter.api.Test;
import java.util.*;
import static org.junit.jupiter.api.Assertions.*;

class SolutionTest {
    @Test
    void testHasCloseElements() {
        assertTrue(new Solution().hasCloseElements(Arrays.asList(1.0, 2.8, 3.0), 0.3));
    }
}
"""
    result = judge_java(problem, project, "src/test/java/humaneval/SolutionTest.java", test, "testHasCloseElements", True)
    assert result.status == "passed" and result.passed and result.line_coverage is None
    silent = judge_java(problem, project, "src/test/java/humaneval/SolutionTest.java", test, "testHasCloseElements", False)
    assert silent.status == "passed" and not silent.passed  # asserts nothing: not a pass


def test_humaneval_java_problems_load():
    problems = load_humaneval_java()
    assert len(problems) == 164
    first = problems[0]
    assert first.id == "Java/0" and first.function == "Solution.hasCloseElements"
    assert first.module.startswith("package humaneval;\n\nimport java.util.*;") and "class Solution {" in first.module
    assert first.module.rstrip().endswith("}")
    assert problems[10].function == "Solution.makePalindrome"  # the declaration's last method, not its helper
    assert len(load_humaneval_java(5)) == 5


def test_test_class_name_includes_the_package():
    assert java_test_class("src/test/java/SolutionTest.java", "class SolutionTest {}") == "SolutionTest"
    assert java_test_class(TEST_REL, TEST) == "com.example.CalculatorTest"


def test_missing_java_is_reported_in_one_line(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert "javac" in java_available() and "\n" not in java_available()
    monkeypatch.undo()


def test_the_junit_jar_is_the_one_named_else_debians_else_none(monkeypatch, tmp_path):
    from unitune.assured import java_runner

    mine = tmp_path / "my-junit-console.jar"
    mine.write_bytes(b"PK")
    debian = tmp_path / "junit-platform-console-standalone.jar"
    debian.write_bytes(b"PK")
    monkeypatch.setattr(java_runner, "JUNIT_JAR_CANDIDATES", [str(tmp_path / "junit-platform-console-standalone*.jar")])
    monkeypatch.setenv("UNITUNE_JUNIT_JAR", str(mine))
    assert junit_jar() == mine
    monkeypatch.setenv("UNITUNE_JUNIT_JAR", "/nonexistent.jar")  # a wrong setting falls back to Debian's
    assert junit_jar() == debian
    debian.unlink()
    assert junit_jar() is None
    assert "apt-get install junit5" in java_available() or "javac" in java_available()


def test_eval_command_exits_2_without_java(monkeypatch, capsys):
    from unitune.assured import java_runner
    from unitune.commands import eval as eval_command

    monkeypatch.setattr(java_runner, "java_available", lambda: "javac not found: no JDK")
    parser_args = type("Args", (), {"dataset": "humaneval-java", "compare": None, "adapter": None})()
    assert eval_command.run_eval_command(parser_args) == 2
    err = capsys.readouterr().err.strip()
    assert err == "unitune eval: --dataset humaneval-java skipped: javac not found: no JDK"
    assert sys.modules["unitune.commands.eval"] is eval_command


@pytest.mark.slow
@needs_java
def test_generated_test_is_compiled_and_run(tiny_base, tmp_path, monkeypatch):
    """The whole path with a scripted model: generation, insertion into SolutionTest.java, JUnit."""
    from unitune.runtime import runtime as runtime_module
    from unitune.runtime.generation import Completion, GenerationStats
    from unitune.runtime.runtime import ModelRuntime
    from unitune.runtime.loading import ModelSpec
    from unitune.settings import load_settings

    body = ("        assertTrue(new Solution().hasCloseElements(java.util.List.of(1.0, 2.8, 3.0), 0.3));\n"
            "        assertFalse(new Solution().hasCloseElements(java.util.List.of(1.0, 2.0), 0.5));\n    }\n")

    def scripted(model, tokenizer, prompt, options, *args, **kwargs):
        return GenerationStats("r", 1, 1, 0.0, completions=[Completion(body, 1, True)])

    monkeypatch.setattr(runtime_module, "generate_completions", scripted)
    settings = load_settings(tmp_path, {"model": str(tiny_base), "candidates": 1}).settings
    runtime = ModelRuntime(ModelSpec.from_settings(settings))
    problem = load_humaneval_java(1)[0]
    result = evaluate_java_problem(runtime, settings, None, problem, tmp_path)
    assert result.valid_syntax and result.status == "passed" and result.passed, result
    assert "hasCloseElements" in result.test
