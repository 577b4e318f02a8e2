"""Model work for the language server: one runtime (base model + resident adapters), one worker
thread, explicit state.

Everything that touches the model runs on the worker thread, so the event loop keeps answering code
actions and other requests while a model loads or generates. Requests from different workspace
folders with the same base model share the runtime and only switch adapters; a folder asking for
another base model replaces it (two bases rarely fit in memory at once).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
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


class ModelEngine:
    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="unitune-model")
        self.runtime = None  # unitune.adapters.runtime.ModelRuntime, created on first use
        self.jobs: dict[str, Job] = {}
        self.generations = 0

    def runtime_for(self, spec) -> Any:
        """The runtime for `spec` (a ModelSpec), replacing one for another base model. Worker thread only."""
        from unitune.adapters.runtime import ModelRuntime

        if self.runtime is None or self.runtime.spec != spec:
            if self.runtime is not None:
                log_event(log, "runtime.replaced", old=self.runtime.spec.model, new=spec.model)
            self.runtime = ModelRuntime(spec)
        return self.runtime

    async def run(self, function: Callable, *args) -> Any:
        """Run `function(*args)` on the model thread and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, function, *args)

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
        }

    def shutdown(self) -> None:
        for job in self.jobs.values():
            job.cancel.set()
        self.executor.shutdown(wait=False, cancel_futures=True)
