"""Every file unitune reads that it did not write itself goes through one helper (`unitune.files`): a
named pipe, a device or a huge file in its place is refused with a message naming it, never waited on or
read until memory runs out. Each case runs under a deadline, so a regression fails instead of hanging."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from unitune.files import UnreadableFileError, read_regular, read_regular_text, require_regular

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
DEADLINE = 20  # seconds: a blocked open or read never returns


def within_deadline(call):
    """`call()`'s result or exception, or a failure when it has not returned within the deadline."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = call()
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(DEADLINE)
    if thread.is_alive():
        pytest.fail(f"still waiting after {DEADLINE} s: it blocked on the file")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def fifo(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def test_the_helper_reads_a_regular_file_and_refuses_the_rest(tmp_path):
    (tmp_path / "card.json").write_text('{"name": "x"}')
    assert read_regular_text(tmp_path / "card.json") == '{"name": "x"}'
    with pytest.raises(UnreadableFileError, match="a named pipe, not a regular file"):
        within_deadline(lambda: read_regular(fifo(tmp_path / "pipe")))
    with pytest.raises(UnreadableFileError, match="a character device"):
        within_deadline(lambda: read_regular("/dev/zero"))
    with pytest.raises(UnreadableFileError, match="a directory"):
        require_regular(tmp_path)
    (tmp_path / "big").write_bytes(b"x" * 2000)
    with pytest.raises(UnreadableFileError, match="2,000 bytes, more than the 1,000"):
        read_regular(tmp_path / "big", limit=1000)
    with pytest.raises(FileNotFoundError):
        read_regular(tmp_path / "missing")


def test_a_pipe_named_as_an_adapters_card_is_listed_as_damaged_and_the_rest_listed(tmp_path):
    from unitune.adapters.registry import AdapterRegistry

    project = tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    fifo(project / ".unitune" / "adapters" / "jammed" / "unitune-adapter.json")
    entries = within_deadline(lambda: AdapterRegistry(project).list())
    jammed = next(entry for entry in entries if entry.name == "jammed")
    assert not jammed.ok and "a named pipe, not a regular file" in " ".join(jammed.problems)


def test_a_pipe_or_a_device_as_the_pairs_file_is_refused(tmp_path):
    from unitune.training.data import DataError, read_pairs

    with pytest.raises(DataError, match="a named pipe, not a regular file"):
        within_deadline(lambda: read_pairs(fifo(tmp_path / "pairs.jsonl")))
    (tmp_path / "zero.jsonl").symlink_to("/dev/zero")
    with pytest.raises(DataError, match="a character device"):
        within_deadline(lambda: read_pairs(tmp_path / "zero.jsonl"))


def test_a_pair_whose_code_holds_a_line_separator_is_read_back(tmp_path):
    """JSON lines end at a newline only: U+2028, U+2029 and U+0085 inside a string stay in it."""
    from unitune.training.data import read_pairs

    pair = {"language": "python", "prompt": "p", "completion": "    assert f('a\u2028b\u2029c\u0085d')\n",
            "split": "train", "focal_file": "m.py", "test_file": "test_m.py"}
    # ensure_ascii=False writes the separators raw, as a pairs file of a repository's own code holds them
    (tmp_path / "pairs.jsonl").write_text(json.dumps(pair, ensure_ascii=False) + "\n", "utf-8")
    [read] = read_pairs(tmp_path / "pairs.jsonl")
    assert read["completion"] == pair["completion"]


def test_a_pipe_in_a_checkpoint_falls_back_instead_of_hanging(tmp_path):
    import torch
    from safetensors.torch import save_file

    from unitune.training import checkpoints

    checkpoint = tmp_path / "checkpoints" / "step-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / checkpoints.STATE_FILE).write_text("{}")
    save_file({"weight": torch.zeros(2)}, str(checkpoint / checkpoints.WEIGHTS_FILE))
    fifo(checkpoint / checkpoints.OPTIMIZER_FILE)
    damaged = []
    with pytest.raises(checkpoints.CheckpointError, match="every checkpoint"):
        within_deadline(lambda: checkpoints.first_loadable(tmp_path, checkpoints.read,
                                                           lambda path, error: damaged.append(error)))
    assert damaged and isinstance(damaged[0], UnreadableFileError)


def test_a_pipe_as_the_projects_settings_file_is_reported_and_the_defaults_used(tmp_path):
    from unitune.settings import Settings, load_settings

    fifo(tmp_path / "unitune.toml")
    loaded = within_deadline(lambda: load_settings(tmp_path))
    assert loaded.settings == Settings()
    assert any("a named pipe, not a regular file" in problem for problem in loaded.problems), loaded.problems


def test_a_pair_nested_too_deeply_is_refused_naming_its_line(tmp_path):
    from unitune.training.data import DataError, read_pairs

    (tmp_path / "pairs.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    with pytest.raises(DataError, match=r"pairs.jsonl:1: nested too deeply to be a pair"):
        read_pairs(tmp_path / "pairs.jsonl")
