"""The command line's one progress display, on stderr, for every long job (loading or converting a
model, mining, training, evaluating, generating).

On a terminal it is a tqdm bar rewritten in place (stage, count or percentage, rate and time left,
and a short detail such as the current file or the loss). Written to a log file, a bar's carriage
returns would pile up into one unreadable line, so there it writes whole lines instead: one per
update when each is worth keeping (`log_every_update`, e.g. one per judged problem), else one when a
stage starts, one every `log_every_seconds` while it runs (a training run: minutes of silence would look
like a hang), and one when it ends.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

#: The longest detail shown after a bar (a file path can be long; the bar must stay on one line).
MAX_DETAIL_CHARS = 60


class ProgressLine:
    """`update(done, total, stage, detail)` as work advances, `close()` at the end (also on errors:
    it clears the bar)."""

    def __init__(self, stream: TextIO | None = None, unit: str = "it", log_every_update: bool = False,
                 percent: bool = False, timing: bool = True, log_every_seconds: float | None = None) -> None:
        self._stream = stream or sys.stderr
        self._log_every_seconds = log_every_seconds
        self._last_logged = 0.0
        self._unit = unit
        self._log_every_update = log_every_update
        self._percent = percent  # a fraction of a whole (bytes, a model's layers): show 0-100 %, not counts
        self._timing = timing  # tqdm's rate and time left; off where the caller knows better (a time budget)
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._bar: tqdm | None = None
        self._stage: str | None = None
        self._logged_end = False

    def update(self, done: float, total: float | None, stage: str, detail: str = "") -> None:
        if self._percent:
            done, total = (round(100 * done / total) if total else 100), 100
        if self._tty:
            self._draw(done, total, stage, detail)
        else:
            self._log(done, total, stage, detail)
        self._stage = stage

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._stage = None

    def _draw(self, done: float, total: float | None, stage: str, detail: str) -> None:
        if self._bar is None or stage != self._stage:
            self.close()
            self._bar = tqdm(total=total, desc=stage, unit=self._unit, file=self._stream, leave=False,
                             dynamic_ncols=True, mininterval=0.2, bar_format=self._format())
        self._bar.total = total  # an estimate may change as work goes (steps left in a time budget)
        self._bar.n = done
        self._bar.set_postfix_str(_shorten(detail), refresh=False)
        self._bar.refresh()

    def _format(self) -> str | None:
        if self._percent:
            return "{desc}: {percentage:3.0f}%|{bar:25}| {postfix}"
        if not self._timing:
            return "{desc}: {n_fmt}/{total_fmt} |{bar:25}| {postfix}"
        return None  # tqdm's own: count, bar, elapsed<left, rate

    def _log(self, done: float, total: float | None, stage: str, detail: str) -> None:
        new_stage = stage != self._stage
        if new_stage:
            self._logged_end = False
        finished = total is not None and done >= total
        due = self._log_every_seconds is not None and time.monotonic() - self._last_logged >= self._log_every_seconds
        if not (self._log_every_update or new_stage or due or (finished and not self._logged_end)):
            return
        self._logged_end = self._logged_end or finished
        self._last_logged = time.monotonic()
        count = f"{done:.0f}%" if self._percent else (f"{done:.0f}/{total:.0f}" if total else f"{done:.0f}")
        print(f"{stage}: {count}" + (f" {detail}" if detail else ""), file=self._stream, flush=True)


def _shorten(text: str) -> str:
    return text if len(text) <= MAX_DETAIL_CHARS else "..." + text[-(MAX_DETAIL_CHARS - 3):]
