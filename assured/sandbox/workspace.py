"""The sandbox's copy of a project: what is copied (no version control, virtual environments,
caches, large files), paths that must stay inside it, handing it to the tests' user, removing it."""

from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path, PurePosixPath

from unitune.project_walk import project_folders
from unitune.assured.sandbox.results import SandboxError

#: Endings of file names never copied (which folders are copied: `unitune.project_walk`).
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".egg-info")
MAX_FILE_BYTES = 10 * 1024 * 1024  # larger files are not copied
MAX_COPY_FILES = 50_000
MAX_COPY_BYTES = 512 * 1024 * 1024


def copy_project(root: Path, target: Path) -> int:
    """Copy the project's files under `root` into `target` (created), leaving out the folders that
    are not the project's own (version control, virtual environments, caches, `node_modules`, build
    output beside a build file: `unitune.project_walk`, walking as a copy does) and files over
    `MAX_FILE_BYTES`; symbolic links to files are copied as the file they point to when that is inside
    the project, else left out, as are symbolic links to folders. Returns the number of files copied."""
    root = Path(root).resolve()
    target.mkdir(parents=True)
    files = size = 0
    for here, names in project_folders(root, copying=True):
        relative = here.relative_to(root)
        (target / relative).mkdir(exist_ok=True)
        for name in names:
            if name.endswith(SKIPPED_SUFFIXES):
                continue
            source = here / name
            try:
                if source.is_symlink():
                    resolved = source.resolve()
                    if not resolved.is_relative_to(root) or not resolved.is_file():
                        continue
                    source = resolved
                info = source.stat()
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
                continue
            files += 1
            size += info.st_size
            if files > MAX_COPY_FILES or size > MAX_COPY_BYTES:
                raise SandboxError(
                    f"{root}: the project is too large to copy into a sandbox (over {MAX_COPY_FILES} files or "
                    f"{MAX_COPY_BYTES // (1024 * 1024)} MB without caches and virtual environments)"
                )
            destination = target / relative / name
            try:
                shutil.copyfile(source, destination)
                os.chmod(destination, (info.st_mode & 0o777) | 0o600)
            except OSError:
                continue
    return files


def relative_path(path: str, what: str) -> str:
    """`path` as a relative POSIX path that stays inside the copy."""
    pure = PurePosixPath(str(path).replace("\\", "/"))
    if not str(path) or pure.is_absolute() or ".." in pure.parts or str(pure) in ("", "."):
        raise SandboxError(f"{path!r}: the {what} must be a path relative to the project, inside it")
    return pure.as_posix()


def chown_tree(folder: Path, uid: int, gid: int) -> None:
    os.chown(folder, uid, gid)
    for current, dirs, names in os.walk(folder):
        for name in dirs + names:
            try:
                os.chown(os.path.join(current, name), uid, gid, follow_symlinks=False)
            except OSError:
                pass


def remove_tree(folder: Path) -> None:
    def unlock(function, path, _):
        try:
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
            function(path)
        except OSError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(folder, onexc=unlock)
    else:
        shutil.rmtree(folder, onerror=unlock)
