"""Writing into an adapter store all or nothing: an adapter is built in a `.tmp-*` folder inside the
store (`staged_folder`), checked, flushed to disk and renamed into place in one step; what crashed
saves left behind is removed once stale."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from unitune.adapters import constants as c
from unitune.adapters.errors import AdapterError
from unitune.adapters.verification import verify_adapter
from unitune.files import remove_tree


@contextlib.contextmanager
def staged_folder(store_dir: Path, name: str, store: str, overwrite: bool = False) -> Iterator[Path]:
    """A new folder in `store_dir` to build adapter `name` in; when the block ends, it is checked and
    put in place as `store_dir/name` (replacing one only with `overwrite`), else removed."""
    final = store_dir / name
    refuse_existing(final, name, store, overwrite)
    temp = make_temp(store_dir, name)
    try:
        yield temp
        commit(temp, final, overwrite)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise


def temp_path(store_dir: Path, name: str) -> Path:
    return store_dir / f"{c.TEMP_PREFIX}{name}-{secrets.token_hex(4)}"


#: The names `temp_path` gives: the prefix, an adapter name, a dash and 8 hexadecimal digits.
_OUR_TEMP = re.compile(re.escape(c.TEMP_PREFIX) + c.NAME_PATTERN.pattern + r"-[0-9a-f]{8}")


def make_temp(store_dir: Path, name: str) -> Path:
    store_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(store_dir)
    temp = temp_path(store_dir, name)
    temp.mkdir()
    return temp


def remove_stale_temps(store_dir: Path) -> None:
    """Delete what crashed saves left behind, and nothing else: only folders named as `temp_path` names
    them (a user's own `.tmp-work` in a store that is a link to a folder of theirs stays), never through
    a link, and none changed within the hour (it may be a save still running elsewhere). A leftover that
    cannot be deleted (no permission) stays, and the store is listed all the same."""
    if not store_dir.is_dir():
        return
    cutoff = time.time() - c.STALE_TEMP_SECONDS
    for path in store_dir.iterdir():
        try:
            if not _OUR_TEMP.fullmatch(path.name):
                continue
            info = path.lstat()
            if stat.S_ISDIR(info.st_mode) and info.st_mtime < cutoff:  # a link is not a folder to lstat
                remove_tree(path)
        except (OSError, RecursionError):
            continue


def refuse_existing(final: Path, name: str, store: str, overwrite: bool) -> None:
    if final.exists() and not overwrite:
        raise AdapterError(
            f"an adapter named {name!r} already exists in the {store} store; choose another name with --name, "
            "or replace it with --overwrite"
        )


def commit(temp: Path, final: Path, overwrite: bool) -> None:
    """Make the finished folder `temp` appear as `final` in one rename, after checking it and
    flushing it to disk; an old `final` is moved aside first and deleted after."""
    verify_adapter(temp)  # never install a folder that would not load
    fsync_tree(temp)
    if overwrite and final.exists():
        aside = temp_path(final.parent, final.name)
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
    fsync_directory(final.parent)


def fsync_tree(folder: Path) -> None:
    for root, _dirs, files in os.walk(folder):
        for name in files:
            descriptor = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        fsync_directory(Path(root))


def fsync_directory(folder: Path) -> None:
    if os.name == "nt":  # directories cannot be opened for fsync there
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
