"""The function sets of the study beyond a project's test split, and the self-training data.

    python docs/study/study_sets.py untested PROJECT [--skip K] [--limit N] > LISTING
    python docs/study/study_sets.py copy PROJECT WORK
    python docs/study/study_sets.py collect PROJECT WORK

`untested` lists the project's functions that no mined pair covers (four lines or more, not dunder
methods) in the order of a hash, spread over the project: the functions a user would point the tool at.
reproduce.sh judges every model on the first N of them (served, coverage, mutants: there is no
developer test to compare with), beside the test split; self_train.sh generates tests for the next ones.

`copy` makes WORK/copy, the project without the developer tests of its test split, where the
self-training tests are generated (nothing trained on has then seen those tests). `unitune eval --base
--dataset LISTING --repo WORK/copy --save-tests WORK/tests` writes the tests the pipeline delivered, each
of which passed three runs and added coverage or killed a mutant.

`collect` puts those tests into the copy's test folder, mines the copy, and writes PROJECT/pairs-self.jsonl:
the project's pairs as they were (the same valid and test splits) and, in the train split, the pairs
mined from the delivered tests.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from unitune.evaluation.held_out import held_out_copy

PREFIX = "test_self_"  # delivered tests' file names in the copy, so their pairs can be told apart
PAIRS, SELF_PAIRS = "pairs.jsonl", "pairs-self.jsonl"


def read_pairs(project: Path) -> list[dict]:
    return [json.loads(line) for line in (project / PAIRS).read_text("utf-8").splitlines() if line.strip()]


def untested_functions(project: Path, pairs: list[dict]) -> list[str]:
    """`path::Qualified.name` of the functions no pair covers, in the order of a hash of that name."""
    covered = {(pair["focal_file"], pair["focal_qualified_name"]) for pair in pairs}
    source_files = {pair["focal_file"] for pair in pairs}
    packages = sorted({Path(name).parts[0] for name in source_files if len(Path(name).parts) > 1})
    found = []
    for package in packages:
        for path in sorted((project / package).rglob("*.py")):
            relative = path.relative_to(project).as_posix()
            if path.name == "__init__.py" or "/tests/" in f"/{relative}":
                continue
            found += [f"{relative}::{name}" for name in _functions(ast.parse(path.read_text("utf-8")))
                      if (relative, name) not in covered]
    return sorted(found, key=lambda name: hashlib.sha1(name.encode()).hexdigest())


def _functions(tree: ast.AST, prefix: str = ""):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if not node.name.startswith("__") and node.end_lineno - node.lineno >= 3:
                yield prefix + node.name


def copy(project: Path, work: Path) -> None:
    pairs = read_pairs(project)
    held = held_out_copy(project, [pair for pair in pairs if pair["split"] == "test"], work / "copy")
    print(f"{work / 'copy'}: {held.removed_tests} developer tests of the test split taken out", file=sys.stderr)


def collect(project: Path, work: Path) -> None:
    copy, delivered = work / "copy", sorted((work / "tests").glob("test_*.py"))
    test_folder = copy / "tests"
    for path in delivered:
        shutil.copyfile(path, test_folder / f"{PREFIX}{path.name.removeprefix('test_')}")
    mined = work / "mined.jsonl"
    subprocess.run(["unitune", "mine", str(copy), "--out", str(mined), "--split", "none"], check=True,
                   stdout=subprocess.DEVNULL)
    extra = [json.loads(line) for line in mined.read_text("utf-8").splitlines() if line.strip()]
    # a delivered file that went into an existing test file holds that file's developer tests too: only
    # the tests the pipeline wrote are new
    developers = "".join(path.read_text("utf-8", errors="replace") for path in project.rglob("test*.py")
                         if ".venv" not in path.parts)
    extra = [dict(pair, split="train") for pair in extra
             if Path(pair["test_file"]).name.startswith(PREFIX) and pair["test_code"].strip() not in developers]
    pairs = read_pairs(project)
    (project / SELF_PAIRS).write_text("".join(json.dumps(pair) + "\n" for pair in pairs + extra), "utf-8")
    print(f"{project / SELF_PAIRS}: {len(pairs)} pairs and {len(extra)} from {len(delivered)} delivered test files",
          file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("untested", "copy", "collect"))
    parser.add_argument("project", type=Path)
    parser.add_argument("work", type=Path, nargs="?", help="copy, collect: the self-training folder")
    parser.add_argument("--skip", type=int, default=0, help="untested: leave out the first K")
    parser.add_argument("--limit", type=int, default=None, help="untested: list N at most")
    args = parser.parse_args()
    project = args.project.resolve()
    if args.step == "untested":
        listing = untested_functions(project, read_pairs(project))[args.skip:]
        print("".join(f"{line}\n" for line in listing[:args.limit]), end="")
        return
    if args.work is None:
        parser.error(f"{args.step} needs WORK")
    args.work.mkdir(parents=True, exist_ok=True)
    (copy if args.step == "copy" else collect)(project, args.work.resolve())


if __name__ == "__main__":
    main()
