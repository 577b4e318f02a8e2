"""Which files of a repository mining looks at.

In a git work tree: the files git knows about, tracked or not, minus what `.gitignore` (and the other
standard exclude files) ignores: `git ls-files --cached --others --exclude-standard`. Elsewhere (when
git is missing, or the folder is one git ignores as a whole): the project's files as
`unitune.project_walk` walks them, without hidden folders, virtual environments, `site-packages`,
`node_modules`, vendored code (`vendor`, `third_party`), caches, and build output beside a build file.

Either way, binary files (a NUL byte in their first 8 KiB) and files over `MAX_MINED_FILE_BYTES` are
left out: neither is code someone tests by hand.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from unitune.project_walk import project_files

#: Larger files are generated or data, not hand-written code.
MAX_MINED_FILE_BYTES = 1024 * 1024
_SNIFF_BYTES = 8192
_GIT_TIMEOUT_SECONDS = 60


def discover_files(repo: str | Path) -> list[Path]:
    """The files of `repo` worth mining, as absolute paths sorted by their path in the repository."""
    root = Path(repo).resolve()
    listed = _git_files(root)
    candidates = listed if listed is not None else project_files(root)
    kept = [path for path in candidates if _is_minable(path)]
    return sorted(kept, key=lambda path: path.relative_to(root).as_posix())


def is_git_work_tree(root: Path) -> bool:
    """Whether `root` is inside a git work tree (and git is installed)."""
    if shutil.which("git") is None:
        return False
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--is-inside-work-tree"],
            capture_output=True, text=True, timeout=_GIT_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0 and result.stdout.strip() == "true"


def git_commit(root: str | Path) -> str | None:
    """The commit checked out at `root`, or None outside a git work tree (or before the first commit)."""
    if not is_git_work_tree(Path(root)) or _ignored_by_git(Path(root)):
        return None
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "-q", "HEAD"],
            capture_output=True, text=True, timeout=_GIT_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def _git_files(root: Path) -> list[Path] | None:
    """The files git lists under `root`, or None when `root` is not in a work tree."""
    if not is_git_work_tree(root) or _ignored_by_git(root):
        return None
    try:
        result = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True, timeout=_GIT_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    names = result.stdout.decode("utf-8", errors="surrogateescape").split("\0")
    # Paths are relative to `root` (git lists what is under the directory it runs in); a tracked file
    # deleted from the work tree and a submodule (a directory) are not files to read.
    return [root / name for name in dict.fromkeys(names) if name and (root / name).is_file()]


def _ignored_by_git(root: Path) -> bool:
    """Whether git ignores `root` itself (a checkout inside an ignored folder of another work tree,
    such as an interpreter under a git-managed `~/.pyenv/versions/`): then git lists none of it."""
    try:
        result = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", "."],
                                capture_output=True, timeout=_GIT_TIMEOUT_SECONDS)
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


def _is_minable(path: Path) -> bool:
    """A regular, readable, small, non-binary file."""
    try:
        if path.is_symlink() and not path.is_file():
            return False
        if path.stat().st_size > MAX_MINED_FILE_BYTES:
            return False
        with path.open("rb") as handle:
            return b"\0" not in handle.read(_SNIFF_BYTES)
    except OSError:
        return False
