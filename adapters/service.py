"""From a position in a file to tests ready to insert: the one path `unitune generate` and the
language server share.

    focal method (tree-sitter) -> test file and framework (placement) -> prompt (unitune.prompt,
    trimmed to the model's context) -> model (runtime: base + the project's adapter) ->
    post-processing (cut, check, repair, dedupe, rename) -> an insertion plan for the test file.

Progress is reported as (stage, fraction, message) with the stages below; a `threading.Event`
cancels between tokens. Nothing is written here: the caller applies the plan (`--write`, or the
language server's workspace edit).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unitune.adapters.generation import GenerationStats, SamplingOptions, generate_completions
from unitune.adapters.postprocess import GeneratedTest, postprocess_all
from unitune.adapters.runtime import ModelRuntime
from unitune.context import CONTEXT_LEVELS
from unitune.errors import GenerationFailed
from unitune.focal import Function, require_focal_at
from unitune.frameworks import parse_framework
from unitune.insertion import Insertion, existing_test_names, plan_insertion
from unitune.logs import get_logger, log_event, new_request_id
from unitune.placement import TestLocation, find_project_root, locate_test_file
from unitune.prompt import Prompt, build_prompt, model_input, test_file_header
from unitune.settings import Settings
from unitune.source import SourceFile, decode_source, read_source_bytes

log = get_logger("service")

# Stages of a generation, in order, as progress reports name them.
LOADING, GENERATING, VALIDATING = "loading model", "generating", "validating"
ProgressCallback = Callable[[str, float, str], None]


@dataclass
class GenerationRequest:
    """What to write tests for: a file (with its unsaved text, from an editor) and a position."""

    path: Path
    offset: int  # byte offset in the file's UTF-8 text
    settings: Settings
    text: str | None = None  # the editor's buffer; None reads the file
    project_root: Path | None = None
    adapter: Any = None  # a registry entry; None: the bare base model
    open_text: Callable[[Path], str | None] | None = None  # an editor's unsaved text of a file, if open
    request_id: str = field(default_factory=lambda: new_request_id("gen"))


@dataclass
class GenerationOutcome:
    request_id: str
    function: Function
    prompt: Prompt
    location: TestLocation
    tests: list[GeneratedTest]  # valid, best first, uniquely named
    rejected: list[GeneratedTest]
    insertion: Insertion
    stats: GenerationStats
    timings: dict[str, float]
    notes: list[str] = field(default_factory=list)
    header: str = ""  # what a new test file starts with, and the imports the tests may need

    def replan(self, current_text: str | None) -> Insertion:
        """The same tests placed again into the test file's `current_text` (it changed meanwhile)."""
        return plan_insertion(self.location, current_text, self.tests, language=self.prompt.language,
                              framework=self.prompt.framework, header=self.header, test_class=self.prompt.test_class)

    def to_json(self) -> dict:
        return {
            "request_id": self.request_id,
            "function": self.function.qualified_name,
            "test_file": str(self.location.path),
            "creates_file": self.insertion.creates_file,
            "framework": self.prompt.framework,
            "tests": [test.to_json() for test in self.tests],
            "rejected": [test.to_json() for test in self.rejected],
            "prompt_tokens": self.stats.prompt_tokens,
            "new_tokens": self.stats.new_tokens,
            "timings": {key: round(value, 4) for key, value in self.timings.items()},
            "notes": self.notes,
        }


def prepare(request: GenerationRequest) -> tuple[SourceFile, Function, TestLocation, str, str | None]:
    """The cheap part (no model): focal method, test location, framework and the test file's text."""
    path = Path(request.path)
    if request.text is not None:
        from unitune.languages import language_for_path

        file = SourceFile(request.text, language_for_path(path), path)
    else:
        file = SourceFile.from_path(path)
    function = require_focal_at(file, request.offset)
    root = Path(request.project_root) if request.project_root else find_project_root(path)
    location = locate_test_file(path, root, test_dir=request.settings.test_dir)
    framework = parse_framework(request.settings.framework, file.language) if request.settings.framework else location.framework
    existing = request.open_text(location.path) if request.open_text else None
    if existing is None and location.exists:
        existing = decode_source(read_source_bytes(location.path), str(location.path))
    return file, function, location, framework, existing


