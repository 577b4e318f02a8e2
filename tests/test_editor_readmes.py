"""The editors' READMEs say what is true: their settings tables list every setting with the default the
server has (they once gave `unitune-mini` and `validate = syntax`, long after both changed), and they
install unitune from its repository (it is not on the package index)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from unitune.settings import KEYS, Settings

ROOT = Path(__file__).resolve().parents[1]
READMES = {"vscode": ("editors/vscode/README.md", "unitune."), "neovim": ("editors/neovim/README.md", "")}


def shown(value) -> set[str]:
    """How a README may write a default."""
    if value is None:
        return {"none", "detected", "`null` (none)", "`null` (detected)"}
    if isinstance(value, bool):
        return {f"`{str(value).lower()}`"}
    return {f"`{value}`"}


@pytest.mark.parametrize("editor", sorted(READMES))
def test_the_settings_table_lists_every_setting_with_the_servers_default(editor):
    path, prefix = READMES[editor]
    text = (ROOT / path).read_text("utf-8")
    rows = dict(re.findall(r"^\| `" + re.escape(prefix) + r"(\w+)` \| ([^|]+?) \|", text, flags=re.MULTILINE))
    defaults = Settings()
    for key in KEYS:
        assert key in rows, f"{path} does not list {prefix}{key}"
        assert rows[key] in shown(getattr(defaults, key)), f"{path}: {prefix}{key} is {rows[key]}"


@pytest.mark.parametrize("editor", sorted(READMES))
def test_install_is_from_the_repository(editor):
    text = (ROOT / READMES[editor][0]).read_text("utf-8")
    assert not re.search(r"pip install unitune\b", text)
    assert "pip install -e" in text
