"""Evaluating generated tests: `unitune eval (--adapter NAME | --base) --dataset humaneval|PAIRS.jsonl`.

For each focal function: generate a test with the runtime (base model, or base + adapter), then judge it
- valid syntax: the best candidate parses (tree-sitter) before anything is dropped;
- pass@1: the best test passes against the correct code (run in the sandbox) and asserts something;
- line and branch coverage of the focal function by that test (coverage.py, in the sandbox);
- mutation score: of a handful of simple mutants of the focal function, the share a passing test fails on;
- for a pairs file (the `test` split of `unitune mine`), CodeBLEU against the developer's test.
HumanEval problems are written as a one-module project (`problem.py`) with `prompt + canonical_solution`.
"""

from __future__ import annotations

import gzip
import json
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from unitune.errors import GenerationFailed, UnituneError
from unitune.logs import get_logger, log_event

log = get_logger("evaluation")
DATASETS_DIR = Path(__file__).resolve().parent / "datasets"
HUMANEVAL = DATASETS_DIR / "HumanEval.jsonl.gz"
MUTANTS_PER_PROBLEM = 5


class EvaluationError(UnituneError):
    exit_code = 2


@dataclass
class Problem:
    id: str
    module: str  # the focal module's source
    function: str  # the focal function's name
    reference_tests: tuple[str, ...] = ()  # the developers' tests of the function (pairs), for CodeBLEU


@dataclass
class ProblemResult:
    id: str
    valid_syntax: bool
    passed: bool = False
    asserts: bool = False
    line_coverage: float | None = None
    branch_coverage: float | None = None
    mutants: int = 0
    mutants_killed: int = 0
    codebleu: float | None = None
    status: str = "no test"
    test: str = ""
    seconds: float = 0.0
    # validate = "run": what the assured pipeline delivered for the same completions, judged apart
    # (served, passed, line_coverage, branch_coverage, mutants, mutants_killed, tests, seconds, file)
    delivered: dict | None = None


@dataclass
class Report:
    label: str
    dataset: str
    problems: int
    valid_syntax: float
    pass_at_1: float
    line_coverage: float | None
    branch_coverage: float | None
    mutation_score: float | None
    codebleu: float | None
    seconds: float
    results: list[ProblemResult] = field(default_factory=list)
    delivered: dict | None = None  # the assured pipeline's figures (`summarize_delivered`), when it ran

    def to_json(self) -> dict:
        record = asdict(self)
        record["results"] = [asdict(r) for r in self.results]
        return record

    def row(self) -> dict:
        return {k: v for k, v in self.to_json().items() if k != "results"}


def load_humaneval(limit: int | None = None, path: Path = HUMANEVAL) -> list[Problem]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    problems = [Problem(r["task_id"], r["prompt"] + r["canonical_solution"], r["entry_point"]) for r in records]
    return problems[:limit] if limit else problems


def load_pairs_problems(path: Path, repo: Path, limit: int | None = None) -> tuple[list[tuple[Problem, dict]],
                                                                                  list[dict]]:
    """(problems, pairs) of a pairs file's test split: one problem per focal function (its developers'
    tests, however many, are the references of CodeBLEU), the first `limit` of them, with the first
    pair of each; and every pair of the split, whose tests the judging copy leaves out."""
    from unitune.training.data import read_pairs

    pairs = [p for p in read_pairs(path, "python") if p["split"] == "test"]
    if not pairs:
        raise EvaluationError(f"{path}: no Python pairs in the test split")
    by_function: dict[tuple[str, str], list[dict]] = {}
    for pair in pairs:
        by_function.setdefault((pair["focal_file"], pair["focal_qualified_name"]), []).append(pair)
    found = []
    for (focal_file, qualified_name), tests in list(by_function.items())[:limit] if limit else by_function.items():
        focal = repo / focal_file
        if not focal.is_file():
            raise EvaluationError(f"{focal}: the pair's focal file is missing; pass --repo with the mined repository")
        found.append((Problem(f"{focal_file}::{qualified_name}", focal.read_text("utf-8"), qualified_name,
                              tuple(pair["test_code"] for pair in tests if pair.get("test_code"))), tests[0]))
    return found, pairs


def _offset_of(source, function_name: str) -> tuple[int, tuple[int, int]]:
    from unitune.focal import functions

    for function in functions(source):
        if function.qualified_name == function_name:
            return function.node.start_byte, (function.start_line, function.end_line)
    raise EvaluationError(f"{function_name} is not a testable function of its module")