#: Most prompt tokens a request reads, per device: the model's window is larger (32k for the default),
#: but a CPU prefills about a few hundred tokens a second, so a longer prompt costs more than it helps
#: (the context is reduced level by level to fit; see `fit_prompt`).
PROMPT_TOKENS = {"cpu": 2048, "mps": 4096, "cuda": 8192}


def prompt_budget(base, max_new_tokens: int) -> int:
    """Prompt tokens a request may use on `base`: the device's budget, within the model's window."""
    return max(64, min(PROMPT_TOKENS.get(base.device, 2048), base.context_length - max_new_tokens))


def fit_prompt(file, function, location, framework, existing, tokenizer, budget: int, level: str,
               uncovered: list[str] | None = None) -> tuple[Prompt, list[str]]:
    """The richest prompt at or below `level` that fits `budget` tokens (then the generation keeps
    the prompt's end if even the focal method alone is too long)."""
    notes: list[str] = []
    levels = CONTEXT_LEVELS[: CONTEXT_LEVELS.index(level) + 1][::-1] if level in CONTEXT_LEVELS else [level]
    prompt = None
    for candidate in levels:
        prompt = build_prompt(file, function, framework=framework, module_import=location.module_import,
                              existing_test_source=existing, level=candidate, uncovered=uncovered)
        if len(tokenizer(model_input(tokenizer, prompt.text, prompt.language), add_special_tokens=False)["input_ids"]) <= budget:
            if candidate != level:
                notes.append(f"context reduced to {candidate} to fit the model's {budget}-token prompt budget")
            return prompt, notes
    notes.append("the focal method alone is longer than the model's context; its beginning was cut")
    return prompt, notes


@dataclass
class PlannedRequest:
    """A request between `TestGenerator.plan` and `finish`: what the model is given, and how."""

    request: GenerationRequest
    report: ProgressCallback
    cancel: threading.Event | None
    started: float
    timings: dict[str, float]
    prepared: tuple  # (file, function, location, framework, existing test text), from `prepare`
    prompt: Prompt
    text: str  # the model's input (`unitune.prompt.model_input`)
    options: SamplingOptions
    budget: int  # prompt tokens
    notes: list[str]


