"""Benchmark of test quality on real code: unitune and Pynguin 0.48 on the same real functions (the
built-in `realcode` set: 45 functions and methods with branches of inflection, humanize, semver and
boltons.strutils, pinned wheels, tests removed), judged by one harness
(`unitune.evaluation.function_judge`: coverage of the function by the passing tests, the same 12
mutants per function for both, tests and assertions, and the checks that add nothing).

    python bench/realcode.py [--model M] [--limit N] [--work DIR]
    python bench/realcode.py --unitune-results base-realcode.json --pynguin-seconds-per-function 20
    python bench/realcode.py --unitune-results base-realcode.json --rejudge   # after the harness changed
    python bench/realcode.py --dataset functions.txt --repo ~/my-project

unitune runs as a user runs it (`unitune eval --base --dataset realcode --json --save-tests ...`,
one `generate` per function, validate = run) unless `--unitune-results` gives the JSON of such a run
(the `--json` output or the saved `$UNITUNE_HOME/evals/base-*-realcode.json`). Pynguin runs once per
module, in its own virtual environment under the dataset cache, with a search budget that is, per
module, the seconds unitune spent on that module's functions (generation and delivery, not the
judging; at least 10 s), or `--pynguin-seconds-per-function S` times the module's functions; the
output says which. Prints one line per function (unitune | Pynguin), Pynguin's runs, the totals and
the ratios unitune / Pynguin, all from this one run.

Resumable: a full run takes over an hour. unitune's results land in WORK/unitune-*.json (and `unitune
eval` resumes its own partial file), each Pynguin run in WORK/pynguin/MODULE/run.json (run again when
its budget or Python changes) and each function's judgement beside it; a run started again with the same
arguments goes on where it stopped. WORK defaults to $UNITUNE_HOME/realcode/bench; --fresh empties it
first (needed after a change of the harness, whose judgements are kept).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
MIN_PYNGUIN_SECONDS = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="realcode", help="realcode (default), a .toml set, or a listing file")
    parser.add_argument("--repo", type=Path, help="the project of a listing")
    parser.add_argument("--limit", type=int, help="only the first N functions")
    parser.add_argument("--model", help="unitune's model (default: the settings' model)")
    parser.add_argument("--unitune-results", type=Path, metavar="FILE",
                        help="use this `unitune eval --json` result instead of running unitune")
    parser.add_argument("--pynguin-seconds-per-function", type=float, metavar="S",
                        help="Pynguin's search budget per function of a module (default: unitune's seconds)")
    parser.add_argument("--pynguin-python", default=sys.executable,
                        help="the Python that Pynguin's virtual environment is made from (3.10-3.12)")
    parser.add_argument("--seed", type=int, default=0, help="Pynguin's seed")
    parser.add_argument("--dataset-cache", type=Path, metavar="DIR", help="wheels, projects and Pynguin's venv "
                        "(default: $UNITUNE_HOME/realcode)")
    parser.add_argument("--work", type=Path, help="results of this benchmark (default: DATASET_CACHE/bench)")
    parser.add_argument("--rejudge", action="store_true",
                        help="judge unitune's delivered tests (of --unitune-results) again with this harness, "
                             "for results saved before it changed (saved as WORK/unitune-rejudged.json, resumed)")
    parser.add_argument("--fresh", action="store_true", help="empty the work folder first")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    return parser.parse_args()


def slug(text: str) -> str:
    return re.sub(r"\W+", "_", text).strip("_")


def unitune_results(args, work: Path) -> tuple[list[dict], str]:
    """unitune's results (one dict per function) and where they came from."""
    if args.unitune_results:
        record = json.loads(args.unitune_results.read_text("utf-8"))
        return record["results"], f"from {args.unitune_results}"
    # another set, limit or model is another run, saved apart
    saved = work / f"unitune-{slug(Path(args.dataset).name)}-{args.limit or 'all'}-{slug(args.model or 'default')}.json"
    if not saved.is_file():
        command = [sys.executable, "-m", "unitune", "eval", "--base", "--dataset", args.dataset, "--json",
                   "--save-tests", str(work / "unitune-tests")]
        for flag, value in (("--repo", args.repo), ("--limit", args.limit), ("--model", args.model),
                            ("--dataset-cache", args.dataset_cache)):
            if value is not None:
                command += [flag, str(value)]
        print("running: " + " ".join(command), file=sys.stderr)
        with open(saved.with_suffix(".partial"), "w", encoding="utf-8") as out:
            code = subprocess.run(command, stdout=out).returncode  # progress goes to the terminal
        if code != 0:
            sys.exit(f"unitune eval exited with {code}; run this again to resume it")
        os.replace(saved.with_suffix(".partial"), saved)
    record = json.loads(saved.read_text("utf-8"))
    return record["results"], f"run here ({record.get('label', '')}, {saved})"


