"""Running tests in a sandbox: `run_tests` (one pytest run) and `run_rounds` (several in one copy),
waiting with a wall-clock limit, and killing every process a run left."""

from __future__ import annotations

import functools
import json
import os
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from unitune.assured.sandbox.isolation import (
    ENV_MARKER, Plan, absolute_program, apply_in_child, current_user, exposure, mount_namespace, passed_through,
    plan_for, prlimit_prefix, project_python, run_limits, task_count,
)
from unitune.assured.sandbox.programs import RUN_FOLDER_ENV, driver_command, network_guard_source, write_driver
from unitune.assured.sandbox.results import (
    ERROR, FAILED, PASSED, TIMEOUT, Round, RoundResult, SandboxError, SandboxResult, focal_coverage,
    function_body_start, read_json, read_junit, read_output, truncate,
)
from unitune.assured.sandbox.workspace import chown_tree, copy_project, relative_path, remove_tree

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]


def run_tests(
    project_root: str | os.PathLike,
    test_relpath: str,
    extra_files: Mapping[str, str] | None = None,
    *,
    focal_file: str | os.PathLike | None = None,
    focal_lines: tuple[int, int] | None = None,
    select: Sequence[str] | None = None,
    timeout: float = 30,
    memory_mb: int = 1024,
    max_processes: int = 64,
    network: bool = False,
    plugins: bool = True,
    python: str | os.PathLike | None = None,
    _rounds: tuple[list[Round], float | None] | None = None,
) -> SandboxResult:
    """Run the tests of `test_relpath` (relative to `project_root`) in a sandbox.

    `extra_files` (relative path -> text) are written into the copy over the project's files: the
    generated test file, an editor's unsaved buffers. `focal_file` (absolute, or relative to the
    root) and `focal_lines` (1-based, inclusive: the focal function's span, decorators included)
    choose what coverage is reported for. `select` runs only some tests: names (`test_x`) or
    `Class::test_x` inside the test file. `plugins=False` turns off the autoloading of installed
    pytest plugins (faster; for projects whose tests need none). `python` is the interpreter
    (default: the project's `.venv`/`venv`, else the one running unitune); it needs pytest, and
    coverage.py for coverage. `network=True` lifts the network layers (not the others).

    pytest runs the file, so unittest test cases run too. Raises `SandboxError` when nothing can
    be run (bad paths, pytest missing, a project over the copy limits)."""
    if resource is None or os.name != "posix":
        raise SandboxError("running tests in a sandbox needs a POSIX system (Linux or macOS)")
    root = Path(project_root).resolve()
    if not root.is_dir():
        raise SandboxError(f"{root}: not a folder")
    test_rel = relative_path(test_relpath, "test file")
    interpreter = absolute_program(str(python) if python else project_python(root))
    plan = plan_for(interpreter)
    if not plan.has_pytest:
        raise SandboxError(f"pytest is not installed for {interpreter}; install it to run tests (pip install pytest)")
    if plan.problem:
        raise SandboxError(plan.problem)
    focal_rel = None
    if focal_file is not None:
        focal_path = Path(focal_file)
        if focal_path.is_absolute():
            try:
                focal_rel = focal_path.resolve().relative_to(root).as_posix()
            except ValueError:
                raise SandboxError(f"{focal_path}: the focal file is not inside the project {root}") from None
        else:
            focal_rel = relative_path(str(focal_file), "focal file")

    work = Path(tempfile.mkdtemp(prefix="unitune-sandbox-"))
    try:
        return _run_in(work, RunSpec(root, test_rel, extra_files or {}, focal_rel, focal_lines, select, timeout,
                                     memory_mb, max_processes, network, plugins, interpreter, plan, _rounds))
    finally:
        remove_tree(work)


def run_rounds(
    project_root: str | os.PathLike,
    test_relpath: str,
    rounds: Sequence[Round],
    extra_files: Mapping[str, str] | None = None,
    *,
    focal_file: str | os.PathLike | None = None,
    focal_lines: tuple[int, int] | None = None,
    timeout: float = 60,
    per_test_timeout: float | None = 10,
    memory_mb: int = 1024,
    python: str | os.PathLike | None = None,
) -> SandboxResult:
    """Several pytest runs in one sandbox (one copy of the project, one set of limits): the rounds,
    in order, each in a process of its own. `extra_files` stay written for every round; a round's
    own files only for that round. `per_test_timeout` fails a test that runs longer (the other
    tests still run); `timeout` bounds the whole session. The result's `rounds` hold each round's
    outcomes; its `status` is `passed` when the session ran to its end (whatever the tests did)."""
    return run_tests(project_root, test_relpath, extra_files, focal_file=focal_file, focal_lines=focal_lines,
                     timeout=timeout, memory_mb=memory_mb, python=python,
                     _rounds=(list(rounds), per_test_timeout))


