"""Writing a file all or nothing: the one way unitune replaces a file (test files, settings, pairs,
results), so a crash or Ctrl-C leaves the old file or the new one, never half of either."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path


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