def rejudge(results: list[dict], targets, work: Path) -> list[dict]:
    """`results` with each served function's delivered tests judged again, in the test file `generate`
    wrote them to; saved after each function, so a stopped run goes on."""
    from unitune.request import GenerationRequest, prepare
    from unitune.evaluation.function_judge import judge_function_tests
    from unitune.evaluation.realcode_dataset import fresh_copy
    from unitune.settings import Settings

    saved = work / "unitune-rejudged.json"
    done = {r["id"]: r for r in json.loads(saved.read_text("utf-8"))} if saved.is_file() else {}
    by_id = {target.listed.id: target for target in targets}
    fresh = []
    for result in results:
        delivered, target = result.get("delivered") or {}, by_id.get(result["id"])
        if result["id"] in done or not delivered.get("served") or target is None:
            fresh.append(done.get(result["id"], result))
            continue
        with tempfile.TemporaryDirectory(prefix="unitune-rejudge-") as temp:
            project = fresh_copy(target.project, Path(temp) / "project") if target.fresh_copy else target.project
            test_rel = delivered.get("test_file")
            if test_rel is None:  # saved before results named it: where `generate` puts it
                path = project / target.listed.path
                location = prepare(GenerationRequest(path, target.located.offset, Settings(), project_root=project)).location
                test_rel = location.path.relative_to(project).as_posix()
            judged = judge_function_tests(project, target.listed.path, target.located.source,
                                          target.listed.qualified_name, target.located.lines, test_rel,
                                          delivered["file"], [test["name"] for test in delivered["tests"]])
        # the seconds a user waited are the original run's: its total less its own judging
        waited = {key: delivered[key] for key in ("seconds", "judge_seconds") if key in delivered}
        fresh.append({**result, "delivered": {**delivered, **judged.figures(), **waited, "test_file": test_rel}})
        done[result["id"]] = fresh[-1]
        saved.write_text(json.dumps(list(done.values()), indent=1), "utf-8")
        print(f"judged again: {result['id']}: idle checks {judged.idle_checks}", file=sys.stderr, flush=True)
    return fresh


def pynguin_rows(targets, unitune_rows: dict, args, cache: Path, work: Path) -> tuple[dict, list, dict, str]:
    """Pynguin's row per function id, its runs (one per module), how many of each module's tests pass
    on the original code (of how many), and how its budget was set."""
    from unitune.evaluation.function_judge import FunctionJudgement
    from unitune.evaluation.pynguin_runner import (
        PynguinRun, ensure_pynguin, judge_pynguin_function, pynguin_row, python_version, run_pynguin,
    )
    from unitune.evaluation.realcode_dataset import fresh_copy

    if args.pynguin_seconds_per_function:
        how = f"{args.pynguin_seconds_per_function:g} s of search per function of the module (--pynguin-seconds-per-function)"
    else:
        how = (f"per module, the seconds unitune spent on its functions (generation and delivery; "
               f"at least {MIN_PYNGUIN_SECONDS} s)")
    version = python_version(args.pynguin_python)
    how += f"; on Python {version}"
    program = ensure_pynguin(cache, args.pynguin_python)
    modules: dict[tuple[Path, str], list] = {}
    for target in targets:
        modules.setdefault((target.project, target.listed.module_name), []).append(target)
    rows, runs, passing = {}, [], {}
    for (project, module), members in modules.items():
        if args.pynguin_seconds_per_function:
            budget = math.ceil(args.pynguin_seconds_per_function * len(members))
        else:
            spent = sum(unitune_rows[t.listed.id].seconds or 0.0 for t in members)
            budget = max(MIN_PYNGUIN_SECONDS, math.ceil(spent))
        folder = work / "pynguin" / slug(module)
        saved = folder / "run.json"
        run = PynguinRun(**json.loads(saved.read_text("utf-8"))) if saved.is_file() else None
        if run is None or run.budget_seconds != budget or run.command[:1] != [str(program)]:  # or another Python
            shutil.rmtree(folder, ignore_errors=True)
            copy = fresh_copy(project, folder / "project") if members[0].fresh_copy else project
            print(f"Pynguin: {module}, {budget} s of search ...", file=sys.stderr)
            run = run_pynguin(program, copy, module, folder / "tests", budget, seed=args.seed)
            saved.write_text(json.dumps(asdict(run), indent=1), "utf-8")
        runs.append(run)
        for target in members:
            judged_path = folder / f"{slug(target.listed.qualified_name)}.json"
            if judged_path.is_file():
                judged = FunctionJudgement(**json.loads(judged_path.read_text("utf-8")))
            else:
                copy = fresh_copy(project, folder / "judged-project") if target.fresh_copy else project
                judged = judge_pynguin_function(copy, run, target.located)
                judged_path.write_text(json.dumps(asdict(judged), indent=1), "utf-8")
            print(f"Pynguin judged: {target.listed.id}: covering tests {judged.covering}, "
                  f"killed {judged.mutants_killed}/{judged.mutants}", file=sys.stderr)
            if judged.tests:
                passing.setdefault(module, (judged.passing, judged.tests))
            rows[target.listed.id] = pynguin_row(target.listed.id, run, judged, run.seconds / len(members))
    return rows, runs, passing, how


def pair(left: str, right: str) -> str:
    return f"{left} | {right}"