class TestGenerator:
    """Generates tests with one `ModelRuntime` (shared by every request of a process)."""

    __test__ = False  # not a pytest test class

    def __init__(self, runtime: ModelRuntime):
        self.runtime = runtime

    def generate(self, request: GenerationRequest, on_progress: ProgressCallback | None = None,
                 cancel: threading.Event | None = None) -> GenerationOutcome:
        planned = self.plan(request, on_progress, cancel)
        return self.finish(planned, self.sample(planned))

    def plan(self, request: GenerationRequest, on_progress: ProgressCallback | None = None,
             cancel: threading.Event | None = None) -> "PlannedRequest":
        """Everything before the model writes: focal method, test file, the base model loaded, the
        prompt fitted to the model's budget."""
        report = on_progress or (lambda stage, fraction, message: None)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        prepared = prepare(request)
        file, function, location, framework, existing = prepared
        timings["prepare"] = time.perf_counter() - started

        report(LOADING, 0.0, f"loading {self.runtime.spec.model}")
        mark = time.perf_counter()
        base = self.runtime.load(progress=lambda stage, done, total: report(
            LOADING, done / total if total else 1.0, f"{stage} {self.runtime.spec.model} (first use only)"))
        timings["load"] = time.perf_counter() - mark

        settings = request.settings
        budget = prompt_budget(base, settings.max_new_tokens)
        prompt, notes = fit_prompt(file, function, location, framework, existing, base.tokenizer, budget,
                                   settings.context)
        text = model_input(base.tokenizer, prompt.text, prompt.language, max_tokens=budget)
        options = SamplingOptions(max_new_tokens=settings.max_new_tokens, candidates=settings.candidates)
        return PlannedRequest(request, report, cancel, started, timings, prepared, prompt, text, options, budget, notes)

    def sample(self, planned: "PlannedRequest") -> GenerationStats:
        """The model's completions for one planned request, with its own adapter."""
        request, report, settings = planned.request, planned.report, planned.request.settings
        mark = time.perf_counter()
        self.runtime.activate(request.adapter)
        planned.timings["load"] += time.perf_counter() - mark
        report(GENERATING, 0.0, f"generating tests for {planned.prepared[1].qualified_name}")

        def on_token(step: int) -> None:
            report(GENERATING, min(1.0, step / settings.max_new_tokens), f"{step} tokens")

        mark = time.perf_counter()
        with self.runtime.active_model() as (model, tokenizer):
            stats = generate_completions(
                model, tokenizer, planned.text, planned.options, planned.prompt.stop_scanner,
                context_length=planned.budget + settings.max_new_tokens, cancel=planned.cancel, on_token=on_token,
                request_id=request.request_id,
            )
        planned.timings["generate"] = time.perf_counter() - mark
        return stats

    def finish(self, planned: "PlannedRequest", stats: GenerationStats) -> GenerationOutcome:
        """Validate what the model wrote (the assured pipeline, coverage rounds) and plan the insertion."""
        request, report, cancel, timings, notes = (planned.request, planned.report, planned.cancel, planned.timings,
                                                   planned.notes)
        file, function, location, framework, existing = planned.prepared
        prompt = planned.prompt
        mark = time.perf_counter()
        delivery = deliver(request, planned.prepared, prompt, [completion.text for completion in stats.completions],
                           notes, report, cancel)
        timings["validate"] = time.perf_counter() - mark
        delivery = self.coverage_rounds(request, planned.prepared, delivery, notes, report, cancel, planned.started,
                                        timings)
        kept, rejected, header = delivery.kept, delivery.rejected, delivery.header
        insertion = plan_insertion(location, existing, kept, language=file.language, framework=framework,
                                   header=header, test_class=prompt.test_class)
        check_whole_file(existing, insertion, file.language)
        timings["total"] = time.perf_counter() - planned.started
        log_event(log, "generate.outcome", request_id=request.request_id, function=function.qualified_name,
                  kept=len(kept), rejected=len(rejected), test_file=location.path, seconds=timings["total"])
        return GenerationOutcome(request.request_id, function, prompt, location, kept, rejected, insertion, stats,
                                 timings, notes, header)

    def coverage_rounds(self, request: GenerationRequest, prepared, delivery: "Delivery", notes: list[str],
                        report: ProgressCallback, cancel: threading.Event | None, started: float,
                        timings: dict[str, float]) -> "Delivery":
        """While the delivered tests leave lines of the focal function unrun and the request's time
        budget (counted from `started`) allows another round as long as the first (`timings`), ask
        again with those lines named (`unitune.prompt.coverage_note`); keep a round only when it
        reaches more, stop when not."""
        file, function, location, framework, existing = prepared
        settings = request.settings
        base = self.runtime.load()
        budget = prompt_budget(base, settings.max_new_tokens)
        options = SamplingOptions(max_new_tokens=settings.max_new_tokens, candidates=settings.candidates)
        round_seconds = timings.get("generate", 0.0) + timings.get("validate", 0.0)  # the first round, without loading
        rounds = 0
        while getattr(delivery.assured, "uncovered", None):  # Python's assured results name uncovered lines
            if time.perf_counter() - started + round_seconds > settings.time_budget:
                notes.append(f"lines {_ranges(delivery.assured.uncovered)} of {function.qualified_name} are not "
                             f"covered; no time left for another round within time_budget = {settings.time_budget} s")
                break
            mark = time.perf_counter()
            lines = file.text.split("\n")
            unrun = [lines[number - 1] for number in delivery.assured.uncovered if 0 < number <= len(lines)]
            prompt, _ = fit_prompt(file, function, location, framework, existing, base.tokenizer, budget,
                                   settings.context, uncovered=unrun)
            report(GENERATING, 0.0, f"round {rounds + 2}: a test for lines {_ranges(delivery.assured.uncovered)}")
            text = model_input(base.tokenizer, prompt.text, prompt.language, max_tokens=budget)
            with self.runtime.active_model() as (model, tokenizer):
                stats = generate_completions(model, tokenizer, text, options, prompt.stop_scanner,
                                             context_length=budget + settings.max_new_tokens, cancel=cancel,
                                             request_id=request.request_id)
            try:
                better = deliver(request, prepared, prompt, [c.text for c in stats.completions], [], report, cancel,
                                 previous=delivery.kept)
            except GenerationFailed:
                better = None
            rounds += 1
            timings[f"coverage_round_{rounds}"] = time.perf_counter() - mark
            if better is None or better.assured is None or sum(better.assured.reach()) <= sum(delivery.assured.reach()):
                notes.append(f"a coverage round for lines {_ranges(delivery.assured.uncovered)} added nothing")
                break
            better.rejected = delivery.rejected + better.rejected
            delivery = better
            round_seconds = time.perf_counter() - mark
        return delivery


