"""Time to the first delivered test, llama.cpp against torch, through the whole pipeline (validate = run).

    python bench/first_test.py [--problems 20] [--engines torch,llama.cpp] [--busy]

For each engine, measured one after the other in this run, never at once:
- the README's example (`Account.deposit`) as `unitune generate` runs it from a cold start: a fresh
  process that loads the model (`cold`), then the same request again in that process (`warm`);
- the first `--problems` HumanEval problems as `unitune eval` runs them (one process, the model warm,
  as in the language server);
each with the seconds to the first test that passed the assured pipeline (`first_test`) and to the end
of every round (`total`); for the README's example also the first round's tokens per second of
generating (its prompt's reading included; `bench/engines.py` measures decoding alone).
Ratios are llama.cpp / torch. `--busy` keeps one core busy throughout (a spinning process).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]


def readme_example(engine: str) -> dict:
    """`unitune generate` on the README's example, cold then warm, in this (fresh) process."""
    import shutil

    from unitune.runtime.loading import ModelSpec, quiet_libraries
    from unitune.request import GenerationRequest
    from unitune.runtime.runtime import runtime_for
    from unitune.generation.service import TestGenerator
    from unitune.settings import Settings
    from unitune.source import SourceFile, cli_offset

    quiet_libraries()
    work = Path(tempfile.mkdtemp(prefix="unitune-bench-first-"))
    shutil.copytree(ROOT / "examples", work / "examples")
    path = work / "examples" / "python" / "bank" / "account.py"
    offset = cli_offset(SourceFile.from_path(path), 17, None)
    settings = Settings(engine=engine)
    started = time.perf_counter()
    runtime = runtime_for(ModelSpec.from_settings(settings))
    generator = TestGenerator(runtime)
    runs = []
    for _ in range(2):
        began = time.perf_counter()
        outcome = generator.generate(GenerationRequest(path, offset, settings, project_root=path.parents[1]))
        runs.append({"first_test": outcome.timings["first_test"] + (began - started if not runs else 0.0),
                     "total": time.perf_counter() - (started if not runs else began),
                     "generate": outcome.timings.get("generate", 0.0), "new_tokens": outcome.stats.new_tokens,
                     "tests": len(outcome.tests), "engine": outcome.engine})
    getattr(runtime, "close", lambda: None)()
    return {"cold": runs[0], "warm": runs[1]}


def humaneval(engine: str, problems: int) -> list[dict]:
    from unitune.runtime.loading import ModelSpec, quiet_libraries
    from unitune.runtime.runtime import runtime_for
    from unitune.evaluation.evaluation import run_evaluation
    from unitune.settings import Settings

    quiet_libraries()
    settings = Settings(engine=engine)
    runtime = runtime_for(ModelSpec.from_settings(settings))
    report = run_evaluation(runtime, settings, None, "humaneval", problems, None, engine)
    getattr(runtime, "close", lambda: None)()
    rows = []
    for result in report.results:
        delivered = result.delivered or {}
        timings = delivered.get("timings", {})
        rows.append({"id": result.id, "served": bool(delivered.get("served")),
                     "first_test": timings.get("first_test"), "total": delivered.get("seconds"),
                     "line_coverage": delivered.get("line_coverage")})
    return rows


def child(engine: str, problems: int) -> dict:
    return {"readme": readme_example(engine), "humaneval": humaneval(engine, problems)}


def median(values) -> float:
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, default=20, help="the first N HumanEval problems")
    parser.add_argument("--engines", default="torch,llama.cpp")
    parser.add_argument("--busy", action="store_true", help="keep one core busy with a spinning process")
    parser.add_argument("--out", type=Path, help="write every figure as JSON here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.problems)))
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} before, "
          f"{'one core kept busy' if spinner else 'idle'}; README example and HumanEval 1-{args.problems}\n")
    results = {}
    try:
        for engine in args.engines.split(","):
            run = subprocess.run([sys.executable, __file__, "--child", engine, "--problems", str(args.problems)],
                                 capture_output=True, text=True)
            if run.returncode:
                print(f"{engine}: failed\n{run.stderr[-3000:]}")
                continue
            results[engine] = json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        if spinner:
            spinner.kill()
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))
    engines = list(results)
    reference = engines[0] if engines else None
    print(f"{'':<44}" + "".join(f"{engine:>12}" for engine in engines) + (f"{'ratio':>8}" if len(engines) == 2 else ""))

    def line(label: str, values: list[float], digits: int = 1) -> None:
        ratio = f"{values[1] / values[0]:>8.2f}" if len(values) == 2 and values[0] else ""
        print(f"{label:<44}" + "".join(f"{value:>12.{digits}f}" for value in values) + ratio)

    for start in ("cold", "warm"):
        runs = [results[engine]["readme"][start] for engine in engines]
        line(f"README example, {start}: first test (s)", [run["first_test"] for run in runs])
        line(f"README example, {start}: all rounds (s)", [run["total"] for run in runs])
        line(f"README example, {start}: tokens/s (prefill too)", [run["new_tokens"] / max(run["generate"], 1e-9) for run in runs])
    rows = {engine: results[engine]["humaneval"] for engine in engines}
    line("HumanEval: served", [sum(row["served"] for row in rows[engine]) for engine in engines], 0)
    line("HumanEval: median first test (s)", [median(row["first_test"] for row in rows[engine]) for engine in engines])
    line("HumanEval: mean first test (s)",
         [statistics.fmean([row["first_test"] for row in rows[engine] if row["first_test"] is not None] or [0])
          for engine in engines])
    line("HumanEval: median all rounds (s)", [median(row["total"] for row in rows[engine]) for engine in engines])
    line("HumanEval: mean line coverage (served)",
         [statistics.fmean([row["line_coverage"] for row in rows[engine] if row["line_coverage"] is not None] or [0])
          for engine in engines], 3)
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    if reference:
        served = ", ".join(f"{engine} served by {results[engine]['readme']['warm']['engine']}" for engine in engines)
        print(f"engines: {served}")


if __name__ == "__main__":
    main()