def side_by_side(ours, theirs) -> str:
    from unitune.evaluation.function_report import TABLE_HEADER, render, row_cells

    lines = [["function (unitune | Pynguin)"] + [h for h in TABLE_HEADER if h != "pass"]]
    for mine, other in zip(ours, theirs):
        a, b = row_cells(mine), row_cells(other)
        del a[1], b[1]  # "pass": unitune's delivered tests always pass; Pynguin's per module, below
        lines.append([mine.id] + [pair(x, y) for x, y in zip(a, b)])
    return render(lines)


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}x"


def totals_table(ours, theirs) -> str:
    from unitune.evaluation.function_report import number, percent, render, totals

    header = ["", "served", "line cov", "branch cov", "mutation score", "tests/function", "asserts/test",
              "idle checks", "s total", "s/function (median)"]

    def cells(label, total):
        return [label, f"{total.served}/{total.functions}", percent(total.line_coverage),
                percent(total.branch_coverage), f"{percent(total.mutation_score)} ({total.mutants_killed}/{total.mutants})",
                number(total.tests_per_function), number(total.assertions_per_test),
                "-" if total.idle_checks is None else str(total.idle_checks), number(total.seconds, ".0f"),
                number(total.seconds_median)]

    mine, other = totals(ours), totals(theirs)
    lines = [header, cells("unitune", mine), cells("Pynguin 0.48", other),
             ["unitune / Pynguin", ratio(mine.served, other.served), ratio(mine.line_coverage, other.line_coverage),
              ratio(mine.branch_coverage, other.branch_coverage), ratio(mine.mutation_score, other.mutation_score),
              ratio(mine.tests_per_function, other.tests_per_function),
              ratio(mine.assertions_per_test, other.assertions_per_test), "", ratio(mine.seconds, other.seconds),
              ratio(mine.seconds_median, other.seconds_median)]]
    return render(lines)


def main() -> None:
    args = parse_args()
    from unitune.evaluation.function_judge import MUTANTS_PER_FUNCTION
    from unitune.evaluation.function_report import FunctionRow, render, row_from_result, totals
    from unitune.evaluation.pynguin_runner import PYNGUIN_VERSION
    from unitune.evaluation.realcode_dataset import default_cache
    from unitune.evaluation.realcode_eval import function_targets
    from unitune.errors import UnituneError

    cache = args.dataset_cache or default_cache()
    work = args.work or cache / "bench"
    if args.fresh:
        shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    try:
        targets = function_targets(args.dataset, args.repo, args.limit, cache)
        results, source = unitune_results(args, work)
        if args.rejudge:
            results, source = rejudge(results, targets, work), source + ", judged again here"
        by_id = {result["id"]: result for result in results}
        missing = [t.listed.id for t in targets if t.listed.id not in by_id]
        if missing:
            sys.exit(f"unitune's results lack {len(missing)} of the functions ({', '.join(missing[:3])}, ...): "
                     "they were made for another set or --limit")
        ours = {t.listed.id: row_from_result(by_id[t.listed.id]) for t in targets}
        theirs, runs, passing, how = pynguin_rows(targets, ours, args, cache, work)
    except UnituneError as error:
        sys.exit(f"bench/realcode.py: {error}")
    mine = [ours[t.listed.id] for t in targets]
    other: list[FunctionRow] = [theirs[t.listed.id] for t in targets]
    report = {"unitune": {"source": source, "rows": [r.to_json() for r in mine], "totals": totals(mine).to_json()},
              "pynguin": {"version": PYNGUIN_VERSION, "budget": how, "runs": [
                  {**{k: v for k, v in asdict(run).items() if k != "test_file"},
                   "tests_passing": passing.get(run.module, (0, 0))[0], "tests": passing.get(run.module, (0, 0))[1]}
                  for run in runs],
                  "rows": [r.to_json() for r in other], "totals": totals(other).to_json()},
              "mutants_per_function": MUTANTS_PER_FUNCTION}
    (work / "report.json").write_text(json.dumps(report, indent=1), "utf-8")
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{len(targets)} functions of {args.dataset}; up to {MUTANTS_PER_FUNCTION} mutants each, the same for both")
    print(f"unitune: {source}")
    print(f"Pynguin {PYNGUIN_VERSION}: budget {how}; seed {args.seed}\n")
    print(side_by_side(mine, other))
    print("\nPynguin's runs (one per module):")
    lines = [["module", "budget s", "wall s", "status", "tests passing on the original"]]
    for run in runs:
        passed, written = passing.get(run.module, (0, 0))
        lines.append([run.module, str(run.budget_seconds), f"{run.seconds:.0f}", run.status, f"{passed}/{written}"])
    print(render(lines))
    print("\n" + totals_table(mine, other))
    unserved = [(r.id, who, r.why) for who, rows in (("unitune", mine), ("Pynguin", other)) for r in rows if not r.served]
    if unserved:
        print("\nnot served:\n" + "\n".join(f"  {who}: {name}: {why}" for name, who, why in unserved))
    print(f"\nfigures: {work / 'report.json'}")


if __name__ == "__main__":
    main()
