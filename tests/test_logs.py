"""Logging set-up (`unitune.logs.configure`): a process that runs several commands (the test suite, a
long-lived server) logs each to the stderr it has at the time, never to a stream an earlier one closed."""

from __future__ import annotations

import io
import logging
import sys

from unitune.logs import LOGGER_NAME, configure, get_logger, log_event


def test_each_command_logs_to_the_stderr_it_has_now(monkeypatch, capsys):
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    configure(verbose=True)
    log_event(get_logger("remote"), "first.event", n=1, level=logging.WARNING)
    first.close()  # as a test's captured stream is closed once the test ends
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    configure(verbose=False)
    log_event(get_logger("remote"), "second.event", n=2, level=logging.WARNING)
    assert "second.event n=2" in second.getvalue() and "Logging error" not in second.getvalue()
    handlers = [h for h in logging.getLogger(LOGGER_NAME).handlers if type(h) is logging.StreamHandler]
    assert len(handlers) == 1 and handlers[0].level == logging.WARNING
