"""Benchmark of assured tests (`validate = "run"`): the whole pipeline on N written candidates for the
example's Account.deposit (checks, runs with observing twins, repair rounds, three runs, coverage,
mutants, shaping, selection) vs. what it replaces, one sandbox run per candidate, and vs. one bare `pytest` subprocess
running the same candidates; measured side by side (interleaved) in one run. No model: the
candidates are written, so only the pipeline is timed.

    python bench/assure.py [--candidates 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "python"
BODIES = [
    '    account = Account("ann", 100)\n    assert account.deposit(50) == 100\n',  # wrong: repaired
    '    with pytest.raises(ValueError):\n        Account("bob").deposit(0)\n',
    '    assert Account("cy", 5).deposit(2) == 7\n',
    '    assert Account("di").deposit(1) == 1\n    assert Account("di", 1).deposit(1) == 2\n',
    '    account = Account("ed")\n    account.deposit(3)\n    assert account.balance == 3\n',
    '    assert Account("fay", 0).deposit(10) == 11\n',  # wrong: repaired
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from unitune.assured import sandbox
    from unitune.assured.delivery import deliver
    from unitune.request import GenerationRequest, prepare
    from unitune.insertion import apply, plan_insertion
    from unitune.prompt import build_prompt
    from unitune.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="unitune-bench-assure-"))
    project = work / "python"
    shutil.copytree(EXAMPLES, project)
    path = project / "bank" / "account.py"
    request = GenerationRequest(path, path.read_text().index("def deposit"), Settings(validate="run"),
                                project_root=project)
    prepared = prepare(request)
    file, function, location = prepared.file, prepared.function, prepared.location
    framework = prepared.framework
    prompt = build_prompt(file, function, framework=framework, module_import=location.module_import)
    completions = [BODIES[i % len(BODIES)] for i in range(args.candidates)]
    header = "import pytest\n\nfrom bank.account import Account"

    def per_candidate() -> float:
        started = time.perf_counter()
        for index, body in enumerate(completions):
            text = apply(None, plan_insertion(location, None, [(f"test_{index}", f"def test_{index}():\n{body}")],
                                             language="python", framework=framework, header=header))
            sandbox.run_tests(project, "tests/test_account.py", {"tests/test_account.py": text},
                              focal_file="bank/account.py", focal_lines=(function.start_line, function.end_line))
        return time.perf_counter() - started

    def bare() -> float:
        tests = [(f"test_{i}", f"def test_{i}():\n{body}") for i, body in enumerate(completions)]
        text = apply(None, plan_insertion(location, None, tests, language="python", framework=framework, header=header))
        (project / "tests").mkdir(exist_ok=True)
        (project / "tests" / "test_account.py").write_text(text)
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_account.py"],
                       cwd=project, capture_output=True, env={"PYTHONPATH": str(project), "PATH": "/usr/bin:/bin"})
        elapsed = time.perf_counter() - started
        shutil.rmtree(project / "tests")
        return elapsed

    def pipeline() -> tuple[float, int]:
        started = time.perf_counter()
        delivery = deliver(request, prepared, prompt, completions, [], lambda *a: None)
        return time.perf_counter() - started, len(delivery.kept)

    pipeline()  # warm up
    timings: dict[str, list[float]] = {"bare": [], "per candidate": [], "pipeline": []}
    kept = 0
    for _ in range(args.repeats):
        timings["bare"].append(bare())
        timings["per candidate"].append(per_candidate())
        seconds, kept = pipeline()
        timings["pipeline"].append(seconds)
    b = statistics.median(timings["bare"])
    print(f"{args.candidates} candidates for Account.deposit; {kept} delivered\n")
    print(f"{'':<64}{'seconds':>9}{'ratio':>8}")
    print(f"{'bare pytest subprocess, all candidates once':<64}{b:>9.2f}{1.0:>8.2f}")
    rows = [("one sandbox run per candidate (validate = run before)", "per candidate"),
            ("assured pipeline: run, twins, repair, 3 runs, coverage, mutants", "pipeline")]
    for label, key in rows:
        value = statistics.median(timings[key])
        print(f"{label:<64}{value:>9.2f}{value / b:>8.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
