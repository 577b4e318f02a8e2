"""The real-code set as a user runs it from the command line: for each function, a fresh copy of its
package, then `UNITUNE generate FILE --line L --write --json -v` there, one process per function (the
model loads each time, as for a user), and what it wrote judged by the same harness as `unitune eval
--dataset realcode` (`unitune.evaluation.function_judge`). `UNITUNE` may be another installation of
unitune (an earlier version in its own virtual environment), so two versions are compared on the same
functions with the same judge.

    python bench/realcode_cli.py --unitune /path/to/venv/bin/unitune --out before.json [--limit N]
    python bench/realcode.py --unitune-results before.json     # then side by side with Pynguin

Writes a results file in the shape of `unitune eval --json` (a result per function, with `delivered`:
served, coverage, mutants, tests, assertions, seconds as the user waited, and the tokens the model
wrote, read off the `-v` log's `generate.done` lines). Resumable: a function already in `--out` is not
run again.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOKENS = re.compile(r"generate\.done .*?new_tokens=(\d+)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unitune", required=True, help="the unitune executable to run")
    parser.add_argument("--out", type=Path, required=True, help="results file (JSON), resumed when it exists")
    parser.add_argument("--dataset", default="realcode", help="realcode (default) or a .toml set")
    parser.add_argument("--limit", type=int, help="only the first N functions")
    parser.add_argument("--timeout", type=float, default=900, help="seconds one generate may take")
    args = parser.parse_args()
    from unitune.evaluation.function_judge import judge_function_tests
    from unitune.evaluation.realcode_dataset import fresh_copy
    from unitune.evaluation.realcode_eval import function_targets

    record = json.loads(args.out.read_text("utf-8")) if args.out.is_file() else {"label": args.unitune, "results": []}
    done = {result["id"] for result in record["results"]}
    for index, target in enumerate(function_targets(args.dataset, limit=args.limit), 1):
        listed = target.listed
        if listed.id in done:
            continue
        with tempfile.TemporaryDirectory(prefix="unitune-bench-cli-") as temp:
            project = fresh_copy(target.project, Path(temp) / "project")
            line = target.located.source[: target.located.offset].count("\n") + 1
            started = time.perf_counter()
            try:
                run = subprocess.run([args.unitune, "generate", listed.path, "--line", str(line), "--write", "--json",
                                      "-v"], cwd=project, capture_output=True, text=True, timeout=args.timeout)
                output, log, code = run.stdout, run.stderr, run.returncode
            except subprocess.TimeoutExpired as expired:
                output, log, code = "", str(expired.stderr or ""), -1
            seconds = time.perf_counter() - started
            delivered = {"seconds": seconds, "new_tokens": sum(int(n) for n in TOKENS.findall(log))}
            answer = _json(output)
            if code == 0 and (answer.get("written") or answer.get("test_file")):
                test_path = Path(answer.get("written") or answer["test_file"])
                test_rel = test_path.resolve().relative_to(project.resolve()).as_posix()
                names = [test["name"] for test in answer.get("tests", [])]
                judged = judge_function_tests(project, listed.path, target.located.source, listed.qualified_name,
                                              target.located.lines, test_rel, test_path.read_text("utf-8"), names)
                delivered.update(served=True, **judged.figures(), file=test_path.read_text("utf-8"),
                                 tests=[{"name": name} for name in names])
            else:
                why = answer.get("error") or (log.strip().splitlines() or ["no output"])[-1]
                delivered.update(served=False, why=f"exit {code}: {why}"[:1000])
        record["results"].append({"id": listed.id, "delivered": delivered})
        args.out.write_text(json.dumps(record, indent=1), "utf-8")
        print(f"{index}: {listed.id}: {'served' if delivered['served'] else 'not served'}, {seconds:.0f} s, "
              f"{delivered['new_tokens']} tokens", file=sys.stderr, flush=True)


def _json(text: str) -> dict:
    """The JSON object `generate --json` printed (with `--write`, the test file's path is in it)."""
    start = text.find("{")
    try:
        return json.loads(text[start:]) if start >= 0 else {}
    except ValueError:
        return {}


if __name__ == "__main__":
    main()
