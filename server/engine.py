"""Model work for the language server: one runtime (base model + resident adapters), one worker
thread, explicit state.

Everything that touches the model runs on the worker thread, so the event loop keeps answering code
actions and other requests while a model loads or generates. Requests from different workspace
folders with the same base model share the runtime and only switch adapters; a folder asking for
another base model replaces it (two bases rarely fit in memory at once). Generation requests wait in
a queue (`run_batched`): when the worker is free it takes every waiting request for the same base
model at once, so their tests are written in one mixed-adapter batch (`unitune.generation.batching`).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from unitune.logs import get_logger, log_event

log = get_logger("server.engine")


@dataclass
class Job:
    """A generation or training run the user can cancel."""

    id: str
    kind: str  # "generate" or "train"
    title: str
    cancel: threading.Event = field(default_factory=threading.Event)
    stage: str = "queued"


@dataclass
class Queued:
    """Work waiting for the model thread, with the key it may share a batch by."""

    key: Any
    work: Any
    future: Future = field(default_factory=Future)


class ModelEngine:
    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unitune-model")
        self.runtime = None  # a ModelRuntime (or RemoteRuntime, with server_url), created on first use
        self.jobs: dict[str, Job] = {}
        self.generations = 0
        self.batches = 0  # groups of more than one request run together
        self.queue: list[Queued] = []
        self.queue_lock = threading.Lock()

    def runtime_for(self, spec) -> Any:
        """The runtime for `spec` (a ModelSpec), replacing one for another base model. Worker thread only."""
        from unitune.runtime.runtime import runtime_for

        if self.runtime is None or self.runtime.spec != spec:
            if self.runtime is not None:
                log_event(log, "runtime.replaced", old=self.runtime.spec.model, new=spec.model)
                getattr(self.runtime, "close", lambda: None)()  # llama.cpp's server of the old spec stops
            self.runtime = runtime_for(spec)  # in this process, or the inference server of `server_url`
        return self.runtime

    async def run(self, function: Callable, *args) -> Any:
        """Run `function(*args)` on the model thread and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, function, *args)

    async def run_batched(self, key: Any, work: Any, run_group: Callable[[list], list]) -> Any:
        """Queue `work`; on the model thread, every queued work with the same `key` is taken at once
        and `run_group(works)` returns one result (or exception) per work, in order."""
        item = Queued(key, work)
        with self.queue_lock:
            self.queue.append(item)
        self.executor.submit(self._drain, run_group)  # one drain per item: none is left waiting
        return await asyncio.wrap_future(item.future)

    def _drain(self, run_group: Callable[[list], list]) -> None:
        with self.queue_lock:
            if not self.queue:
                return  # an earlier drain took this one's work with its own group
            self.queue = [item for item in self.queue if not item.future.cancelled()]  # its request was cancelled
            if not self.queue:
                return
            key = self.queue[0].key
            group = [item for item in self.queue if item.key == key]
            self.queue = [item for item in self.queue if item.key != key]
        if len(group) > 1:
            self.batches += 1
            log_event(log, "engine.group", size=len(group))
        try:
            results = run_group([item.work for item in group])
        except BaseException as error:  # noqa: BLE001 - handed to every waiting request
            results = [error] * len(group)
        for item, result in zip(group, results):
            try:
                if isinstance(result, BaseException):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)
            except InvalidStateError:  # cancelled while it ran: nobody waits for it
                continue

    def start_job(self, job: Job) -> Job:
        self.jobs[job.id] = job
        return job

    def end_job(self, job: Job) -> None:
        self.jobs.pop(job.id, None)

    def status(self) -> dict:
        runtime = self.runtime.status() if self.runtime is not None else {"state": "idle", "model": None}
        return {
            "runtime": runtime,
            "jobs": [{"id": j.id, "kind": j.kind, "title": j.title, "stage": j.stage} for j in self.jobs.values()],
            "generations": self.generations,
            "batches": self.batches,
        }

    def shutdown(self) -> None:
        from unitune.errors import GenerationCancelled

        for job in self.jobs.values():
            job.cancel.set()
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self.runtime is not None:
            getattr(self.runtime, "close", lambda: None)()
        with self.queue_lock:  # their drains were cancelled with the executor's queue
            waiting, self.queue = self.queue, []
        for item in waiting:
            if not item.future.done():
                item.future.set_exception(GenerationCancelled("the server is shutting down; nothing was changed"))
