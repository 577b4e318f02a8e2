"""The adapter registry: named adapter folders in two stores, and every write to them.

Stores, searched in order: `<project>/.unitune/adapters/` (shareable with a team), then
`$UNITUNE_HOME/adapters/`. Owns name rules, finding and listing adapters, checking a folder is a
complete adapter with safe weights, atomic saving (copy into a `.tmp-*` folder inside the store,
then one rename), removal, the project's `adapter` setting, and export/import as `.tar.gz` archives.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import secrets
import shutil
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unitune.adapters import constants as c
from unitune.adapters.card import AdapterCard, read_card, write_card
from unitune.adapters.errors import AdapterError, AdapterNotFoundError, CorruptAdapterError
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
        return self.card.method if self.card else _detect_method(self.path)

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
            _remove_stale_temps(folder)
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
        _refuse_pickles(source)  # before copying gigabytes that would be refused anyway
        store_dir = self.store_dir(store)
        final = store_dir / name
        _refuse_existing(final, name, store, overwrite)
        temp = _make_temp(store_dir, name)
        try:
            shutil.copytree(source, temp, dirs_exist_ok=True)
            write_card(temp, card.stamped(name))
            _commit(temp, final, overwrite)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        return _entry(name, final, store)

    def save_peft_model(self, model: Any, name: str, card: AdapterCard, store: str = c.STORE_USER,
                        overwrite: bool = False, tokenizer: Any = None) -> AdapterEntry:
        """Save a PEFT model (or, for a full fine-tune, the model itself and its tokenizer) straight
        into `store` as `name`, atomically, in safetensors."""
        validate_name(name)
        store_dir = self.store_dir(store)
        final = store_dir / name
        _refuse_existing(final, name, store, overwrite)
        temp = _make_temp(store_dir, name)
        try:
            options = {}
            # PEFT takes the flag; transformers 5 dropped it (it only writes safetensors).
            if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
                options["safe_serialization"] = True
            model.save_pretrained(str(temp), **options)
            if tokenizer is not None:
                tokenizer.save_pretrained(str(temp))
            write_card(temp, card.stamped(name))
            _commit(temp, final, overwrite)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        return _entry(name, final, store)

    def remove(self, name: str) -> AdapterEntry:
        """Delete the adapter `name` (the one `find` picks: project store first)."""
        validate_name(name)
        entry = self._find_in_stores(name)
        if entry is None:
            raise AdapterNotFoundError(f"no adapter named {name!r} to remove; run `unitune adapters list` to see them")
        # Renamed aside first so the name disappears at once even if deleting takes a while or fails.
        aside = _temp_path(entry.path.parent, name)
        os.rename(entry.path, aside)
        shutil.rmtree(aside, ignore_errors=True)
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
        partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
        try:
            with tarfile.open(partial, "w:gz") as archive:
                archive.add(entry.path, arcname=entry.name, recursive=False, filter=_anonymous)
                for path in sorted(entry.path.rglob("*")):
                    if path.is_symlink() or not (path.is_file() or path.is_dir()):
                        raise AdapterError(f"{path} is not a regular file or folder; remove it before exporting")
                    arcname = f"{entry.name}/{path.relative_to(entry.path).as_posix()}"
                    archive.add(path, arcname=arcname, recursive=False, filter=_anonymous)
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
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
        _prescan(archive)  # before tarfile reads any header of it
        if name is not None:
            target = validate_name(name)
        else:
            target = _archive_folder_name(archive)
            if not c.NAME_PATTERN.fullmatch(target):
                raise AdapterError(f"{archive} holds folder {target!r}, not a valid adapter name; "
                                   f"import it with --name and {NAME_RULE}")
        store_dir = self.store_dir(store)
        final = store_dir / target
        _refuse_existing(final, target, store, overwrite)
        temp = _make_temp(store_dir, target)
        try:
            _extract_safely(archive, temp)
            card = verify_adapter(temp)
            if card.name != target:  # imported under another name: the card follows the folder
                card.name = target
                write_card(temp, card)
            _commit(temp, final, overwrite)
        except BaseException:
            shutil.rmtree(temp, ignore_errors=True)
            raise
        return _entry(target, final, store)


# -- verification ------------------------------------------------------------------------------

def verify_adapter(path: str | Path, require_card: bool = True) -> AdapterCard | None:
    """The card of the adapter in `path`, after checking the folder is complete and loadable: the
    card plus either PEFT's files or a full model's, no pickle weights, no truncated safetensors.

    With `require_card=False` a folder written by plain PEFT (no card) is accepted too, and None is
    returned for its card: such an adapter loads, but nothing says which base it was trained on."""
    folder = Path(path)
    if not folder.is_dir():
        raise AdapterNotFoundError(f"{folder} is not a folder; give an adapter name or folder")
    _refuse_pickles(folder)
    if not require_card and not (folder / c.CARD_FILE).is_file():
        missing = [n for n in (c.ADAPTER_CONFIG_FILE, c.ADAPTER_WEIGHTS_FILE) if not (folder / n).is_file()]
        if missing:
            raise CorruptAdapterError(f"{folder} is missing {', '.join(missing)}; it is not a PEFT adapter folder")
        method = _detect_method(folder)
        if method is None:
            raise CorruptAdapterError(f"{folder / c.ADAPTER_CONFIG_FILE}: unknown adapter type; unitune loads "
                                      "LoRA, (IA)³ and prompt tuning adapters")
        check_safetensors(folder / c.ADAPTER_WEIGHTS_FILE)
        return None
    if not (folder / c.CARD_FILE).is_file():
        raise CorruptAdapterError(
            f"{folder} is missing {c.CARD_FILE}, so it is not a unitune adapter; save it through unitune to add one"
        )
    try:
        card = read_card(folder)
    except AdapterError as error:
        raise CorruptAdapterError(str(error)) from None
    if card.method not in c.METHODS:
        raise CorruptAdapterError(
            f"{folder / c.CARD_FILE}: unknown method {card.method!r} (known: {', '.join(c.METHODS)}); "
            "a newer unitune may be needed"
        )
    if card.method == c.FULL:
        required = [c.MODEL_CONFIG_FILE]
        weights = sorted(folder.glob(f"*{c.MODEL_WEIGHTS_SUFFIX}"))
        missing = [name for name in required if not (folder / name).is_file()]
        if not weights:
            missing.append(f"*{c.MODEL_WEIGHTS_SUFFIX}")
    else:
        required = [c.ADAPTER_CONFIG_FILE, c.ADAPTER_WEIGHTS_FILE]
        weights = [folder / c.ADAPTER_WEIGHTS_FILE]
        missing = [name for name in required if not (folder / name).is_file()]
    if missing:
        raise CorruptAdapterError(f"{folder} is missing {', '.join(missing)}; re-save or re-import the adapter")
    if card.method != c.FULL:
        _check_peft_config(folder / c.ADAPTER_CONFIG_FILE, card.method)
    for weights_file in weights:
        check_safetensors(weights_file)
    return card


def check_safetensors(path: Path) -> None:
    """CorruptAdapterError unless `path` is a whole safetensors file: a readable header whose data
    offsets end exactly at the end of the file (a cut-off copy or download fails this)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            header_size = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            if header_size < 0 or header_size > size - 8:
                raise CorruptAdapterError(f"{path} is truncated or not a safetensors file; re-save or re-import the adapter")
            header = json.loads(handle.read(header_size))
        ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
        if not all(isinstance(end, int) and not isinstance(end, bool) and end >= 0 for end in ends):
            raise ValueError("data offsets that are not whole numbers")
        data_end = max(ends, default=0)
    except CorruptAdapterError:
        raise
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError) as error:
        raise CorruptAdapterError(f"{path} has a damaged safetensors header ({error}); re-save or re-import the adapter") from None
    expected = 8 + header_size + data_end
    if size != expected:
        raise CorruptAdapterError(
            f"{path} is {size} bytes but its header describes {expected}; the file is truncated or damaged, "
            "re-save or re-import the adapter"
        )
    # The library's own checks too (overlapping offsets, dtypes).
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as opened:
            opened.keys()
    except (SafetensorError, OSError) as error:
        raise CorruptAdapterError(f"{path} is not a valid safetensors file ({error}); re-save or re-import the adapter") from None


