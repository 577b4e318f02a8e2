"""Reading and writing files safely: the one way unitune reads a file it did not write itself (a card, a
pairs file, a checkpoint, settings), so a pipe, a device or a huge file never hangs it or fills its
memory; and the one way it replaces a file (test files, settings, pairs, results), so a crash or Ctrl-C
leaves the old file or the new one, never half of either."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from pathlib import Path

from unitune.errors import UnituneError

#: Most bytes a metadata file (a card, a config, a checkpoint's state) may have: far above any real one.
METADATA_LIMIT = 16 * 1024 * 1024


class UnreadableFileError(UnituneError):
    """A file unitune must read is not a regular file, is too large, or cannot be read."""

    exit_code = 2


def read_regular(path: str | os.PathLike, limit: int = METADATA_LIMIT) -> bytes:
    """The bytes of `path` when it is a regular file of at most `limit` bytes. It is opened without
    blocking (a FIFO would wait for a writer forever) and checked on the open descriptor, and at most
    `limit` + 1 bytes are read (a device reports size 0). Anything else raises `UnreadableFileError`
    saying what the path is; a missing file raises `FileNotFoundError`, for callers that allow it."""
    path = Path(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise
    except OSError as error:
        raise UnreadableFileError(f"{path}: cannot read it ({error.strerror or error})") from None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFileError(f"{path}: {_kind(info.st_mode)}, not a regular file; replace it with the file it should be")
        if info.st_size > limit:
            raise UnreadableFileError(f"{path}: {info.st_size:,} bytes, more than the {limit:,} such a file may have")
        try:
            data = handle.read(limit + 1)
        except OSError as error:
            raise UnreadableFileError(f"{path}: cannot read it ({error.strerror or error})") from None
    if len(data) > limit:
        raise UnreadableFileError(f"{path}: more than the {limit:,} bytes such a file may have")
    return data


def read_regular_text(path: str | os.PathLike, limit: int = METADATA_LIMIT) -> str:
    """`read_regular` decoded as UTF-8 (`UnreadableFileError` when it is not)."""
    data = read_regular(path, limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnreadableFileError(f"{path}: not UTF-8 text") from None


def require_regular(path: str | os.PathLike) -> Path:
    """`path` itself when it is a regular file, for a library that opens it on its own (safetensors,
    `torch.load`): a pipe or a device is refused before it is opened (`stat` does not block)."""
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise
    except OSError as error:
        raise UnreadableFileError(f"{path}: cannot read it ({error.strerror or error})") from None
    if not stat.S_ISREG(mode):
        raise UnreadableFileError(f"{path}: {_kind(mode)}, not a regular file; replace it with the file it should be")
    return path


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "a special file"


def atomic_write(path: str | os.PathLike, data: bytes | str) -> Path:
    """Replace `path` by `data` (text is written as UTF-8) in one step: a temporary file beside it,
    created with the user's umask, flushed to disk, then renamed over it. The new file keeps the old
    one's mode and, where allowed, its owner and group. A file with other hard links is written in
    place instead, so every link sees the new content. Raises `OSError` (the old file untouched)."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if path.exists() and os.stat(path).st_nlink > 1:
        with open(path, "r+b") as handle:
            handle.write(payload)
            handle.truncate()
            handle.flush()
            os.fsync(handle.fileno())
        return path
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.unitune-tmp")
    try:
        with open(temporary, "xb") as handle:  # the user's umask, unlike mkstemp's 0600
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            shutil.copymode(path, temporary)
            info = os.stat(path)
            if (info.st_uid, info.st_gid) != (os.getuid(), os.getgid()):
                try:
                    os.chown(temporary, info.st_uid, info.st_gid)
                except PermissionError:
                    pass  # only root may give a file away; the mode is kept all the same
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def remove_tree(top: str | os.PathLike) -> None:
    """Delete the folder `top` and what it holds, however deep (a work stack, where `shutil.rmtree`
    recurses and fails past Python's recursion limit), without following links; what cannot be deleted
    stays."""
    top = Path(top)
    pending, folders = [top], []
    while pending:
        folder = pending.pop()
        folders.append(folder)
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                pending.append(Path(entry.path))
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
    for folder in reversed(folders):  # the deepest first
        with contextlib.suppress(OSError):
            os.rmdir(folder)
