"""From a position in a file to tests ready to insert: the one path `unitune generate` and the
language server share.

    focal method (tree-sitter) -> test file and framework (placement) -> prompt (unitune.prompt,
    trimmed to the model's context) -> model (runtime: base + the project's adapter) ->
    post-processing (cut, check, repair, dedupe, rename) -> an insertion plan for the test file.

This module owns `TestGenerator`, which runs those steps in order, and the rounds after the first:
new candidates when nothing survived, then calls with other arguments while lines, branches or mutants
are left. (Rounds that asked the model again for the lines left unrun added nothing in 30 tries over
the real-code set and HumanEval once the argument variations existed, and cost 16% of the real-code
time: they are gone.) Each test is handed over as soon as it is delivered (`request.on_delivered`). The request and the steps before the model are in
`unitune.request`, the steps after it (post-processing, `validate = "run"`) in
`unitune.assured.delivery`. Progress is reported as (stage, fraction, message); a
`threading.Event` cancels between tokens. Nothing is written here: the caller applies the plan
(`--write`, or the language server's workspace edit).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from unitune.assured.assure import Assured
from unitune.assured.delivery import Delivery, NothingDelivered, check_whole_file, deliver, failure_hint
from unitune.runtime.generation import GenerationStats, SamplingOptions
from unitune.assured.postprocess import GeneratedTest
from unitune.request import (
    GENERATING, LOADING, VALIDATING, GenerationRequest, PreparedRequest, ProgressCallback, fit_prompt, prepare,
    prompt_budget, prompt_options,
)
from unitune.runtime.runtime import Runtime
from unitune.assured.argument_variation import focal_inputs, varied_bodies
from unitune.errors import GenerationFailed
from unitune.focal import Function, functions
from unitune.insertion import Insertion, plan_insertion
from unitune.logs import get_logger, log_event
from unitune.placement import TestLocation
from unitune.prompt import Prompt, model_input

log = get_logger("service")

#: Candidates a new round samples (in one batch, at a temperature) when nothing of a round survived, and
#: how many such rounds at most (the time budget may allow fewer): a user waits for each one.
RETRY_CANDIDATES = 3
RETRY_ROUNDS = 2
#: Rounds of calls with other arguments at most while lines or branches are left: each tries
#: `SCREENED_VARIANTS` calls and measures in full only the `MEASURED_VARIANTS` that reach the most the
#: others do not (a first run tells). Then, while mutants survive, one round measures
#: `MEASURED_VARIANTS` calls in full.
VARIATION_ROUNDS = 3
SCREENED_VARIANTS = 48
MEASURED_VARIANTS = 12


def _reaches_more(better: Delivery | None, delivery: Delivery) -> bool:
    """Whether a later round's delivery (None: it failed) reaches more of the focal function than the one before."""
    return better is not None and better.assured is not None \
        and sum(better.assured.reach()) > sum(delivery.assured.reach())


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
    all_new_tokens: int = 0  # what the model wrote over every round of the request
    engine: str = ""  # what ran the model (`unitune.runtime.engines`), and why
    engine_reason: str = ""

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
            "all_new_tokens": self.all_new_tokens,
            "engine": self.engine,
            "engine_reason": self.engine_reason,
            "timings": {key: round(value, 4) for key, value in self.timings.items()},
            "notes": self.notes,
        }


@dataclass
class PlannedRequest:
    """A request between `TestGenerator.plan` and `finish`: what the model is given, and how."""

    request: GenerationRequest
    report: ProgressCallback
    cancel: threading.Event | None
    started: float
    timings: dict[str, float]
    prepared: PreparedRequest
    prompt: Prompt
    text: str  # the model's input (`unitune.prompt.model_input`)
    options: SamplingOptions
    budget: int  # prompt tokens
    notes: list[str]
    new_tokens: list[int] = field(default_factory=list)  # what the model wrote, per round
    handed_over: set[str] = field(default_factory=set)  # `body_key`s of the tests given to `request.on_delivered`