def _assure_java(job, tests, report, request) -> tuple[list[GeneratedTest], list[GeneratedTest], list[str], str, Any]:
    from unitune.adapters.assure_java import _file_text, assure_java
    from unitune.evaluation.java_runner import java_available
    from unitune.evaluation.java_eval import java_test_class
    from unitune import sandbox

    reason = java_available()
    if reason:
        raise sandbox.SandboxError(reason)
    class_name = java_test_class(job.test_rel, _file_text(job, tests))
    outcome = assure_java(job, tests, VALIDATING, class_name)
    report(VALIDATING, 1.0, f"{len(outcome.kept)} of {len(tests)} delivered")
    log_event(log, "generate.assured", request_id=request.request_id, kept=len(outcome.kept), language="java")
    return outcome.kept, outcome.rejected, outcome.notes, job.header, outcome


def check_whole_file(existing: str | None, insertion: Insertion, language: str) -> None:
    """Refuse an insertion after which the test file no longer parses (when it parsed before):
    `GenerationFailed`, nothing written."""
    from unitune.adapters.postprocess import python_rejects
    from unitune.insertion import apply
    from unitune.languages import PYTHON, parser_for

    def problems(text: str) -> list[str]:
        if language == PYTHON:
            return python_rejects(text)
        root = parser_for(language).parse(text.encode("utf-8")).root_node
        return [f"line {root.start_point.row + 1}: syntax error"] if root.has_error else []

    after = problems(apply(existing, insertion))
    if after and (existing is None or not problems(existing)):
        raise GenerationFailed(f"inserting the tests would leave {insertion.path} unparsable ({after[0]}); "
                               "nothing was inserted")


def _ranges(numbers: list[int]) -> str:
    """`[3, 4, 5, 9]` -> `3-5, 9`."""
    parts: list[str] = []
    for number in numbers:
        if parts and parts[-1][1] == number - 1:
            parts[-1][1] = number
        else:
            parts.append([number, number])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


def delivery_notes(tests: list[GeneratedTest]) -> list[str]:
    """One line per test that went through `validate = "run"`: what it adds, and what was repaired."""
    from unitune.adapters.assure import RUNS

    notes = []
    for test in tests:
        if test.adds:
            repaired = " (repaired: " + "; ".join(test.repaired) + ")" if test.repaired else ""
            notes.append(f"{test.name} passed {RUNS} runs in the sandbox; {test.adds}{repaired}")
    return notes


@dataclass
class Delivery:
    """The tests to insert (best first), the ones dropped, the test file's header (with any import
    the tests need), and with `validate = "run"` what the assured pipeline measured."""

    kept: list[GeneratedTest]
    rejected: list[GeneratedTest]
    header: str
    assured: Any = None  # unitune.adapters.assure.Assured


def deliver(request: GenerationRequest, prepared, prompt: Prompt, completions: list[str], notes: list[str],
            report: ProgressCallback, cancel: threading.Event | None = None,
            previous: list[GeneratedTest] = ()) -> Delivery:
    """From the model's completions to the tests to insert. `prepared` is what `prepare` returned;
    `previous` are tests kept by an earlier round, run again beside the new ones; notes are appended
    to `notes`. Raises `GenerationFailed` (nothing to insert) with the reasons when no test is left."""
    file, function, location, framework, existing = prepared
    settings = request.settings
    report(VALIDATING, 0.0, "checking the tests")
    taken = set(existing_test_names(existing, file.language)) | {test.name for test in previous}
    candidates = postprocess_all(prompt, completions, taken, focal_name=function.name)
    kept = list(previous) + [test for test in candidates if test.kept]
    rejected = [test for test in candidates if not test.kept]
    if settings.validate == "none":
        kept = [test for test in candidates if test.duplicate_of is None]
        rejected = [test for test in candidates if test.duplicate_of is not None]
    header = test_file_header(file.language, framework, function, file, location.module_import, None,
                              test_class=prompt.test_class)
    assured = None
    if settings.validate == "run" and kept:
        kept, failing, run_notes, header, assured = assure_candidates(
            request, file, function, location, framework, existing, prompt, header, kept, report, cancel)
        rejected = failing + rejected
        notes.extend(run_notes)
    if not kept:
        reasons = "; ".join(dict.fromkeys(problem for test in rejected for problem in test.problems)) or "no test"
        log_event(log, "generate.failed", request_id=request.request_id, reasons=reasons)
        if assured is not None:
            raise GenerationFailed(
                f"none of the {len(candidates)} test(s) written for {function.qualified_name} survived running "
                f"and repair ({reasons}); nothing was inserted. Try again with more candidates, or a larger model "
                "or an adapter")
        raise GenerationFailed(
            f"the model wrote {len(candidates)} candidate(s) for {function.qualified_name} but none is a valid "
            f"test ({reasons}); try again with more candidates, or a larger model or an adapter"
        )
    return Delivery(kept, rejected, header, assured)


