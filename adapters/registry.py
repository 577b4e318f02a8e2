"""The adapter registry: named adapter folders in two stores, and every write to them.

Stores, searched in order: `<project>/.unitune/adapters/` (shareable with a team), then
`$UNITUNE_HOME/adapters/`. Owns name rules, finding and listing adapters, saving, removal, the
project's `adapter` setting, export and import; the checks live in `verification`, the all-or-nothing
writes in `staging`, the archive formats in `archives`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unitune.adapters import constants as c
from unitune.adapters.archives import archive_folder_name, extract_safely, prescan, write_archive
from unitune.adapters.card import AdapterCard, read_card, write_card
from unitune.adapters.errors import AdapterError, AdapterNotFoundError
from unitune.adapters.staging import remove_stale_temps, staged_folder, temp_path
from unitune.adapters.verification import (  # noqa: F401  (check_safetensors: part of the registry's interface)
    check_safetensors, detect_method, refuse_pickles, verify_adapter,
)
from unitune.errors import UnituneError
from unitune.files import remove_tree
from unitune.settings import data_home, write_project_setting

NAME_RULE = "1 to 64 characters: lowercase letters, digits, '.', '_' or '-', starting with a letter or digit"


def validate_name(name: str) -> str:
    """`name` when it is a valid adapter name, else AdapterError saying the rule."""
    if not isinstance(name, str) or not c.NAME_PATTERN.fullmatch(name):
        raise AdapterError(f"{name!r} is not a valid adapter name; use {NAME_RULE}")
    return name


@dataclass
class AdapterEntry:
    """One adapter folder as found on disk; `problems` is empty when it verified."""

    name: str
    path: Path
    store: str  # STORE_PROJECT, STORE_USER, or STORE_FOLDER for a folder given by path
    card: AdapterCard | None = None
    problems: list[str] = field(default_factory=list)
    shadowed: bool = False  # a project adapter of the same name hides this user one

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def method(self) -> str | None:
        return self.card.method if self.card else detect_method(self.path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "path": str(self.path), "store": self.store, "shadowed": self.shadowed,
            "method": self.method, "ok": self.ok, "problems": list(self.problems),
            "card": self.card.to_dict() if self.card else None,
        }


class AdapterRegistry:
    """The adapters visible from one project (or from none: the user store only)."""

    def __init__(self, project_root: str | Path | None = None):
        self.project_root = Path(project_root).resolve() if project_root is not None else None

    # -- where ---------------------------------------------------------------------------------

    def store_dir(self, store: str) -> Path:
        if store == c.STORE_PROJECT:
            if self.project_root is None:
                raise AdapterError("no project folder is known; pass --project DIR to use the project store")
            return self.project_root / c.PROJECT_STORE
        if store == c.STORE_USER:
            return data_home() / c.USER_STORE
        raise AdapterError(f"unknown adapter store {store!r}; use {' or '.join(c.STORES)}")

    def stores(self) -> list[tuple[str, Path]]:
        """(store, folder) in search order."""
        names = c.STORES if self.project_root is not None else (c.STORE_USER,)
        return [(store, self.store_dir(store)) for store in names]

    # -- reading -------------------------------------------------------------------------------

    def list(self) -> list[AdapterEntry]:
        """Every adapter in every store, sorted by name, project store first; a broken one is listed
        with its problems rather than stopping the listing."""
        entries: list[AdapterEntry] = []
        seen: set[str] = set()
        for store, folder in self.stores():
            remove_stale_temps(folder)
            for path in _adapter_folders(folder):
                entry = _entry(path.name, path, store)
                if not c.NAME_PATTERN.fullmatch(path.name):
                    entry.problems.append(f"{path.name!r} is not a valid adapter name; rename the folder to {NAME_RULE}")
                entry.shadowed = path.name in seen
                seen.add(path.name)
                entries.append(entry)
        return sorted(entries, key=lambda e: (e.name, e.shadowed))

    def find(self, name_or_folder: str | Path) -> AdapterEntry:
        """The adapter of that name (project store first), else the adapter folder at that path.

        A damaged adapter is returned with its problems (so it can be shown or removed); use
        `find_verified` to get only one that loads."""
        text = str(name_or_folder)
        found = self._find_in_stores(text) if c.NAME_PATTERN.fullmatch(text) else None
        if found is not None:
            return found
        folder = Path(text).expanduser()
        if folder.is_dir():
            folder = folder.resolve()
            return _entry(folder.name, folder, c.STORE_FOLDER)
        if "/" in text or os.sep in text or text.startswith(("~", ".")):
            raise AdapterNotFoundError(f"no adapter folder at {text}; check the path")
        validate_name(text)  # refuses a bad name with the naming rule
        where = " or ".join(str(path) for _, path in self.stores())
        raise AdapterNotFoundError(
            f"no adapter named {text!r} in {where}; run `unitune adapters list` to see the installed ones"
        )

    def find_verified(self, name_or_folder: str | Path) -> AdapterEntry:
        """Like `find`, but a damaged adapter raises its CorruptAdapterError."""
        entry = self.find(name_or_folder)
        if entry.problems:
            entry.card = verify_adapter(entry.path)  # raises the problem with its own type
            entry.problems = []
        return entry

    @staticmethod
    def verify(path: str | Path) -> AdapterCard:
        """See `verify_adapter`."""
        return verify_adapter(path)

    def _find_in_stores(self, name: str) -> AdapterEntry | None:
        for store, folder in self.stores():
            if (folder / name).is_dir():
                return _entry(name, folder / name, store)
        return None

    # -- writing -------------------------------------------------------------------------------

    def save(self, source_folder: str | Path, name: str, card: AdapterCard, store: str = c.STORE_USER,
             overwrite: bool = False) -> AdapterEntry:
        """Copy the adapter in `source_folder` into `store` as `name`, with `card` (stamped with the
        running versions) as its card. All or nothing: a failure leaves the store as it was."""
        validate_name(name)
        source = Path(source_folder)
        if not source.is_dir():
            raise AdapterNotFoundError(f"{source} is not a folder; give the folder the adapter was saved to")
        refuse_pickles(source)  # before copying gigabytes that would be refused anyway
        store_dir = self.store_dir(store)
        with staged_folder(store_dir, name, store, overwrite) as temp:
            shutil.copytree(source, temp, dirs_exist_ok=True)
            write_card(temp, card.stamped(name))
        return _entry(name, store_dir / name, store)

    def remove(self, name: str) -> AdapterEntry:
        """Delete the adapter `name` (the one `find` picks: project store first)."""
        validate_name(name)
        entry = self._find_in_stores(name)
        if entry is None:
            raise AdapterNotFoundError(f"no adapter named {name!r} to remove; run `unitune adapters list` to see them")
        # Renamed aside first so the name disappears at once even if deleting takes a while or fails.
        aside = temp_path(entry.path.parent, name)
        os.rename(entry.path, aside)
        remove_tree(aside)
        return entry

    def use(self, name: str, project_root: str | Path | None = None) -> Path:
        """Make the project use adapter `name` (`adapter = "name"` in its settings); returns the file."""
        root = Path(project_root).resolve() if project_root is not None else self.project_root
        if root is None:
            raise AdapterError("no project folder is known; pass --project DIR")
        registry = self if root == self.project_root else AdapterRegistry(root)
        entry = registry.find_verified(name)
        value = entry.name if entry.store != c.STORE_FOLDER else str(entry.path)
        return write_project_setting(root, "adapter", value)

    # -- archives ------------------------------------------------------------------------------

    def export(self, name: str, file: str | Path) -> Path:
        """Write adapter `name` to one `.tar.gz` (a folder `name/` inside); `file` may be a folder,
        which then gets `<name>.unitune-adapter.tar.gz`. Returns the archive written."""
        entry = self.find_verified(name)
        target = Path(file).expanduser()
        if target.is_dir():
            target = target / f"{entry.name}{c.ARCHIVE_SUFFIX}"
        write_archive(entry.path, entry.name, target)
        return target

    def import_archive(self, file: str | Path, store: str = c.STORE_USER, name: str | None = None,
                       overwrite: bool = False) -> AdapterEntry:
        """Install the adapter in an archive made by `export`, as `name` or the archive's folder name.

        Only plain files and folders under one top-level folder are accepted; links, devices,
        absolute or `..` paths, pickle weights and archives unpacking to more than
        `MAX_ARCHIVE_BYTES` are refused before anything is written outside a `.tmp-*` folder."""
        archive = Path(file).expanduser()
        if not archive.exists():
            raise AdapterNotFoundError(f"{archive} does not exist; give the path of an exported adapter archive")
        if not archive.is_file():
            kind = "a folder" if archive.is_dir() else "not a regular file (a pipe or a device)"
            raise AdapterError(f"{archive} is {kind}; give an archive made by `unitune adapters export` "
                               "(an adapter folder is used as it is: copy it into a store, or name it as `adapter`)")
        prescan(archive)  # before tarfile reads any header of it
        if name is not None:
            target = validate_name(name)
        else:
            target = archive_folder_name(archive)
            if not c.NAME_PATTERN.fullmatch(target):
                raise AdapterError(f"{archive} holds folder {target!r}, not a valid adapter name; "
                                   f"import it with --name and {NAME_RULE}")
        store_dir = self.store_dir(store)
        with staged_folder(store_dir, target, store, overwrite) as temp:
            extract_safely(archive, temp)
            card = verify_adapter(temp)
            if card.name != target:  # imported under another name: the card follows the folder
                card.name = target
                write_card(temp, card)
        return _entry(target, store_dir / target, store)


def _entry(name: str, path: Path, store: str) -> AdapterEntry:
    entry = AdapterEntry(name, path, store)
    try:
        entry.card = verify_adapter(path, require_card=store != c.STORE_FOLDER)
    except AdapterError as error:
        entry.problems.append(str(error))
    except OSError as error:  # unreadable: listed with the reason, never a crash of the listing
        entry.problems.append(f"cannot read {error.filename or path} ({error.strerror}); check its permissions")
    except Exception as error:  # anything else a hostile folder provokes: this adapter is broken, not the list
        entry.problems.append(f"{path} is damaged ({type(error).__name__}); remove it or import it again")
    if entry.problems:
        try:
            entry.card = read_card(path)
        except Exception:
            pass
    return entry


def _adapter_folders(store_dir: Path) -> list[Path]:
    if not store_dir.is_dir():
        return []
    return sorted(p for p in store_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


#: The `adapter` value that asks for the bare base model.
NO_ADAPTER = "none"


def selected_adapter(name: str | None, project_root: str | Path, named_by: str | None = None) -> AdapterEntry | None:
    """The adapter a request uses, as the command line and the language server choose it: None for the
    bare base model (`adapter` unset or "none"), else the verified registry entry of that name (the
    project's store first, then the user's) or folder. `named_by` (the settings file that asked for
    it) is added to the error when it cannot be used, so the user knows where to change it."""
    if not name or name == NO_ADAPTER:
        return None
    try:
        return AdapterRegistry(project_root).find_verified(name)
    except UnituneError as error:
        if named_by:
            raise type(error)(f"{error} (the adapter is named by {named_by})") from None
        raise
