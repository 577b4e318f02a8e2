"""Evaluating generated JUnit 5 tests on HumanEval-X Java: `unitune eval --dataset humaneval-java`.

Each problem's focal class is `declaration + canonical_solution` (`class Solution` with the focal
method last, helpers before it) in the package `humaneval` (a `package` line put before it), written
as `src/main/java/humaneval/Solution.java` of a temporary Maven-layout project. (Not the default
package: the test file's header would import `Solution`, and a class of the default package cannot
be imported.) A test is generated for the focal method with the runtime, as `unitune generate`
would write it (`src/test/java/humaneval/SolutionTest.java`), then compiled and run with
JUnit 5 (`unitune.assured.java_runner`, in a sandbox):
- valid syntax: the runtime produced a valid test;
- pass@1: the best test compiles, passes against the correct code and asserts something.
Line and branch coverage, mutation score and CodeBLEU are not measured for Java (shown as "-").
Needs a JDK and Debian's `junit5` (`java_available()` says what is missing).
"""

from __future__ import annotations

import gzip
import json
import re
import tempfile
import time
from pathlib import Path

from unitune.logs import get_logger
from unitune.evaluation.evaluation import (
    DATASETS_DIR, EvaluationError, Problem, ProblemResult, Report, generate_and_judge, reused_seconds, summarize,
)
from unitune.assured.java_runner import java_available, java_test_class, run_java_tests

log = get_logger("evaluation")
HUMANEVAL_JAVA = DATASETS_DIR / "humaneval_java.jsonl.gz"
DATASET = "humaneval-java"
PACKAGE = "humaneval"
FOCAL_REL = f"src/main/java/{PACKAGE}/Solution.java"
TEST_TIMEOUT = 60.0


def focal_method_name(declaration: str) -> str:
    """The method the declaration ends with (its signature is the declaration's last line)."""
    names = re.findall(r"^\s*(?:public|private|protected|static|final|\s)*[\w<>\[\],.? ]+?\s+(\w+)\s*\(",
                       declaration, flags=re.MULTILINE)
    if not names:
        raise EvaluationError(f"no method signature in the declaration: {declaration[-200:]!r}")
    return names[-1]


def load_humaneval_java(limit: int | None = None, path: Path = HUMANEVAL_JAVA) -> list[Problem]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    problems = [Problem(r["task_id"], f"package {PACKAGE};\n\n" + r["declaration"] + r["canonical_solution"],
                        "Solution." + focal_method_name(r["declaration"])) for r in records]
    return problems[:limit] if limit else problems


def _focal_offset(module: str, qualified_name: str, path: Path) -> int:
    from unitune.focal import functions
    from unitune.source import SourceFile

    found = [f for f in functions(SourceFile(module, "java", path)) if f.qualified_name == qualified_name]
    if not found:
        raise EvaluationError(f"{qualified_name} is not a testable method of its class")
    return found[-1].node.start_byte


def write_project(problem: Problem, work: Path) -> Path:
    project = work / problem.id.replace("/", "_")
    (project / FOCAL_REL).parent.mkdir(parents=True, exist_ok=True)
    (project / "pom.xml").write_text(
        "<project><modelVersion>4.0.0</modelVersion><groupId>eval</groupId><artifactId>problem</artifactId>"
        "<version>1</version></project>\n", "utf-8")
    (project / FOCAL_REL).write_text(problem.module, "utf-8")
    return project


def judge_java(problem: Problem, project: Path, test_rel: str, test_text: str, test_name: str | None,
               asserts: bool, test_source: str = "", timeout: float = TEST_TIMEOUT) -> ProblemResult:
    """Compile and run one test (`test_name` of the file `test_rel` whose text is `test_text`; all of
    its tests when None) against the focal class."""
    result = ProblemResult(problem.id, valid_syntax=True, asserts=asserts, test=test_source)
    run = run_java_tests(project, java_test_class(test_rel, test_text), timeout, {test_rel: test_text},
                         methods=[test_name] if test_name else None)
    result.status = run.status
    result.passed = run.ok and asserts
    return result


def evaluate_java_problem(runtime, settings, adapter, problem: Problem, work: Path) -> ProblemResult:
    """Generate a test for one problem and judge it."""
    project = write_project(problem, work)
    focal_path = project / FOCAL_REL
    offset = _focal_offset(problem.module, problem.function, focal_path)

    def judge_junit(test_rel, test_text, best) -> ProblemResult:
        return judge_java(problem, project, test_rel, test_text, best.name, best.assertions > 0, best.source)

    return generate_and_judge(runtime, settings, adapter, problem, project, focal_path, offset, judge_junit)


def run_java_evaluation(runtime, settings, adapter, limit: int | None, label: str, on_problem=None,
                        done: dict | None = None) -> Report:
    done = done or {}
    reason = java_available()
    if reason:
        raise EvaluationError(f"{DATASET}: {reason}")
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="unitune-eval-java-") as temp:
        problems = load_humaneval_java(limit)
        for index, problem in enumerate(problems, 1):
            if problem.id in done:
                results.append(done[problem.id])
                continue
            result = evaluate_java_problem(runtime, settings, adapter, problem, Path(temp))
            results.append(result)
            if on_problem:
                on_problem(index, len(problems), result)
    report = summarize(label, DATASET, results, time.perf_counter() - started + reused_seconds(results, done))
    report.line_coverage = report.branch_coverage = report.mutation_score = report.codebleu = None
    return report