def _check_peft_config(path: Path, method: str) -> None:
    try:
        config = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError, RecursionError) as error:
        raise CorruptAdapterError(f"{path} is not valid JSON ({type(error).__name__}); re-save or re-import the adapter") from None
    peft_type = config.get("peft_type") if isinstance(config, dict) else None
    saved_as = c.PEFT_TYPE_TO_METHOD.get(str(peft_type).upper())
    if saved_as != method:
        raise CorruptAdapterError(
            f"{path} holds a {peft_type} adapter but {c.CARD_FILE} says {method!r}; re-save the adapter"
        )


def _refuse_pickles(folder: Path) -> None:
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() in c.PICKLE_SUFFIXES and not path.is_dir():
            raise CorruptAdapterError(
                f"{path}: pickle weights are never loaded; re-save with safetensors and delete this file"
            )


def _detect_method(folder: Path) -> str | None:
    """The method a card-less folder's files show, for listing damaged adapters."""
    try:
        config = json.loads((folder / c.ADAPTER_CONFIG_FILE).read_text("utf-8"))
        return c.PEFT_TYPE_TO_METHOD.get(str(config.get("peft_type")).upper())
    except (OSError, ValueError, AttributeError, RecursionError):
        return c.FULL if (folder / c.MODEL_CONFIG_FILE).is_file() else None


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