# -- validate = "run" ----------------------------------------------------------------------------

#: (project root, interpreter, language) whose tests could not be run at all, with why: said once.
_UNRUNNABLE: dict[tuple[str, str | None, str], str] = {}

def assure_candidates(request: GenerationRequest, file: SourceFile, function: Function, location: TestLocation,
                      framework: str, existing: str | None, prompt: Prompt, header: str, tests: list[GeneratedTest],
                      report: ProgressCallback, cancel: threading.Event | None,
                      ) -> tuple[list[GeneratedTest], list[GeneratedTest], list[str], str, Any]:
    """`validate = "run"`: (delivered tests, rejected ones, notes, the header with any import added,
    what `assure` measured, None when the tests were not run).

    The candidates go through `unitune.adapters.assure` (checks, a run, repair, three more runs,
    coverage and mutants, selection) in the sandbox, with the editor's unsaved focal file. When
    the tests cannot be run here (Java, no pytest, a test file outside the project, no sandbox),
    they are kept as checked for syntax, with a note that says so."""
    from unitune import sandbox
    from unitune.adapters.assure import Job, assure
    from unitune.errors import UnituneError
    from unitune.languages import PYTHON

    root = (Path(request.project_root) if request.project_root else find_project_root(request.path)).resolve()
    try:
        test_rel = location.path.resolve().relative_to(root).as_posix()
        focal_rel = Path(request.path).resolve().relative_to(root).as_posix()
    except ValueError:
        return tests, [], [(f"validate = run: {location.path} is outside the project {root}; the tests were "
                            "checked for syntax only")], header, None
    settings = request.settings
    job = Job(root=root, test_rel=test_rel, focal_rel=focal_rel, focal_source=file.text, function=function,
              location=location, existing=existing, header=header, framework=framework, language=file.language,
              test_class=prompt.test_class, unsaved={focal_rel: file.text} if request.text is not None else {},
              module_import=location.module_import, repair_mode=settings.repair,
              python=sandbox.project_python(root, settings.python), report=report, cancel=cancel)
    unrunnable_key = (str(root), job.python, file.language)
    if unrunnable_key in _UNRUNNABLE:  # said once; not tried again by this process
        return tests, [], [], header, None
    try:
        if file.language != PYTHON:
            return _assure_java(job, tests, report, request)
        outcome = assure(job, tests, VALIDATING)
    except sandbox.SandboxError as error:
        _UNRUNNABLE[unrunnable_key] = str(error)
        return tests, [], [f"validate = run: the tests cannot be run here ({error}); until unitune restarts, tests "
                           "are checked for syntax only (`unitune doctor` says what is missing)"], header, None
    except UnituneError:
        raise
    notes: list[str] = []
    for test in outcome.kept:
        test.adds = outcome.values[test.name].adds
    counts = ", ".join(f"{value} {key}" for key, value in outcome.stage_counts.items())
    log_event(log, "generate.assured", request_id=request.request_id, stages=counts)
    report(VALIDATING, 1.0, f"{len(outcome.kept)} of {len(tests)} delivered ({counts})")
    return outcome.kept, outcome.rejected, notes, job.header, outcome


def _node_id(text: str, name: str) -> str:
    """The test `name` in the test file `text` as pytest selects it (`Class::name` inside classes)."""
    import ast

    try:
        tree = ast.parse(text)
    except SyntaxError:
        return name
    found: list[str] = []

    def visit(body, classes: tuple[str, ...]) -> None:
        for node in body:
            if isinstance(node, ast.ClassDef):
                visit(node.body, (*classes, node.name))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
                found.append("::".join((*classes, name)))

    visit(tree.body, ())
    return found[-1] if found else name