class TestGenerator:
    """Generates tests with one runtime (shared by every request of a process), wherever it runs the
    model (`unitune.runtime.runtime.Runtime`)."""

    __test__ = False  # not a pytest test class

    def __init__(self, runtime: Runtime):
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
        timings["prepare"] = time.perf_counter() - started

        report(LOADING, 0.0, f"loading {self.runtime.spec.model}")
        mark = time.perf_counter()
        base = self.runtime.load(progress=lambda stage, done, total: report(
            LOADING, done / total if total else 1.0, f"{stage} {self.runtime.spec.model} (first use only)"))
        timings["load"] = time.perf_counter() - mark

        settings = request.settings
        budget = prompt_budget(base, settings.max_new_tokens)
        prompt, notes = fit_prompt(prepared, base.tokenizer, budget, settings.context, options=prompt_options(request))
        text = model_input(base.tokenizer, prompt.text, prompt.language, max_tokens=budget,
                           format_version=prompt.format_version)
        options = SamplingOptions(max_new_tokens=settings.max_new_tokens, candidates=settings.candidates)
        return PlannedRequest(request, report, cancel, started, timings, prepared, prompt, text, options, budget, notes)

    def sample(self, planned: "PlannedRequest") -> GenerationStats:
        """The model's completions for one planned request, with its own adapter."""
        request, report, settings = planned.request, planned.report, planned.request.settings
        mark = time.perf_counter()
        self.runtime.activate(request.adapter)
        planned.timings["load"] += time.perf_counter() - mark
        report(GENERATING, 0.0, f"generating tests for {planned.prepared.function.qualified_name}")

        def on_token(step: int) -> None:
            report(GENERATING, min(1.0, step / settings.max_new_tokens), f"{step} tokens")

        mark = time.perf_counter()
        stats = self._complete(planned.text, planned.options, planned.prompt.stop_scanner, settings,
                               context_length=planned.budget + settings.max_new_tokens, cancel=planned.cancel,
                               on_token=on_token, request_id=request.request_id)
        planned.timings["generate"] = time.perf_counter() - mark
        planned.new_tokens.append(stats.new_tokens)
        return stats

    def _complete(self, text: str, options: SamplingOptions, make_scanner, settings, *, context_length: int,
                  cancel: threading.Event | None, request_id: str, on_token=None) -> GenerationStats:
        """The model's completions of `text` with the active adapter, wherever the runtime runs it; an
        inference server gets the request's time budget as its timeout."""
        return self.runtime.complete(text, options, make_scanner, context_length=context_length, cancel=cancel,
                                     on_token=on_token, request_id=request_id, timeout=settings.time_budget)

    def finish(self, planned: "PlannedRequest", stats: GenerationStats, *, more_rounds: bool = True) -> GenerationOutcome:
        """Validate what the model wrote (the assured pipeline) and plan the insertion. With
        `more_rounds`: new rounds of candidates while nothing survived (`retry_rounds`), then for the
        lines, branches and mutants the tests leave other arguments (`variation_rounds`), as the time
        budget allows. The tests reach `request.on_delivered` as each round delivers them."""
        request, timings = planned.request, planned.timings
        function, location = planned.prepared.function, planned.prepared.location
        mark = time.perf_counter()
        try:
            delivery = deliver(request, planned.prepared, planned.prompt,
                               [completion.text for completion in stats.completions], planned.notes, planned.report,
                               planned.cancel)
        except NothingDelivered as failure:
            if not more_rounds:
                raise
            timings["validate"] = time.perf_counter() - mark
            delivery = self.retry_rounds(planned, failure, stats)
        timings.setdefault("validate", time.perf_counter() - mark)
        timings["first_test"] = time.perf_counter() - planned.started
        self._hand_over(planned, delivery, stats)
        if more_rounds:
            delivery = self.variation_rounds(planned, delivery, stats)
        self._hand_over(planned, delivery, stats)
        timings["total"] = time.perf_counter() - planned.started
        outcome = self._outcome(planned, delivery.kept, delivery, stats)
        log_event(log, "generate.outcome", request_id=request.request_id, function=function.qualified_name,
                  kept=len(outcome.tests), rejected=len(outcome.rejected), test_file=location.path,
                  seconds=timings["total"], first_test_seconds=timings["first_test"], new_tokens=sum(planned.new_tokens))
        return outcome

    def _outcome(self, planned: "PlannedRequest", tests: list[GeneratedTest], delivery: Delivery,
                 stats: GenerationStats) -> GenerationOutcome:
        prepared = planned.prepared
        file, function, location = prepared.file, prepared.function, prepared.location
        insertion = plan_insertion(location, prepared.existing_test, tests, language=file.language, framework=prepared.framework,
                                   header=delivery.header, test_class=planned.prompt.test_class)
        check_whole_file(prepared.existing_test, insertion, file.language)
        served_by = self.runtime.served_by
        return GenerationOutcome(planned.request.request_id, function, planned.prompt, location, tests,
                                 delivery.rejected, insertion, stats, planned.timings, planned.notes, delivery.header,
                                 sum(planned.new_tokens), served_by.engine, served_by.reason)

    def _hand_over(self, planned: "PlannedRequest", delivery: Delivery, stats: GenerationStats) -> None:
        """Give `request.on_delivered` the tests of `delivery` it has not had yet."""
        on_delivered = planned.request.on_delivered
        # by what a test does, not its name: a later round may rename a test already handed over
        fresh = [test for test in delivery.kept if test.body_key not in planned.handed_over]
        if on_delivered is None or not fresh:
            return
        planned.handed_over.update(test.body_key for test in fresh)
        log_event(log, "generate.delivered", request_id=planned.request.request_id, tests=len(fresh),
                  seconds=time.perf_counter() - planned.started)
        on_delivered(self._outcome(planned, fresh, delivery, stats))

    def retry_rounds(self, planned: "PlannedRequest", failure: NothingDelivered, first: GenerationStats) -> Delivery:
        """Nothing of the first round survived: while the time budget allows a round as long as the
        last one (`RETRY_ROUNDS` at most), sample `RETRY_CANDIDATES` new candidates at a temperature,
        with what went wrong shown to the model (`unitune.prompt.failure_note`). The first round that
        delivers wins; when none does, `GenerationFailed` says what was tried and why each round's tests
        were dropped."""
        settings, function = planned.request.settings, planned.prepared.function
        greedy = "greedy" if len(first.completions) == 1 else "sampled"
        tried = [f"{_count(failure.candidates, 'candidate')} ({greedy}), dropped: {'; '.join(failure.reasons)}"]
        round_seconds = planned.timings.get("generate", 0.0) + planned.timings.get("validate", 0.0)
        rounds = 0
        while rounds < RETRY_ROUNDS and time.perf_counter() - planned.started + round_seconds <= settings.time_budget:
            rounds += 1
            mark = time.perf_counter()
            shown = failure_hint(failure.reasons, function.called_as[0])
            planned.report(GENERATING, 0.0, f"round {rounds + 1}: {RETRY_CANDIDATES} new candidates ({shown})")
            options = SamplingOptions(max_new_tokens=settings.max_new_tokens, candidates=RETRY_CANDIDATES, seed=rounds)
            prompt, stats = self._round(planned, options, failure=shown)
            try:
                delivery = deliver(planned.request, planned.prepared, prompt, [c.text for c in stats.completions],
                                   planned.notes, planned.report, planned.cancel)
            except NothingDelivered as again:
                failure = again
                tried.append(f"{_count(again.candidates, 'candidate')} sampled with the problem shown, dropped: "
                             f"{'; '.join(again.reasons)}")
                planned.timings[f"retry_round_{rounds}"] = round_seconds = time.perf_counter() - mark
                continue
            planned.timings[f"retry_round_{rounds}"] = time.perf_counter() - mark
            planned.notes.append(f"round {rounds + 1} delivered; before it, " + "; then ".join(tried))
            return delivery
        rounds_tried = "; ".join(f"round {number}: {what}" for number, what in enumerate(tried, 1))
        stopped = (f"after {RETRY_ROUNDS} new rounds" if rounds == RETRY_ROUNDS
                   else f"no time was left for another round within time_budget = {settings.time_budget} s")
        raise GenerationFailed(
            f"nothing delivered for {function.qualified_name}: {rounds_tried}; {stopped}, nothing was inserted. "
            "A larger model or an adapter trained on this project may do better")

    def variation_rounds(self, planned: "PlannedRequest", delivery: Delivery, stats: GenerationStats) -> Delivery:
        """The delivered tests' calls to the focal function with one input changed or an optional
        parameter added (`unitune.assured.argument_variation`), each one's result or exception observed in the
        sandbox and written as its check; kept only when they reach more. No model call. While a line or branch is left, rounds (`VARIATION_ROUNDS` at most)
        screen many calls by what their first run reaches, the calls not tried yet and the new tests'
        own variants; then, while mutants survive, one round measures a few calls in full against them
        (an input that runs no new line, `Version(0, 2, 3)`, may still catch `value < 0` made `<=`)."""
        if not isinstance(delivery.assured, Assured):
            return delivery  # Java's checks: its tests are not measured line by line and mutant by mutant
        file, function = planned.prepared.file, planned.prepared.function
        constructor = next((other for other in functions(file) if other.name == "__init__"
                            and other.class_path == function.class_path), None) if function.class_path else None
        inputs = focal_inputs(function.source(file), constructor.source(file) if constructor is not None else None)

        def variants(limit: int, tried: frozenset[str] = frozenset()) -> list[str]:
            return varied_bodies([(test.source, test.name) for test in delivery.kept], function.called_as,
                                 planned.prompt.indent, limit=limit, inputs=inputs, tried=tried)

        tried: set[str] = set()
        for round_number in range(1, VARIATION_ROUNDS + 1):
            if delivery.assured.runs_everything():
                break
            if not self._time_left(planned):
                planned.notes.append(f"{delivery.assured.unreached()} of {function.qualified_name} not reached; no time "
                                     f"left for another round within time_budget = {planned.request.settings.time_budget} s")
                break
            bodies = variants(SCREENED_VARIANTS, frozenset(tried))
            if not bodies:
                break
            tried.update(bodies)
            # a round that reached nothing goes on: the calls not tried yet may reach what these did not
            delivery = self._varied(planned, delivery, bodies, f"variation_round_{round_number}", screen=True)
            self._hand_over(planned, delivery, stats)
        if delivery.assured.reach()[2] >= delivery.assured.mutants or not self._time_left(planned):
            return delivery
        bodies = variants(MEASURED_VARIANTS)
        return self._varied(planned, delivery, bodies, "mutant_round", screen=False) if bodies else delivery

    def _time_left(self, planned: "PlannedRequest") -> bool:
        """Whether the request's time budget allows another round as long as its first validation."""
        return time.perf_counter() - planned.started + planned.timings.get("validate", 0.0) \
            <= planned.request.settings.time_budget

    def _varied(self, planned: "PlannedRequest", delivery: Delivery, bodies: list[str], timing: str, *,
                screen: bool) -> Delivery:
        """One round of varied calls (`bodies`) beside the delivered tests: the delivery with those that
        reach more, or the same delivery. With `screen`, only the calls whose first run reaches new lines or
        branches are observed and measured against the mutants."""
        function, prompt = planned.prepared.function, planned.prompt
        mark = time.perf_counter()
        planned.report(VALIDATING, 0.0, f"{len(bodies)} calls with other arguments, for {delivery.assured.unreached()}")
        opened = ["):\n" + body for body in bodies] if prompt.in_signature else bodies  # `def test_x(`: no fixture
        try:
            better = deliver(planned.request, planned.prepared, prompt, opened, [], planned.report, planned.cancel,
                             previous=delivery.kept, screen=MEASURED_VARIANTS if screen else 0)
        except GenerationFailed:
            better = None
        planned.timings[timing] = time.perf_counter() - mark
        if not _reaches_more(better, delivery):
            planned.notes.append(f"{len(bodies)} calls with other arguments reached no more of {function.qualified_name}")
            return delivery
        better.rejected = delivery.rejected + better.rejected
        return better

    def _round(self, planned: "PlannedRequest", options: SamplingOptions, *, failure: str) -> tuple[Prompt, GenerationStats]:
        """One more round of a request when nothing of the one before survived: its prompt with what went
        wrong, and what the model wrote for it."""
        request, settings = planned.request, planned.request.settings
        base = self.runtime.load()
        budget = prompt_budget(base, settings.max_new_tokens)
        prompt, _ = fit_prompt(planned.prepared, base.tokenizer, budget, settings.context, failure=failure, options=prompt_options(request))
        text = model_input(base.tokenizer, prompt.text, prompt.language, max_tokens=budget,
                           format_version=prompt.format_version)
        stats = self._complete(text, options, prompt.stop_scanner, settings, context_length=budget + settings.max_new_tokens,
                               cancel=planned.cancel, request_id=request.request_id)
        planned.new_tokens.append(stats.new_tokens)
        return prompt, stats


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'s' if number != 1 else ''}"