# -- atomic writes -----------------------------------------------------------------------------

def _temp_path(store_dir: Path, name: str) -> Path:
    return store_dir / f"{c.TEMP_PREFIX}{name}-{secrets.token_hex(4)}"


def _make_temp(store_dir: Path, name: str) -> Path:
    store_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(store_dir)
    temp = _temp_path(store_dir, name)
    temp.mkdir()
    return temp


def _remove_stale_temps(store_dir: Path) -> None:
    """Delete what crashed saves left behind; a recent one may be a save still running elsewhere."""
    if not store_dir.is_dir():
        return
    cutoff = time.time() - c.STALE_TEMP_SECONDS
    for path in store_dir.iterdir():
        try:
            if path.name.startswith(c.TEMP_PREFIX) and path.stat().st_mtime < cutoff:
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            continue


def _refuse_existing(final: Path, name: str, store: str, overwrite: bool) -> None:
    if final.exists() and not overwrite:
        raise AdapterError(
            f"an adapter named {name!r} already exists in the {store} store; choose another name with --name, "
            "or replace it with --overwrite"
        )


def _commit(temp: Path, final: Path, overwrite: bool) -> None:
    """Make the finished folder `temp` appear as `final` in one rename, after checking it and
    flushing it to disk; an old `final` is moved aside first and deleted after."""
    verify_adapter(temp)  # never install a folder that would not load
    _fsync_tree(temp)
    if overwrite and final.exists():
        aside = _temp_path(final.parent, final.name)
        os.rename(final, aside)
        try:
            os.rename(temp, final)
        except BaseException:
            os.rename(aside, final)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    else:
        try:
            os.rename(temp, final)
        except OSError:
            if final.exists():  # another process took the name since we checked
                raise AdapterError(f"an adapter named {final.name!r} appeared meanwhile; try again") from None
            raise
    _fsync_directory(final.parent)


def _fsync_tree(folder: Path) -> None:
    for root, _dirs, files in os.walk(folder):
        for name in files:
            descriptor = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        _fsync_directory(Path(root))


def _fsync_directory(folder: Path) -> None:
    if os.name == "nt":  # directories cannot be opened for fsync there
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# -- archives ----------------------------------------------------------------------------------

_DRIVE = re.compile(r"^[A-Za-z]:")


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Archive entries without the exporter's user names and with plain permissions."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if info.isdir() else 0o644
    return info


