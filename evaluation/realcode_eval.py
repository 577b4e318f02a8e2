"""`unitune eval --dataset realcode` (the built-in set of real functions, `datasets/realcode.toml`),
`--dataset SET.toml` (another set of pinned wheels) and `--dataset LIST.txt --repo DIR` (a listing of
`path.py::Qualified.name` lines in your project): unitune writes tests for each function as a user
would with `unitune generate`, and they are judged raw and delivered by `function_judge` (coverage
of the function, `MUTANTS_PER_FUNCTION` mutants, tests and assertions).

A built-in or `.toml` set works on a fresh copy of each package's unpacked wheel per function;
a listing works on `--repo` itself, which the sandbox copies before any test runs.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from unitune.evaluation.evaluation import (
    EvaluationError, Problem, ProblemResult, Report, generate_and_judge, reused_seconds, summarize,
)
from unitune.evaluation.function_judge import MUTANTS_PER_FUNCTION, judge_function_tests
from unitune.evaluation.function_listing import ListedFunction, LocatedFunction, locate, read_listing
from unitune.evaluation.realcode_dataset import (
    BUILTIN_DEFINITION, BUILTIN_NAME, fresh_copy, load_definition, prepare_projects,
)

PAIRS_SUFFIXES = (".jsonl", ".json")


@dataclass(frozen=True)
class FunctionTarget:
    """One function to evaluate, found in its pristine project."""

    located: LocatedFunction
    project: Path
    fresh_copy: bool  # work on a copy of `project` (an unpacked wheel) rather than the project itself

    @property
    def listed(self) -> ListedFunction:
        return self.located.listed


def is_function_dataset(dataset: str) -> bool:
    """Whether `--dataset` names real functions: `realcode`, a `.toml` set, or a listing file (any
    other file that is not a pairs `.jsonl`)."""
    if dataset == BUILTIN_NAME:
        return True
    path = Path(dataset)
    return path.suffix not in PAIRS_SUFFIXES and path.is_file()


def dataset_label(dataset: str) -> str:
    return dataset if dataset == BUILTIN_NAME else Path(dataset).name


def function_targets(dataset: str, repo: Path | None = None, limit: int | None = None, cache: Path | None = None,
                     find_links: Path | None = None) -> list[FunctionTarget]:
    """The functions `dataset` names, each located in its project (a wrong name fails here, before
    any model time is spent); the first `limit` only when given."""
    if dataset == BUILTIN_NAME or Path(dataset).suffix == ".toml":
        definition = load_definition(BUILTIN_DEFINITION if dataset == BUILTIN_NAME else Path(dataset))
        projects = prepare_projects(definition, cache, find_links)
        chosen = [(projects[package.name], listed) for package in definition.packages for listed in package.functions]
        copies = True
    else:
        root = (repo or Path.cwd()).resolve()
        if not root.is_dir():
            raise EvaluationError(f"--repo {root}: not a folder; a listing names files relative to its project")
        chosen = [(root, listed) for listed in read_listing(Path(dataset))]
        copies = False
    chosen = chosen[:limit] if limit else chosen
    return [FunctionTarget(locate(project, listed), project, copies) for project, listed in chosen]


def evaluate_function(runtime, settings, adapter, target: FunctionTarget, work: Path) -> ProblemResult:
    """Generate tests for one function as `unitune generate` does and judge them, raw and delivered."""
    from unitune.assured.mutants import mutants

    located, listed = target.located, target.listed
    project = fresh_copy(target.project, work) if target.fresh_copy else target.project
    problem = Problem(listed.id, located.source, listed.qualified_name)

    def judge(test_rel: str, test_text: str, names: list[str]):
        return judge_function_tests(project, listed.path, located.source, listed.qualified_name, located.lines,
                                    test_rel, test_text, names)

    def judge_raw(test_rel, test_text, best) -> ProblemResult:
        judged = judge(test_rel, test_text, [best.name])
        asserts = best.assertions > 0
        passed = judged.passed and asserts
        return ProblemResult(listed.id, valid_syntax=True, passed=passed, asserts=asserts,
                             line_coverage=judged.line_coverage, branch_coverage=judged.branch_coverage,
                             mutants=judged.mutants if passed else 0,
                             mutants_killed=judged.mutants_killed if passed else 0, status=judged.status,
                             test=best.source)

    def judge_delivered(test_rel, test_text, tests) -> dict:
        return judge(test_rel, test_text, [test.name for test in tests]).figures()

    result = generate_and_judge(runtime, settings, adapter, problem, project, project / listed.path, located.offset,
                                judge_raw, judge_delivered)
    if result.delivered is not None and not result.delivered.get("served"):
        # The function's mutants are there whether or not a test was delivered: totals count them.
        result.delivered.setdefault("mutants", len(mutants(located.source, listed.qualified_name,
                                                          MUTANTS_PER_FUNCTION)))
        result.delivered.setdefault("mutants_killed", 0)
    return result


def run_function_evaluation(runtime, settings, adapter, dataset: str, limit: int | None, repo: Path | None,
                            label: str, on_problem=None, done: dict[str, ProblemResult] | None = None,
                            cache: Path | None = None) -> Report:
    """Evaluate every function of `dataset`; a function whose id is in `done` (results saved by an
    interrupted run) is not generated again, its saved result counts."""
    done = done or {}
    started = time.perf_counter()
    targets = function_targets(dataset, repo, limit, cache)
    results = []
    with tempfile.TemporaryDirectory(prefix="unitune-eval-realcode-") as temp:
        for index, target in enumerate(targets, 1):
            if target.listed.id in done:
                results.append(done[target.listed.id])
                continue
            result = evaluate_function(runtime, settings, adapter, target, Path(temp) / f"{index:03d}")
            results.append(result)
            if on_problem:
                on_problem(index, len(targets), result)
    return summarize(label, dataset_label(dataset), results,
                     time.perf_counter() - started + reused_seconds(results, done))