def evaluate_problem(runtime, settings, adapter, problem: Problem, work: Path, project: Path | None = None,
                     focal_rel: str = "problem.py") -> ProblemResult:
    """Generate a test for one problem and judge it."""
    from unitune.source import SourceFile

    if project is None:
        project = work / problem.id.replace("/", "_")
        project.mkdir(parents=True, exist_ok=True)
        (project / "pyproject.toml").write_text('[project]\nname = "problem"\n')
        (project / focal_rel).write_text(problem.module, "utf-8")
    focal_path = project / focal_rel
    offset, lines = _offset_of(SourceFile(problem.module, "python", focal_path), problem.function)

    def judge_python(test_rel, test_text, best) -> ProblemResult:
        return judge(problem, project, focal_rel, lines, test_rel, test_text, best.name, best.assertions > 0,
                     best.source, python=settings.python)

    def judge_delivered(test_rel, test_text, tests) -> dict:
        return judge_set(problem, project, focal_rel, lines, test_rel, test_text, [t.name for t in tests],
                         python=settings.python)

    return generate_and_judge(runtime, settings, adapter, problem, project, focal_path, offset, judge_python,
                              judge_delivered)


def generate_and_judge(runtime, settings, adapter, problem: Problem, project: Path, focal_path: Path, offset: int,
                       judge_test, judge_delivered=None) -> ProblemResult:
    """The steps every dataset shares: generate for the function at `offset` of `focal_path` as the
    editor would, write the best test into its test file, and judge it with
    `judge_test(test_rel, test_text, best_test)` (Python: pytest, coverage, mutants; Java: JUnit): the
    raw figures, as the study measured them (one round, checked for syntax only). With
    `validate = "run"` and `judge_delivered`, the same first round then goes through everything a
    request does (the assured pipeline, new rounds when nothing survived, coverage rounds) and what
    is delivered is judged apart with `judge_delivered(test_rel, test_text, tests)`."""
    import dataclasses

    from unitune.request import GenerationRequest
    from unitune.generation.service import TestGenerator
    from unitune.insertion import apply

    started = time.perf_counter()
    request = GenerationRequest(focal_path, offset, dataclasses.replace(settings, validate="syntax"),
                                text=problem.module, project_root=project, adapter=adapter)
    generator = TestGenerator(runtime)
    planned = generator.plan(request)
    stats = generator.sample(planned)
    first = {key: planned.timings[key] for key in ("prepare", "load", "generate") if key in planned.timings}
    try:
        outcome = generator.finish(planned, stats, more_rounds=False)
    except GenerationFailed:
        result = ProblemResult(problem.id, valid_syntax=False, status="no valid test",
                               seconds=time.perf_counter() - started)
        outcome = None
    else:
        best = outcome.tests[0]
        test_text = apply(outcome.insertion.original_text or None, outcome.insertion)
        test_rel = outcome.insertion.path.relative_to(project).as_posix()
        result = judge_test(test_rel, test_text, best)
        result.seconds = time.perf_counter() - started
    if settings.validate == "run" and judge_delivered is not None:
        # The same first round, as a request with validate = "run" goes on from it; its clock starts
        # where the first round's generation did.
        mark = time.perf_counter()
        run = dataclasses.replace(planned, request=dataclasses.replace(request, settings=settings), notes=[],
                                  timings=dict(first), started=mark - first.get("generate", 0.0),
                                  new_tokens=[stats.new_tokens], report=lambda *args: None)
        try:
            delivered = generator.finish(run, stats)
        except GenerationFailed as error:
            result.delivered = {"served": False, "why": str(error)[:1000]}
        else:
            text = apply(delivered.insertion.original_text or None, delivered.insertion)
            test_rel = delivered.insertion.path.relative_to(project).as_posix()
            result.delivered = {"served": True, **judge_delivered(test_rel, text, delivered.tests), "file": text,
                                "test_file": test_rel,
                                "tests": [{"name": t.name, "adds": t.adds, "repaired": t.repaired}
                                          for t in delivered.tests]}
        result.delivered["seconds"] = first.get("generate", 0.0) + time.perf_counter() - mark
        result.delivered["new_tokens"] = sum(run.new_tokens)
        # Where the user's wait went and what the pipeline said: the figures to read when a function
        # is slow or ends with little.
        result.delivered["timings"] = {stage: round(seconds, 2) for stage, seconds in run.timings.items()}
        result.delivered["notes"] = list(run.notes)
    log_event(log, "eval.problem", id=problem.id, status=result.status, passed=result.passed,
              line_coverage=result.line_coverage, seconds=result.seconds,
              delivered=bool(result.delivered and result.delivered.get("served")))
    return result


