"""The repository a pairs file's test split is judged in: a copy without the developer tests of that split.

A held-out function is one whose tests the model has not seen. Judged in the mined repository itself,
the prompt would show the developer's own test of the function (the project block's nearest test, the
test file it goes into), and the model would copy it: the score would measure copying, and an adapter
trained on the other pairs could add nothing to it. So the test split is judged as a user meets an
untested function: in a copy of the repository where every test paired with a held-out function is
taken out of its test file, the rest of the file (imports, fixtures, other tests) left as it is.

The copy leaves out version control, unitune's own folder, caches and a virtual environment at the root
(`.venv`, `venv`): the evaluation runs the tests with the project's own interpreter, found in the
project itself (`sandbox.project_python`) and given as the `python` setting.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from unitune.listing import list_tests
from unitune.logs import log_event
from unitune.source import SourceFile
from unitune.test_skeleton import skeleton_of

log = logging.getLogger(__name__)

#: Root folders of a virtual environment, left out of the copy (the project's interpreter stays where it is).
ENVIRONMENT_FOLDERS = (".venv", "venv")
#: Names never copied: version control, unitune's store and run folders, caches.
SKIPPED_NAMES = (".git", ".hg", ".unitune", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox",
                 ".nox")


@dataclass(frozen=True)
class HeldOutCopy:
    """Where the copy is and what was taken out of it."""

    root: Path
    removed_tests: int  # tests taken out of their files
    test_files: int  # files they were taken from


def held_out_copy(repo: Path, pairs: list[dict], into: Path) -> HeldOutCopy:
    """Copy `repo` to `into` (a folder that does not exist yet) and take out of it every test that one of
    `pairs` names (`test_file`, `test_name`)."""
    repo = repo.resolve()
    shutil.copytree(repo, into, symlinks=True,
                    ignore=lambda folder, names: _ignored(repo, Path(folder), names))
    by_file: dict[tuple[str, str], set[str]] = {}
    for pair in pairs:
        by_file.setdefault((pair["test_file"], pair["language"]), set()).add(pair["test_name"])
    removed = 0
    for (relative, language), names in sorted(by_file.items()):
        path = into / relative
        if not path.is_file():
            continue
        file = SourceFile(path.read_text("utf-8"), language, path)
        tests = [test for test in list_tests(file) if test.qualified_name in names]
        if tests:
            path.write_text(skeleton_of(file, tests), "utf-8")
            removed += len(tests)
    log_event(log, "eval.held_out", copy=str(into), removed_tests=removed, test_files=len(by_file))
    return HeldOutCopy(into, removed, len(by_file))


def _ignored(repo: Path, folder: Path, names: list[str]) -> set[str]:
    ignored = {name for name in names if name in SKIPPED_NAMES}
    if folder == repo:
        ignored |= {name for name in names if name in ENVIRONMENT_FOLDERS}
    return ignored
