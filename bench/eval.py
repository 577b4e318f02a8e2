"""Benchmark of the sandbox: sandboxed test runs per second vs. a bare `pytest` subprocess on the
same test, measured side by side (interleaved) in one run.

    python bench/eval.py [--runs 8]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODULE = "def clamp(x, low, high):\n    if x < low:\n        return low\n    if x > high:\n        return high\n    return x\n"
TEST = "from problem import clamp\n\n\ndef test_clamp():\n    assert clamp(5, 0, 10) == 5\n    assert clamp(-1, 0, 10) == 0\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()
    from unitune.assured.sandbox import run_tests, sandbox_isolation

    project = Path(tempfile.mkdtemp(prefix="unitune-bench-eval-"))
    (project / "problem.py").write_text(MODULE)
    (project / "tests").mkdir()
    (project / "tests" / "test_problem.py").write_text(TEST)
    bare_cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_problem.py"]
    run_tests(project, "tests/test_problem.py", focal_file="problem.py", focal_lines=(1, 6))  # warm up
    bare, sandboxed, sandboxed_plain = [], [], []
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run(bare_cmd, cwd=project, capture_output=True, check=True, env={"PYTHONPATH": str(project), "PATH": "/usr/bin:/bin"})
        bare.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = run_tests(project, "tests/test_problem.py", focal_file="problem.py", focal_lines=(1, 6))
        sandboxed.append(time.perf_counter() - started)
        assert result.status == "passed", result.output
        started = time.perf_counter()
        run_tests(project, "tests/test_problem.py", focal_file="problem.py", focal_lines=(1, 6), plugins=False)
        sandboxed_plain.append(time.perf_counter() - started)
    b, s, p = statistics.median(bare), statistics.median(sandboxed), statistics.median(sandboxed_plain)
    print(f"isolation here: {sandbox_isolation()}\n")
    print(f"{'one run of a one-test file':<52}{'seconds':>9}{'runs/s':>8}{'ratio':>8}")
    print(f"{'bare pytest subprocess':<52}{b:>9.3f}{1 / b:>8.2f}{1.0:>8.2f}")
    print(f"{'sandbox (copy, limits, no network, coverage)':<52}{s:>9.3f}{1 / s:>8.2f}{s / b:>8.2f}")
    print(f"{'sandbox, pytest plugins off':<52}{p:>9.3f}{1 / p:>8.2f}{p / b:>8.2f}")


if __name__ == "__main__":
    main()