def judge_set(problem: Problem, project: Path, focal_rel: str, lines: tuple[int, int], test_rel: str,
              test_text: str, names: list[str], python: str | None = None) -> dict:
    """Judge delivered tests together, as another harness would: one sandbox session runs them with
    coverage of the focal function, then against each mutant. `python` is the interpreter the tests run
    with (default: the project's own environment, as the sandbox finds it in `project`)."""
    from unitune.assured.assure import node_in_file
    from unitune.assured.sandbox import Round, run_rounds
    from unitune.assured.mutants import mutants

    ids = [f"{test_rel}::{node_in_file(test_text, name)}" for name in names]
    found = mutants(problem.module, problem.function, MUTANTS_PER_PROBLEM)
    rounds = [Round(select=ids, coverage=True)] + [Round(files={focal_rel: m.source}, select=ids) for m in found]
    session = run_rounds(project, test_rel, rounds, {test_rel: test_text}, focal_file=focal_rel, focal_lines=lines,
                         timeout=60 + 20 * len(rounds), python=python)
    figures = {"passed": False, "line_coverage": None, "branch_coverage": None, "mutants": 0, "mutants_killed": 0}
    if not session.rounds:
        return figures
    first = session.rounds[0]
    figures["passed"] = bool(ids) and all(first.outcomes.get(i, ("error",))[0] == "passed" for i in ids)
    covered_lines = set().union(*(first.covered.get(i, (set(), set()))[0] for i in ids))
    covered_branches = set().union(*(first.covered.get(i, (set(), set()))[1] for i in ids))
    if first.statements:
        figures["line_coverage"] = len(covered_lines) / len(first.statements)
    if first.branches:
        figures["branch_coverage"] = len(covered_branches) / len(first.branches)
    if figures["passed"]:
        figures["mutants"] = len(found)
        figures["mutants_killed"] = sum(any(o[0] != "passed" for o in run.outcomes.values()) or not run.outcomes
                                        for run in session.rounds[1:])
    return figures


def judge(problem: Problem, project: Path, focal_rel: str, lines: tuple[int, int], test_rel: str, test_text: str,
          test_name: str, asserts: bool, test_source: str = "", python: str | None = None) -> ProblemResult:
    """Run one test (`test_name` in the file `test_rel` whose text is `test_text`) against the focal
    code and its mutants, in the sandbox; CodeBLEU against the developer's test when there is one."""
    from unitune.assured.assure import node_in_file
    from unitune.assured.mutants import mutants
    from unitune.assured.sandbox import run_tests

    result = ProblemResult(problem.id, valid_syntax=True, asserts=asserts, test=test_source)
    node = node_in_file(test_text, test_name)  # `Class::name` for a unittest method
    run = run_tests(project, test_rel, {test_rel: test_text}, focal_file=focal_rel, focal_lines=lines,
                    select=[node], timeout=20, python=python)
    result.status = run.status
    result.passed = run.status == "passed" and asserts
    result.line_coverage, result.branch_coverage = run.line_coverage, run.branch_coverage
    if result.passed:
        for mutant in mutants(problem.module, problem.function, MUTANTS_PER_PROBLEM):
            mutated = run_tests(project, test_rel, {test_rel: test_text, focal_rel: mutant.source},
                                select=[node], timeout=10, python=python)
            result.mutants += 1
            result.mutants_killed += mutated.status != "passed"
    if problem.reference_tests and test_source:
        from unitune.evaluation.scoring import codebleu_scores

        try:
            result.codebleu = codebleu_scores([problem.reference_tests], [test_source], "python")["codebleu"]
        except UnituneError:
            result.codebleu = None
    return result


def summarize(label: str, dataset: str, results: list[ProblemResult], seconds: float) -> Report:
    def mean(values):
        values = [v for v in values if v is not None]
        return statistics.fmean(values) if values else None

    n = len(results)
    ran = [r for r in results if r.valid_syntax]
    killed = [r.mutants_killed / r.mutants for r in results if r.passed and r.mutants]
    return Report(
        label=label, dataset=dataset, problems=n,
        valid_syntax=sum(r.valid_syntax for r in results) / n if n else 0.0,
        pass_at_1=sum(r.passed for r in results) / n if n else 0.0,
        line_coverage=mean([r.line_coverage or 0.0 for r in ran]) if ran else None,
        branch_coverage=mean([r.branch_coverage for r in ran]),
        mutation_score=mean(killed),
        codebleu=mean([r.codebleu for r in results]),
        seconds=seconds, results=results, delivered=summarize_delivered(results),
    )


