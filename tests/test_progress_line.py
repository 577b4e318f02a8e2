"""The command line's progress display: a bar on a terminal, whole lines in a log file."""

import io

from unitune.progress_line import ProgressLine


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_a_line_when_a_stage_starts_and_when_it_ends():
    log = io.StringIO()
    line = ProgressLine(stream=log, unit="file")
    for done in range(1, 6):
        line.update(done, 5, "mining test files", f"tests/test_{done}.py")
    line.update(1, 2, "training")
    line.close()
    assert log.getvalue().splitlines() == ["mining test files: 1/5 tests/test_1.py", "mining test files: 5/5 tests/test_5.py",
                                           "training: 1/2"]
    assert "\r" not in log.getvalue()


def test_a_log_file_gets_a_line_per_update_when_each_is_worth_keeping():
    log = io.StringIO()
    line = ProgressLine(stream=log, log_every_update=True)
    line.update(1, 3, "base", "HumanEval/0 passed 3.1s")
    line.update(2, 3, "base", "HumanEval/1 failed 2.0s")
    assert log.getvalue().splitlines() == ["base: 1/3 HumanEval/0 passed 3.1s", "base: 2/3 HumanEval/1 failed 2.0s"]


def test_fractions_are_shown_as_percentages():
    log = io.StringIO()
    line = ProgressLine(stream=log, percent=True)
    line.update(0, 200, "converting the model (once)")
    line.update(200, 200, "converting the model (once)")
    assert log.getvalue().splitlines() == ["converting the model (once): 0%", "converting the model (once): 100%"]


def test_a_terminal_gets_one_bar_rewritten_in_place_and_cleared_at_the_end():
    terminal = Terminal()
    line = ProgressLine(stream=terminal, unit="step", timing=False)
    line.update(3, 10, "training", "loss 1.2345")
    line.update(4, 12, "training", "loss 1.1000")  # a time budget's estimate of the steps changed
    shown = terminal.getvalue()
    assert "training: 4/12" in shown and "loss 1.1000" in shown and "\r" in shown
    assert "\n" not in shown  # one line, rewritten
    line.close()
    assert not terminal.getvalue().endswith("loss 1.1000")  # the bar is cleared: the command's output follows


def test_a_long_detail_keeps_its_end():
    terminal = Terminal()
    line = ProgressLine(stream=terminal)
    path = "src/" + "deep/" * 30 + "module_test.py"
    line.update(1, 2, "mining test files", path)
    assert "module_test.py" in terminal.getvalue() and path not in terminal.getvalue()


def test_the_first_use_of_a_model_shows_each_stage_from_start_to_end():
    from unitune.runtime.builtin_models import terminal_progress

    log = io.StringIO()
    show = terminal_progress(log)
    for done in (0, 400, 1000):
        show("verifying", done, 1000)
    for done in (0, 3, 6):
        show("converting", done, 6)
    assert log.getvalue().splitlines() == ["checking the model's weights: 0%", "checking the model's weights: 100%",
                                           "converting the model (once): 0%", "converting the model (once): 100%"]


def test_a_long_stage_in_a_log_file_gets_a_line_every_few_seconds(monkeypatch):
    """`unitune train` with stderr in a file once printed nothing for 8.5 minutes: now a line every 10 s."""
    import io

    from unitune import progress_line

    clock = [1000.0]
    monkeypatch.setattr(progress_line.time, "monotonic", lambda: clock[0])
    stream = io.StringIO()
    line = ProgressLine(stream, unit="step", timing=False, log_every_seconds=10.0)
    for step in range(1, 61):  # a step every 2 s
        clock[0] += 2.0
        line.update(step, 60, "training", f"loss {1 / step:.3f}")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("training: 1/60") and lines[-1].startswith("training: 60/60")
    assert 12 <= len(lines) <= 14  # the first, one per 10 s of 120 s, the last

