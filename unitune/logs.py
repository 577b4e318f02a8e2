"""Structured logs: one line per event, `event key=value ...`, with a request id for every model call.

The command line logs to stderr (warnings only, unless `--verbose`); the language server logs to a
file under the data directory. Log lines are meant for people and for grep, so values are quoted only
when they need to be.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import time

LOGGER_NAME = "unitune"
_counter = itertools.count(1)


def get_logger(part: str) -> logging.Logger:
    return logging.getLogger(f"{LOGGER_NAME}.{part}")


def new_request_id(prefix: str = "req") -> str:
    """A short id unique within the process and unlikely to repeat across processes."""
    return f"{prefix}-{os.getpid() % 10000:04d}-{next(_counter):05d}-{int(time.time() * 1000) % 100000:05d}"


def _format_value(value) -> str:
    if isinstance(value, float):
        value = f"{value:.4g}"
    text = str(value)
    if not text or any(char in text for char in ' ="\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields) -> None:
    """Log `event` with `fields` as `key=value` pairs (None values left out)."""
    if not logger.isEnabledFor(level):
        return
    pairs = " ".join(f"{key}={_format_value(value)}" for key, value in fields.items() if value is not None)
    logger.log(level, f"{event} {pairs}".rstrip())


def configure(verbose: bool = False, file: str | os.PathLike | None = None) -> None:
    """Send unitune's logs to stderr (and `file`), at INFO when `verbose`, else WARNING."""
    root = logging.getLogger(LOGGER_NAME)
    root.setLevel(logging.DEBUG if verbose else logging.INFO if file else logging.WARNING)
    formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    streams = [h for h in root.handlers if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]
    if not streams:
        streams = [logging.StreamHandler()]
        streams[0].setFormatter(formatter)
        root.addHandler(streams[0])
    for stream in streams:  # a process that runs several commands: each writes to the stderr it has now
        try:
            stream.setStream(sys.stderr)
        except ValueError:  # the old stream was closed: nothing to flush into it
            stream.stream = sys.stderr
        stream.setLevel(logging.DEBUG if verbose else logging.WARNING)
    if file is not None:
        os.makedirs(os.path.dirname(os.fspath(file)) or ".", exist_ok=True)
        handler = logging.FileHandler(file, encoding="utf-8")
        handler.setFormatter(formatter)
        root.addHandler(handler)