def summarize_delivered(results: list[ProblemResult]) -> dict | None:
    """The assured pipeline's figures over every problem: served (at least one test delivered), the
    share of served problems whose delivered tests pass when judged apart, line and branch coverage
    of the focal function (an unserved problem counts 0; a served function without branches is left
    out of branch coverage), mutation score over the served ones, seconds per problem (generation
    included, mean and median) and the tokens the model wrote per delivered test."""
    judged = [r.delivered for r in results if r.delivered is not None]
    if not judged:
        return None
    served = [d for d in judged if d.get("served")]

    def mean(values):
        values = [v for v in values if v is not None]
        return statistics.fmean(values) if values else None

    return {
        "problems": len(judged), "served": len(served) / len(judged),
        "pass_rate": sum(bool(d.get("passed")) for d in served) / len(served) if served else None,
        "line_coverage": mean([d.get("line_coverage") or 0.0 for d in judged]),
        "branch_coverage": mean([d.get("branch_coverage") if d.get("served") else 0.0 for d in judged]),
        "mutation_score": mean([d["mutants_killed"] / d["mutants"] for d in served if d.get("mutants")]),
        "tests_per_problem": mean([len(d.get("tests") or ()) for d in served]),
        "seconds_per_problem": mean([d.get("seconds") for d in judged]),
        "median_seconds": statistics.median([d["seconds"] for d in judged if d.get("seconds") is not None] or [0.0]),
        # what the model wrote (every round) per delivered test: what a test costs in decoding
        "new_tokens_per_test": mean([d["new_tokens"] / len(d["tests"]) for d in served
                                     if d.get("new_tokens") is not None and d.get("tests")]),
    }


def run_evaluation(runtime, settings, adapter, dataset: str, limit: int | None, repo: Path | None,
                   label: str, on_problem=None, done: dict[str, ProblemResult] | None = None,
                   dataset_cache: Path | None = None) -> Report:
    """Evaluate every problem of `dataset`; a problem whose id is in `done` (results saved by an
    interrupted run) is not generated again, its saved result counts. Real functions (`realcode`,
    a `.toml` set, a listing) go to `realcode_eval`; `dataset_cache` is where their wheels are kept."""
    import dataclasses

    from unitune.assured import sandbox
    from unitune.evaluation.held_out import held_out_copy
    from unitune.evaluation.realcode_eval import is_function_dataset, run_function_evaluation

    if is_function_dataset(dataset):
        return run_function_evaluation(runtime, settings, adapter, dataset, limit, repo, label, on_problem, done,
                                       dataset_cache)
    done = done or {}
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="unitune-eval-") as temp:
        work = Path(temp)
        if dataset == "humaneval":
            items = [(problem, None) for problem in load_humaneval(limit)]
        else:
            mined = (repo or Path.cwd()).resolve()
            items, held_out = load_pairs_problems(Path(dataset), mined, limit)
            # judged where the split's developer tests are not (`held_out.py`), with the project's own
            # interpreter; test files are placed by absolute path
            settings = dataclasses.replace(settings, python=sandbox.project_python(mined, settings.python))
            repo = held_out_copy(mined, held_out, work / "repository").root
        for index, (problem, pair) in enumerate(items, 1):
            if problem.id in done:
                results.append(done[problem.id])
                continue
            if pair is None:
                result = evaluate_problem(runtime, settings, adapter, problem, work)
            else:
                result = evaluate_problem(runtime, settings, adapter, problem, work, project=repo,
                                          focal_rel=pair["focal_file"])
            results.append(result)
            if on_problem:
                on_problem(index, len(items), result)
    return summarize(label, "humaneval" if dataset == "humaneval" else Path(dataset).name, results,
                     time.perf_counter() - started + reused_seconds(results, done))


def reused_seconds(results: list[ProblemResult], done: dict[str, ProblemResult]) -> float:
    """The time an interrupted run spent on the results reused from it, so a resumed report's total
    is the whole evaluation's."""
    return sum(r.seconds for r in results if done.get(r.id) is r)