def _round_config(copy: Path, spec: Round) -> dict:
    return {
        "files": {str(copy / relative_path(relative, "round file")): text for relative, text in spec.files.items()},
        "targets": list(spec.select) if spec.select is not None else None,
        "select_passed_of": list(spec.select_passed_of) if spec.select_passed_of is not None else None,
        "select_failed_of": spec.select_failed_of,
        "reverse": spec.reverse, "coverage": spec.coverage, "observations": spec.observe,
    }


def _read_round(out: Path, index: int, copy: Path, focal_copy: Path | None, span, body_start) -> RoundResult:
    record = read_json(out / f"round-{index}.json") or {}
    result = RoundResult(ran=not record.get("skipped"))
    seconds = record.get("seconds")
    result.seconds = float(seconds) if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) else 0.0
    result.outcomes = {nodeid: (str(value[0]), str(value[1])) for nodeid, value in (record.get("outcomes") or {}).items()
                       if isinstance(value, list) and len(value) == 2}
    result.failed_lines = {nodeid: line for nodeid, line in (record.get("lines") or {}).items()
                           if isinstance(line, int) and nodeid in result.outcomes}
    observations = out / f"observations-{index}.jsonl"
    if observations.is_file() and not observations.is_symlink():
        for line in observations.read_text("utf-8", errors="replace").splitlines()[:10_000]:
            try:
                result.observations.append(json.loads(line))
            except ValueError:
                continue
    report = read_json(out / f"coverage-{index}.json")
    if report and focal_copy is not None:
        whole = SandboxResult(status=PASSED)
        focal_coverage(report, copy, focal_copy, span, body_start, whole)
        result.statements = set(whole.covered_lines) | set(whole.missing_lines)
        result.branches = {tuple(arc) for arc in whole.covered_branches + whole.missing_branches}
        for nodeid, data in (record.get("contexts") or {}).items():
            lines = {line for line in data.get("lines") or () if line in result.statements}
            arcs = {tuple(arc) for arc in data.get("arcs") or () if tuple(arc) in result.branches}
            known = result.covered.setdefault(nodeid, (set(), set()))
            known[0].update(lines)
            known[1].update(arcs)
    return result


@dataclass
class RunSpec:
    """One run, checked and resolved by `run_tests`: what to run, against what, within which limits."""

    root: Path
    test_rel: str
    extra_files: Mapping[str, str]
    focal_rel: str | None
    focal_lines: tuple[int, int] | None
    select: Sequence[str] | None
    timeout: float
    memory_mb: int
    max_processes: int
    network: bool
    plugins: bool
    interpreter: str
    plan: Plan
    rounds: tuple[list[Round], float | None] | None = None  # (rounds, per-test timeout) of `run_rounds`


