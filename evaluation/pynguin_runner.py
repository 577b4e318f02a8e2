"""Pynguin as the reference for real code: its own virtual environment (Pynguin 0.48 needs pytest<9,
which unitune's environment need not have), one Pynguin run per module with a time budget, and its
test module judged per function by `function_judge`, the harness unitune's tests go through.

Pynguin runs with its defaults but for: assertion generation by mutation analysis (its default,
named so it shows), the mutation analysis capped at the search budget, a fixed seed (a run can be
repeated), and `--no-xfail` (a call that raises is checked with `pytest.raises` rather than marked
as an expected failure, so the test can pass and be judged like any other).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from unitune.evaluation.evaluation import EvaluationError
from unitune.evaluation.function_judge import FunctionJudgement, judge_function_tests
from unitune.evaluation.function_report import FunctionRow

PYNGUIN_VERSION = "0.48.0"
INSTALL_SECONDS = 1800
DEFAULT_SEED = 0


class PynguinError(EvaluationError):
    """Pynguin cannot be installed or started at all (not: a run on one module failed)."""


@dataclass
class PynguinRun:
    """One Pynguin run on a module."""

    module: str
    budget_seconds: int  # --maximum-search-time
    seconds: float  # wall-clock, start to finish
    status: str  # "ok", "failed" (exit code), "timeout", "no tests" (it wrote no test module)
    test_file: str = ""  # the test module it wrote
    detail: str = ""  # the end of its output when something went wrong
    command: list[str] = field(default_factory=list)


def pynguin_venv(cache: Path, python_version: str) -> Path:
    """Its virtual environment for a base Python `python_version` ("3.10"): one per version, as a run
    on one version may fail where another succeeds (its bytecode instrumentation depends on it)."""
    return cache / f"pynguin-{PYNGUIN_VERSION}-py{python_version}"


def python_version(python: str) -> str:
    """"3.10" for the interpreter `python`."""
    try:
        run = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise PynguinError(f"cannot run {python} to make Pynguin's environment from it ({error}); "
                           "give a Python 3.10-3.12 with --pynguin-python") from error
    version = run.stdout.strip()
    if run.returncode != 0 or not version.replace(".", "").isdigit():
        said = [line for line in (run.stderr or run.stdout).splitlines() if line.strip()][-2:]
        raise PynguinError(f"{python} does not say its version ({' / '.join(said)}); "
                           "give a Python 3.10-3.12 with --pynguin-python")
    return version


def _installed_version(python: Path) -> str | None:
    try:
        run = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('pynguin'))"],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return run.stdout.strip() if run.returncode == 0 else None


def ensure_pynguin(cache: Path, base_python: str = sys.executable) -> Path:
    """The `pynguin` program of a virtual environment in `cache` for `base_python`'s version, created
    with `base_python -m venv` and `pip install pynguin==0.48.0` the first time."""
    venv = pynguin_venv(cache, python_version(base_python))
    python, program = venv / "bin" / "python", venv / "bin" / "pynguin"
    if program.is_file() and _installed_version(python) == PYNGUIN_VERSION:
        return program
    cache.mkdir(parents=True, exist_ok=True)
    steps = [[base_python, "-m", "venv", "--clear", str(venv)],
             [str(python), "-m", "pip", "install", "--disable-pip-version-check", f"pynguin=={PYNGUIN_VERSION}"]]
    for step in steps:
        try:
            run = subprocess.run(step, capture_output=True, text=True, timeout=INSTALL_SECONDS)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise PynguinError(f"installing Pynguin {PYNGUIN_VERSION} into {venv}: `{' '.join(step)}` failed "
                               f"({error})") from error
        if run.returncode != 0:
            said = [line for line in (run.stderr or run.stdout).splitlines() if line.strip()][-3:]
            raise PynguinError(
                f"installing Pynguin {PYNGUIN_VERSION} into {venv}: `{' '.join(step[-3:])}` failed "
                f"({' / '.join(said)}). It needs the package index and a Python 3.10-3.12 (--pynguin-python).")
    return program


def run_pynguin(program: Path, project: Path, module: str, output: Path, budget_seconds: int,
                seed: int = DEFAULT_SEED, timeout: float | None = None) -> PynguinRun:
    """Run Pynguin on `module` of `project` (on sys.path as its root) for `budget_seconds` of search,
    writing its tests into `output`; `timeout` (default three budgets and ten minutes) ends a run
    that hangs."""
    output.mkdir(parents=True, exist_ok=True)
    budget = max(1, int(budget_seconds))
    command = [str(program), "--project-path", str(project), "--module-name", module, "--output-path", str(output),
               "--maximum-search-time", str(budget), "--assertion-generation", "MUTATION_ANALYSIS",
               "--maximum-mutation-time", str(budget), "--seed", str(seed), "--no-xfail", "--no-rich"]
    env = {**os.environ, "PYNGUIN_DANGER_AWARE": "1"}  # Pynguin runs the module's code: here, known packages
    started = time.perf_counter()
    log = output / "pynguin.log"
    try:
        with open(log, "w", encoding="utf-8") as handle:
            run = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=output, env=env,
                                 timeout=timeout or 3 * budget + 600)
        status = "ok" if run.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        status = "timeout"
    seconds = time.perf_counter() - started
    written = output / f"test_{module.replace('.', '_')}.py"
    if not written.is_file():
        written = next(iter(sorted(output.glob("test_*.py"))), written)
    test_file = written.read_text("utf-8") if written.is_file() else ""
    if status == "ok" and not test_file:
        status = "no tests"
    detail = ""
    if status != "ok":
        lines = [line for line in log.read_text("utf-8", errors="replace").splitlines() if line.strip()]
        detail = " / ".join(lines[-3:])[:500]
    return PynguinRun(module, budget, seconds, status, test_file, detail, command)


def judge_pynguin_function(project: Path, run: PynguinRun, located, mutant_count: int | None = None,
                           python=None) -> FunctionJudgement:
    """Judge Pynguin's whole test module for `run.module` for one function of it (`located`, a
    `function_listing.LocatedFunction`): its coverage of that function, its mutants, its tests."""
    from unitune.evaluation.function_judge import MUTANTS_PER_FUNCTION

    listed = located.listed
    test_rel = f"tests/test_pynguin_{run.module.replace('.', '_')}.py"
    return judge_function_tests(project, listed.path, located.source, listed.qualified_name, located.lines, test_rel,
                                run.test_file, None, mutant_count or MUTANTS_PER_FUNCTION, python)


def pynguin_row(function_id: str, run: PynguinRun, judged: FunctionJudgement | None, seconds_share: float) -> FunctionRow:
    """Pynguin's figures for one function: served when a passing test of its module runs the function;
    `seconds_share` is the module's wall time divided among the module's functions in the set."""
    if judged is None or judged.covering == 0:
        why = (f"Pynguin {run.status}: {run.detail}" if run.status != "ok"
               else (judged.detail if judged is not None and judged.detail else "no passing test runs the function"))
        return FunctionRow(function_id, False, mutants=judged.mutants if judged else 0, seconds=seconds_share,
                           why=why[:200])
    return FunctionRow(function_id, True, passed=judged.passed, line_coverage=judged.line_coverage,
                       branch_coverage=judged.branch_coverage, mutants=judged.mutants,
                       mutants_killed=judged.mutants_killed, tests=judged.covering, assertions=judged.assertions,
                       idle_checks=judged.idle_checks, seconds=seconds_share)
