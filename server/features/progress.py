"""Work-done progress for long commands, created by the server, cancellable by the client, and
safe to report from the model's worker thread."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

from lsprotocol import types

from unitune.server.server import UnituneServer

# Reports closer together than this are dropped (the last one of a stage always goes out).
MIN_INTERVAL = 0.1


class Progress:
    """One progress bar in the client; `report` may be called from any thread."""

    def __init__(self, ls: UnituneServer, title: str, cancel: threading.Event):
        self.ls = ls
        self.title = title
        self.cancel = cancel
        self.token: str | None = None
        self.loop = asyncio.get_running_loop()
        self._last = 0.0
        self._last_percent = -1

    async def begin(self, message: str) -> None:
        window = self.ls.client_capabilities.window
        if not (window and window.work_done_progress):
            return
        token = f"unitune-{uuid.uuid4().hex[:12]}"
        try:
            await self.ls.work_done_progress.create_async(token)
        except Exception:  # the client refused a progress bar: work on without one
            return
        self.token = token
        future = self.ls.work_done_progress.tokens.get(token)
        if future is not None:  # the client's cancel button
            future.add_done_callback(lambda f: self.cancel.set() if f.cancelled() else None)
        self.ls.work_done_progress.begin(token, types.WorkDoneProgressBegin(
            title=self.title, message=message, percentage=0, cancellable=True))

    def report(self, stage: str, fraction: float, message: str) -> None:
        if self.token is None:
            return
        percent = max(0, min(100, int(fraction * 100)))
        now = time.monotonic()
        if percent == self._last_percent or (now - self._last < MIN_INTERVAL and percent < 100):
            return
        self._last, self._last_percent = now, percent
        value = types.WorkDoneProgressReport(message=f"{stage}: {message}", percentage=percent, cancellable=True)
        self.loop.call_soon_threadsafe(self.ls.work_done_progress.report, self.token, value)

    def end(self, message: str) -> None:
        if self.token is None:
            return
        self.ls.work_done_progress.end(self.token, types.WorkDoneProgressEnd(message=message))
        self.ls.work_done_progress.tokens.pop(self.token, None)
        self.token = None


def cancel_on_request_cancel(ls: UnituneServer, cancel: threading.Event) -> None:
    """Set `cancel` when the client sends `$/cancelRequest` for the request being handled."""
    msg_id = ls.protocol._ctx_msg_id.get(None)
    future = ls.protocol._request_futures.get(msg_id) if msg_id is not None else None
    if future is not None:
        future.add_done_callback(lambda f: cancel.set() if f.cancelled() else None)
