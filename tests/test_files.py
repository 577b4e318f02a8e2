"""`atomic_write`, the one way unitune replaces a file: all or nothing, permissions and hard links kept."""

from __future__ import annotations

import os

import pytest

from unitune import files
from unitune.files import atomic_write


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "settings.toml"
    target.write_text("old = 1\n")

    def crash(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(OSError):
        atomic_write(target, "new = 2\n")
    assert target.read_text() == "old = 1\n"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["settings.toml"]


def test_mode_and_hard_links_are_kept(tmp_path):
    target = tmp_path / "test_x.py"
    target.write_text("a\n")
    os.chmod(target, 0o640)
    atomic_write(target, "b\n")
    assert target.read_text() == "b\n" and (target.stat().st_mode & 0o777) == 0o640
    link = tmp_path / "link.py"
    os.link(target, link)
    atomic_write(target, b"c\n")
    assert link.read_text() == "c\n"  # written in place: every link sees it
