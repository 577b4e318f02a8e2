"""Self-training data for the study: tests the assured pipeline delivered for a project's untested
functions, as pairs to train on beside the developers' own.

    python docs/study/self_training.py prepare PROJECT WORK [--limit N]
    python docs/study/self_training.py collect PROJECT WORK

`prepare` makes WORK/copy, the project without the developer tests of its test split (as the split is
judged, so that nothing generated has seen them), and WORK/untested.txt, a listing of the project's
functions that no mined pair covers, outside the files of the valid and test splits (functions of four
lines or more, not dunder methods), N of them taken in the order of a hash (spread over the project). `unitune eval --base --dataset
WORK/untested.txt --repo WORK/copy --save-tests WORK/tests` then writes the tests the pipeline
delivered: each passed three runs and added coverage or killed a mutant.

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
    """`path::Qualified.name` of the functions no pair covers, outside the valid and test splits' files."""
    covered = {(pair["focal_file"], pair["focal_qualified_name"]) for pair in pairs}
    held_out_files = {pair["focal_file"] for pair in pairs if pair["split"] != "train"}
    source_files = {pair["focal_file"] for pair in pairs}
    packages = sorted({Path(name).parts[0] for name in source_files if len(Path(name).parts) > 1})
    found = []
    for package in packages:
        for path in sorted((project / package).rglob("*.py")):
            relative = path.relative_to(project).as_posix()
            if relative in held_out_files or path.name == "__init__.py" or "/tests/" in f"/{relative}":
                continue
            found += [f"{relative}::{name}" for name in _functions(ast.parse(path.read_text("utf-8")))
                      if (relative, name) not in covered]
    return found


def _functions(tree: ast.AST, prefix: str = ""):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if not node.name.startswith("__") and node.end_lineno - node.lineno >= 3:
                yield prefix + node.name


def prepare(project: Path, work: Path, limit: int | None) -> None:
    pairs = read_pairs(project)
    copy = work / "copy"
    if not copy.exists():
        held = held_out_copy(project, [pair for pair in pairs if pair["split"] == "test"], copy)
        print(f"{copy}: {held.removed_tests} developer tests of the test split taken out", file=sys.stderr)
    # a sample spread over the project (in the order of a hash), not its first files
    listing = sorted(sorted(untested_functions(project, pairs), key=lambda name: hashlib.sha1(name.encode()).hexdigest())[:limit])
    (work / "untested.txt").write_text("".join(f"{line}\n" for line in listing), "utf-8")
    print(f"{work / 'untested.txt'}: {len(listing)} untested functions", file=sys.stderr)


def collect(project: Path, work: Path) -> None:
    copy, delivered = work / "copy", sorted((work / "tests").glob("test_*.py"))
    test_folder = copy / "tests"
    for path in delivered:
        shutil.copyfile(path, test_folder / f"{PREFIX}{path.name.removeprefix('test_')}")
    mined = work / "mined.jsonl"
    subprocess.run(["unitune", "mine", str(copy), "--out", str(mined), "--split", "none"], check=True,
                   stdout=subprocess.DEVNULL)
    extra = [json.loads(line) for line in mined.read_text("utf-8").splitlines() if line.strip()]
    extra = [dict(pair, split="train") for pair in extra if Path(pair["test_file"]).name.startswith(PREFIX)]
    pairs = read_pairs(project)
    (project / SELF_PAIRS).write_text("".join(json.dumps(pair) + "\n" for pair in pairs + extra), "utf-8")
    print(f"{project / SELF_PAIRS}: {len(pairs)} pairs and {len(extra)} from {len(delivered)} delivered test files",
          file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("prepare", "collect"))
    parser.add_argument("project", type=Path)
    parser.add_argument("work", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="prepare: only the first N untested functions")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    if args.step == "prepare":
        prepare(args.project.resolve(), args.work.resolve(), args.limit)
    else:
        collect(args.project.resolve(), args.work.resolve())


if __name__ == "__main__":
    main()