def _member_parts(member_name: str, archive: Path) -> list[str]:
    if member_name.startswith(("/", "\\")) or _DRIVE.match(member_name):
        raise AdapterError(f"{archive} holds an absolute path ({member_name}); refusing to import it")
    if "\\" in member_name:  # a separator on Windows: could climb out there
        raise AdapterError(f"{archive} holds a path with a backslash ({member_name}); refusing to import it")
    parts = [part for part in member_name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise AdapterError(f"{archive} holds a path leading outside its folder ({member_name}); refusing to import it")
    if not parts:
        raise AdapterError(f"{archive} holds an entry without a name; refusing to import it")
    return parts


def _open_archive(archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        # tarfile's own message lists every format it tried: one line is enough
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "file could not be opened successfully" in reason or isinstance(error, tarfile.ReadError):
            reason = "not a tar archive"
        raise AdapterError(f"{archive} is not a .tar.gz adapter archive ({reason}); make one with "
                           "`unitune adapters export`") from None


def _archive_folder_name(archive: Path) -> str:
    """The top-level folder of an archive, from its first entry (read without unpacking the rest)."""
    with _open_archive(archive) as opened:
        try:
            first = opened.next()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
            raise AdapterError(f"{archive} is damaged ({error}); export the adapter again") from None
    if first is None:
        raise AdapterError(f"{archive} is empty; export the adapter again")
    return _member_parts(first.name, archive)[0]


def _prescan(archive: Path) -> None:
    """A first pass over the whole stream before anything is unpacked: every byte is read, so a
    gzip CRC or length that does not match refuses the archive; the tar headers are walked by hand
    (before tarfile parses any) to cap the member count, what the archive unpacks to, its ratio to
    the archive's size, and the size of pax and long-name headers (which tarfile reads into memory)."""
    import gzip

    compressed = archive.stat().st_size
    limit = max(c.ARCHIVE_RATIO_FLOOR, c.MAX_ARCHIVE_RATIO * compressed)
    with open(archive, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(archive, "rb") if gzipped else open(archive, "rb")) as stream:
            members = unpacked = 0
            while True:
                header = stream.read(512)
                if len(header) < 512 or header == b"\0" * 512:
                    break  # the end (two zero blocks; trailing padding is read below)
                try:
                    size = int(header[124:136].rstrip(b"\0 ").decode("ascii") or "0", 8)
                except (UnicodeDecodeError, ValueError):
                    raise AdapterError(f"{archive} is not a .tar.gz adapter archive (a header is damaged); "
                                       "make one with `unitune adapters export`") from None
                kind = header[156:157]
                members += 1
                if kind in (b"x", b"g", b"L", b"K") and size > c.MAX_ARCHIVE_HEADER_BYTES:
                    raise AdapterError(f"{archive} holds a {size}-byte extended header; refusing to import it")
                if members > c.MAX_ARCHIVE_MEMBERS:
                    raise AdapterError(f"{archive} has more than {c.MAX_ARCHIVE_MEMBERS} entries; refusing to import it")
                unpacked += size
                if unpacked > c.MAX_ARCHIVE_BYTES or unpacked > limit:
                    raise AdapterError(f"{archive} unpacks to more than {min(limit, c.MAX_ARCHIVE_BYTES) >> 20} MiB "
                                       f"({compressed} bytes compressed); refusing to import it")
                remaining = -(-size // 512) * 512
                while remaining:
                    chunk = stream.read(min(remaining, 1 << 20))
                    if not chunk:
                        raise AdapterError(f"{archive} is truncated; export the adapter again")
                    remaining -= len(chunk)
            while stream.read(1 << 20):  # to the end: gzip checks its CRC and length there
                pass
    except AdapterError:
        raise
    except (OSError, EOFError, zlib.error) as error:
        raise AdapterError(f"{archive} is damaged ({type(error).__name__}: {error}); export the adapter again") from None


def _extract_safely(archive: Path, destination: Path) -> None:
    """Unpack the one top-level folder of `archive` into `destination`, checking every entry before
    writing it; file contents are copied by hand so no archive metadata (modes, owners, links) applies.
    `_prescan` has checked the whole stream first."""
    top: str | None = None
    total = count = 0
    with _open_archive(archive) as opened:
        try:
            for member in opened:
                count += 1
                if count > c.MAX_ARCHIVE_MEMBERS:
                    raise AdapterError(f"{archive} has more than {c.MAX_ARCHIVE_MEMBERS} entries; refusing to import it")
                parts = _member_parts(member.name, archive)
                if top is None:
                    top = parts[0]
                elif parts[0] != top:
                    raise AdapterError(f"{archive} holds more than one top-level folder; export the adapter again")
                if member.issym() or member.islnk():
                    raise AdapterError(f"{archive} holds a link ({member.name}); adapter archives may hold only files and folders")
                if member.isdir():
                    destination.joinpath(*parts[1:]).mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isreg() or member.issparse():
                    raise AdapterError(f"{archive} holds a special file ({member.name}); adapter archives may hold only files and folders")
                if len(parts) == 1:
                    raise AdapterError(f"{archive} holds a file outside a folder ({member.name}); export the adapter again")
                if Path(parts[-1]).suffix.lower() in c.PICKLE_SUFFIXES:
                    raise CorruptAdapterError(
                        f"{archive} holds {member.name}: pickle weights are never loaded; re-save with safetensors"
                    )
                total += member.size
                if total > c.MAX_ARCHIVE_BYTES:
                    raise AdapterError(
                        f"{archive} unpacks to more than {c.MAX_ARCHIVE_BYTES >> 30} GiB; refusing to import it"
                    )
                target = destination.joinpath(*parts[1:])
                target.parent.mkdir(parents=True, exist_ok=True)
                source = opened.extractfile(member)
                try:
                    with target.open("xb") as out:
                        shutil.copyfileobj(source, out)
                except FileExistsError:
                    raise AdapterError(f"{archive} holds {member.name} twice; export the adapter again") from None
        except (tarfile.TarError, EOFError, zlib.error) as error:
            raise AdapterError(f"{archive} is damaged ({error}); export the adapter again") from None
    if top is None:
        raise AdapterError(f"{archive} is empty; export the adapter again")
