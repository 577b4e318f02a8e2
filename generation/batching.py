"""Several requests at once: their first samples in one mixed-adapter batch.

A language server that serves several projects gets requests with different adapters. When more than
one is waiting, the model writes all of their first tests in one batch, each row with its own LoRA
adapter (PEFT's `adapter_names=`; the bare base for a project without one), instead of one request
after another; then each request is validated on its own (sandbox, coverage rounds), as alone.

Only greedy requests (`candidates = 1`, the default) whose adapters are LoRA or none share a batch:
PEFT mixes LoRA adapters per row, not (IA)³ or prompt tuning, and one `generate` call samples every
row alike. The others are generated one by one, as they would be alone. A request cancelled while its
batch runs ends as cancelled; its neighbours go on. With an inference server (`server_url`) each
request is sent on its own: the server batches what it is sent.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from unitune.adapters.constants import LORA
from unitune.runtime.generation import GenerationStats, SamplingOptions, generate_batch
from unitune.request import GENERATING, GenerationRequest, ProgressCallback
from unitune.generation.service import GenerationOutcome, PlannedRequest, TestGenerator
from unitune.errors import GenerationCancelled
from unitune.logs import get_logger, log_event, new_request_id

log = get_logger("batching")


@dataclass
class BatchJob:
    request: GenerationRequest
    report: ProgressCallback | None = None
    cancel: threading.Event | None = None


class _AllCancelled:
    """Looks like a `threading.Event` to the stop rule: set once every request of the batch is cancelled."""

    def __init__(self, events: list[threading.Event | None]):
        self.events = events

    def is_set(self) -> bool:
        return all(event is not None and event.is_set() for event in self.events)


def batchable(planned: PlannedRequest) -> bool:
    adapter = planned.request.adapter
    return planned.options.candidates == 1 and (adapter is None or getattr(adapter, "method", None) == LORA)


def generate_together(generator: TestGenerator, jobs: list[BatchJob]) -> list[GenerationOutcome | Exception]:
    """The outcome of each job (or the exception it ended with), in order."""
    results: list[GenerationOutcome | Exception | None] = [None] * len(jobs)
    planned: dict[int, PlannedRequest] = {}
    for index, job in enumerate(jobs):
        try:
            planned[index] = generator.plan(job.request, job.report, job.cancel)
        except Exception as error:  # noqa: BLE001 - each request ends with its own error
            results[index] = error
    together = [index for index, plan in planned.items() if batchable(plan)]
    if together:  # rows of one batch make the same number of tokens at most
        tokens = planned[together[0]].options.max_new_tokens
        together = [index for index in together if planned[index].options.max_new_tokens == tokens]
    samples: dict[int, GenerationStats | Exception] = {}
    if len(together) > 1 and generator.runtime.batches_here:
        try:
            samples.update(_sample_batch(generator, [planned[index] for index in together], together))
        except GenerationCancelled as cancelled:  # every request of the batch was cancelled
            samples.update(dict.fromkeys(together, cancelled))
        except Exception as error:  # noqa: BLE001 - a batch that fails is retried one request at a time
            log_event(log, "generate.batch_failed", error=f"{type(error).__name__}: {error}")
    for index, plan in planned.items():
        try:
            stats = samples.get(index)
            if isinstance(stats, Exception):
                raise stats
            results[index] = generator.finish(plan, stats if stats is not None else generator.sample(plan))
        except Exception as error:  # noqa: BLE001
            results[index] = error
    return results  # type: ignore[return-value]


def _sample_batch(generator: TestGenerator, plans: list[PlannedRequest],
                  indices: list[int]) -> dict[int, GenerationStats | Exception]:
    runtime = generator.runtime
    batch_id = new_request_id("batch")
    longest = plans[0].options.max_new_tokens
    for plan in plans:
        plan.report(GENERATING, 0.0, f"generating tests for {plan.prepared.function.qualified_name} "
                                     f"(with {len(plans) - 1} other request(s) in one batch)")

    def on_token(step: int) -> None:
        for plan in plans:
            plan.report(GENERATING, min(1.0, step / longest), f"{step} tokens")

    log_event(log, "generate.batch_start", request_id=batch_id, rows=len(plans),
              requests=[plan.request.request_id for plan in plans],
              adapters=[getattr(plan.request.adapter, "name", None) for plan in plans])
    mark = time.perf_counter()
    with runtime.mixed_lora_model([plan.request.adapter for plan in plans]) as (model, tokenizer, names):
        completions = generate_batch(
            model, tokenizer, [plan.text for plan in plans], SamplingOptions(max_new_tokens=longest),
            [plan.prompt.stop_scanner for plan in plans], cancel=_AllCancelled([plan.cancel for plan in plans]),
            on_token=on_token, request_id=batch_id, adapter_names=names)
    seconds = time.perf_counter() - mark
    samples: dict[int, GenerationStats | Exception] = {}
    for index, plan, completion in zip(indices, plans, completions):
        plan.timings["generate"] = seconds
        if plan.cancel is not None and plan.cancel.is_set():
            samples[index] = GenerationCancelled("generation cancelled; nothing was changed")
            continue
        prompt_tokens = len(tokenizer(plan.text, add_special_tokens=False)["input_ids"])
        samples[index] = GenerationStats(plan.request.request_id, prompt_tokens, completion.tokens, seconds, False,
                                         [completion])
    log_event(log, "generate.batch_done", request_id=batch_id, rows=len(plans), seconds=seconds)
    return samples
