"""Settings per workspace folder: the editor's (initializationOptions, `workspace/configuration`,
`workspace/didChangeConfiguration`) merged over the project's and the user's files.

Editor keys are DESIGN's keys; camelCase spellings (`maxNewTokens`) are accepted too. A bad value is
reported once to the user and its default used; it never stops the server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unitune.settings import KEYS, LoadedSettings, load_settings

SECTION = "unitune"
# Editor-only keys that are not settings of generation (the client's own).
_CLIENT_KEYS = {"server", "trace"}


def normalize_editor_settings(values: Any) -> dict[str, Any]:
    """The editor's `unitune` section as settings keys (camelCase -> snake_case; nulls dropped)."""
    if not isinstance(values, dict):
        return {}
    if isinstance(values.get(SECTION), dict):  # a whole configuration object, not just our section
        values = values[SECTION]
    normalized = {}
    for key, value in values.items():
        if key in _CLIENT_KEYS or value is None or value == "":
            continue
        snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", str(key)).lower().replace("-", "_")
        normalized[snake if snake in KEYS else key] = value
    return normalized


@dataclass
class FolderConfig:
    """A workspace folder and its settings."""

    uri: str
    path: Path
    editor: dict[str, Any] = field(default_factory=dict)  # from workspace/configuration for this folder
    loaded: LoadedSettings | None = None

    def reload(self, global_editor: dict[str, Any]) -> LoadedSettings:
        overrides = {**global_editor, **self.editor}
        self.loaded = load_settings(self.path, overrides)
        return self.loaded

    @property
    def settings(self):
        return self.loaded.settings


class FolderSettings:
    """Workspace folders and their merged settings; a file belongs to the deepest folder holding it."""

    def __init__(self) -> None:
        self.folders: dict[str, FolderConfig] = {}
        self.global_editor: dict[str, Any] = {}
        self._reported: set[str] = set()

    def set_folders(self, folders: list[tuple[str, Path]]) -> None:
        kept = {uri: self.folders.get(uri) or FolderConfig(uri, path) for uri, path in folders}
        self.folders = kept
        for folder in kept.values():
            if folder.loaded is None:
                folder.reload(self.global_editor)

    def folder_for(self, path: Path | None) -> FolderConfig | None:
        if path is None:
            return None
        best = None
        for folder in self.folders.values():
            try:
                path.resolve().relative_to(folder.path.resolve())
            except ValueError:
                continue
            if best is None or len(folder.path.parts) > len(best.path.parts):
                best = folder
        return best

    def reload_all(self) -> list[str]:
        """Re-read every folder's settings; the problems not reported before."""
        problems = []
        for folder in self.folders.values():
            problems.extend(folder.reload(self.global_editor).problems)
        fresh = [p for p in problems if p not in self._reported]
        self._reported.update(fresh)
        return fresh