def _run_in(work: Path, spec: RunSpec) -> SandboxResult:
    root, test_rel, extra_files, focal_rel, focal_lines, select = (
        spec.root, spec.test_rel, spec.extra_files, spec.focal_rel, spec.focal_lines, spec.select)
    timeout, network, interpreter, plan, rounds = spec.timeout, spec.network, spec.interpreter, spec.plan, spec.rounds
    copy, home, tmp, out, site = (work / name for name in ("project", "home", "tmp", "out", "site"))
    copy_project(root, copy)
    for relative, text in extra_files.items():
        target = copy / relative_path(relative, "extra file")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir() and not target.is_symlink():
            remove_tree(target)
        elif target.is_symlink():
            target.unlink()
        target.write_text(text, encoding="utf-8")
    if not (copy / test_rel).is_file():
        raise SandboxError(f"{test_rel}: no such test file in {root} (nor among the files given)")
    for folder in (home, tmp, out, site):
        folder.mkdir()

    # The focal function's body, read from the copy before anything runs there.
    span = body_start = None
    focal_copy = copy / focal_rel if focal_rel else None
    if focal_copy is not None and focal_copy.is_file() and focal_lines:
        span = (int(focal_lines[0]), int(focal_lines[1]))
        body_start = function_body_start(focal_copy.read_text(encoding="utf-8", errors="replace"), *span)

    token = secrets.token_hex(8)
    config = {
        "cwd": str(copy),
        "out": str(out),
        "pytest_args": _pytest_args(copy, out, test_rel, select),
        "coverage_source": str(focal_copy.parent) if focal_copy is not None else None,
        "coverage_include": str(focal_copy) if focal_copy is not None else None,
        # remounted read-only around the temporary folder (a user namespace's root only)
        "read_only_except": [str(work)] if plan.read_only_fs else [],
        "outer_mount_namespace": mount_namespace(),  # never mount anything in this one
        "python": interpreter,
        "become": [plan.user.uid, plan.user.gid] if plan.user is not None else None,
        # what `nobody` is shown of folders it may not enter (the interpreter's, the temporary one's)
        "expose": exposure([*plan.interpreter_paths, str(work)], plan.user) if plan.exposes else [],
        # bound back into the run's own /tmp: the temporary folder, and the interpreter when it lives there
        "keep_in_tmp": [str(work), *plan.interpreter_paths],
    }
    if rounds is not None:
        config.update(rounds=[_round_config(copy, spec) for spec in rounds[0]], per_test_timeout=rounds[1],
                      test_file=test_rel, pytest_base_args=_pytest_args(copy, out, test_rel, None)[:-1])
        # node ids relative to the copy's root whatever the project's layout, so rounds can select them
        config["pytest_base_args"] = [arg for arg in config["pytest_base_args"] if not arg.startswith("--junitxml")
                                      ] + [f"--rootdir={copy}"]
    (site / "sitecustomize.py").write_text(network_guard_source() if not network else "", encoding="utf-8")
    driver = write_driver(site)
    (site / "config.json").write_text(json.dumps(config), encoding="utf-8")
    os.chmod(work, 0o711)
    for path in (site, *site.iterdir()):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    uid = os.geteuid()
    if plan.user is not None:
        uid = plan.user.uid
        for folder in (copy, home, tmp, out):
            chown_tree(folder, plan.user.uid, plan.user.gid)

    python_path = [str(site), str(copy)] + ([str(copy / "src")] if (copy / "src").is_dir() else [])
    env = {
        "PATH": os.pathsep.join(dict.fromkeys([str(Path(interpreter).parent), "/usr/local/bin", "/usr/bin", "/bin"])),
        "HOME": str(home),
        "TMPDIR": str(tmp), "TEMP": str(tmp), "TMP": str(tmp),
        "LANG": "C.UTF-8",
        "USER": plan.user.name if plan.user else current_user(),
        "LOGNAME": plan.user.name if plan.user else current_user(),
        "PYTHONPATH": os.pathsep.join(python_path),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUNBUFFERED": "1",
        "MALLOC_ARENA_MAX": "2",  # threads' malloc arenas would eat the address-space limit
        "NO_COLOR": "1",
        ENV_MARKER: token,
        RUN_FOLDER_ENV: str(work),  # the network guard's one place for filesystem sockets
        **passed_through(),
    }
    if not spec.plugins:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"

    command = [*(plan.namespace_prefix if not network else plan.namespace_prefix_with_network),
               *driver_command(interpreter, driver, site / "config.json")]
    limits = run_limits(timeout, spec.memory_mb, spec.max_processes + task_count(uid))
    unshare_net = plan.preexec_unshare_net and not network
    preexec = None  # no Python between fork and exec where possible: unitune's server has threads
    if plan.prlimit and not unshare_net:
        command = prlimit_prefix(plan.prlimit, limits) + command
    else:
        preexec = functools.partial(apply_in_child, limits, unshare_net)
    log_path = work / "output.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=copy, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, preexec_fn=preexec, start_new_session=True,  # noqa: PLW1509
                                   close_fds=True)
        timed_out = not wait_exited(process.pid, timeout)
        kill_group(process.pid)  # the leader is not reaped yet: its group id is still ours
        returncode = process.wait()
    duration = time.monotonic() - started
    kill_stragglers(token, uid)

    output = read_output(log_path)
    result = SandboxResult(status=ERROR, output=output, duration=duration, returncode=returncode)
    result.isolation = read_json(out / "isolation.json") or plan.describe(network)
    read_junit(out / "junit.xml", result)
    if timed_out:
        result.status = TIMEOUT
        result.output = truncate(output + f"\n[unitune sandbox] timed out after {timeout:g}s; every process of the run was killed\n")
        return result
    if rounds is not None:
        result.rounds = [_read_round(out, index, copy, focal_copy, span, body_start) for index in range(len(rounds[0]))]
        result.status = PASSED if returncode == 0 else ERROR
        return result
    result.status = _status(result, returncode)
    if focal_copy is not None:
        report = read_json(out / "coverage.json")
        if report:
            focal_coverage(report, copy, focal_copy, span, body_start, result)
    return result


def _pytest_args(copy: Path, out: Path, test_rel: str, select: Sequence[str] | None) -> list[str]:
    targets = [f"{test_rel}::{name}" for name in select] if select else [test_rel]
    return ["-q", "--tb=short", "-rfE", "--no-header", "-p", "no:cacheprovider", f"--junitxml={out / 'junit.xml'}",
            "-o", "junit_family=xunit2", f"--confcutdir={copy}", *targets]


def _status(result: SandboxResult, returncode: int) -> str:
    if result.errors or returncode not in (0, 1) or not result.tests:
        return ERROR
    if result.failed:
        return FAILED
    return PASSED if result.passed else ERROR  # everything skipped: nothing was shown to work


def wait_exited(pid: int, timeout: float) -> bool:
    """Wait until `pid` exits, without reaping it; False when `timeout` passed first."""
    deadline = time.monotonic() + max(0.0, timeout)
    delay = 0.005
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, 0.05)


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_stragglers(token: str, uid: int) -> None:
    """Kill processes of the run that left its process group (`setsid`), found by their marker."""
    proc = Path("/proc")
    if not proc.is_dir():
        return
    needle = f"{ENV_MARKER}={token}".encode()
    for _ in range(5):
        found = False
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat().st_uid != uid:
                    continue
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in environ.split(b"\0"):
                found = True
                try:
                    os.kill(int(entry.name), signal.SIGKILL)
                except OSError:
                    pass
        if not found:
            return
        time.sleep(0.05)
