"""Running generated tests where they cannot hurt: a temporary copy, limits, no network, clean env.

`run_tests` runs one test file of a project against its focal code and reports pass / fail / error /
timeout with the line and branch coverage of the focal function. It backs `validate = "run"` in
generation and can serve evaluation. Nothing here imports torch.

How a run is contained, layer by layer (`sandbox_isolation()` says which are active here; each
result's `isolation` says what the tests themselves saw):

1. A temporary copy. The project's files (no `.git`, virtual environments, `node_modules`, caches,
   `.unitune`, files over 10 MB) are copied into a fresh folder, `extra_files` written over them;
   the tests run with that copy as their working folder, `HOME` and `TMPDIR` inside the temporary
   folder, and the folder is deleted afterwards. A driver of unitune's starts the run (it sets up
   what needs privileges first, with the interpreter's `-I -S`: nothing of the project is imported
   while it has them).
2. A clean environment: `PATH`, `HOME`, `TMPDIR`, `LANG`, `PYTHONPATH` (the copy, its `src/`),
   `PYTHONDONTWRITEBYTECODE`, `PYTHONNOUSERSITE` and little else (of the caller's variables only
   `LD_LIBRARY_PATH` and `TZ`): no proxies, tokens or secrets of the caller; the interpreter runs
   with `-s` (no user site-packages).
3. Limits (`setrlimit`, set by util-linux `prlimit` before anything of the run starts, else in the
   child before exec; inherited by every process the tests start): address space (`memory_mb`),
   processes (`max_processes` more than the sandbox user already has), CPU seconds (a little over
   `timeout`), file size (128 MB), open files, no core dumps.
4. A time limit on the wall clock: the run gets its own session and process group, and the whole
   group is killed (SIGKILL) at `timeout`; whatever is left afterwards (a process that left the
   group with `setsid`) is found by a marker in its environment and killed too.
5. No network, twice: a `sitecustomize` (first on `PYTHONPATH`, so every Python process of the run
   loads it) makes `connect`/`connect_ex`/`sendto`/`sendmsg` on internet sockets and host-name
   lookups raise `PermissionError("network disabled by unitune's sandbox")` before anything is sent;
   and, where the kernel allows it, the run gets new network and PID namespaces (util-linux
   `unshare --net --pid --fork --kill-child`): no interface but a loopback that is down, so even
   code that goes around Python's `socket` (a C library, `curl`) reaches nothing; the PID namespace
   ends every process of the run when it ends. Root needs CAP_SYS_ADMIN (which some containers
   withhold); other users need unprivileged user namespaces (`unshare --user`), which most
   distributions allow. Without util-linux `unshare`, root gets the network namespace from
   `unshare(2)` in the child.
6. The user's files out of reach:
   - unitune running as root: the tests run as `nobody` (the driver gives up root before they
     start: no supplementary groups, no capability left even in the bounding set, `no_new_privs`),
     so they cannot write the user's files nor read its private ones, and RLIMIT_NPROC, which the
     kernel never enforces for root, holds. Only the copy belongs to `nobody`. The run also gets a
     mount namespace (`unshare --mount`): when the interpreter lies in a folder `nobody` may not
     enter (a pyenv or a virtual environment under `/root`, mode 700), that folder is covered there
     with an empty tmpfs and only what the interpreter needs (its prefixes, the folders on its
     `sys.path`, the links to its program) is bound back, so `nobody` runs the very interpreter
     unitune would and sees nothing else of the folder. Where no mount namespace can be made (root
     without CAP_SYS_ADMIN), such an interpreter is refused with a `SandboxError` that says what to
     do; it is never run with a capability to read every file;
   - any other user: in the user namespace (where the run's first process is root) a mount
     namespace, in which every file system but the temporary folder (and /proc, /sys, /dev) is
     remounted read-only; then every capability is dropped and the tests run without any.

Limits of the containment: without user namespaces (a kernel or a policy that forbids them to
users other than root), the tests of a non-root user run as that user, so files the user can write
(outside the copy; `HOME` and `TMPDIR` point into it) are writable by an absolute path; the limits,
the process-group kill and the `sitecustomize` guard still hold. World-writable places (`/tmp`,
`/dev/shm`) stay writable to `nobody`. Nothing here is a defence against code written to escape (a
kernel exploit); it keeps the mistakes of generated tests (a loop, a fork, a write to a hard-coded
path, a download) away from the user's machine.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import json
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

from unitune.errors import UnituneError

try:  # POSIX only; on other systems `run_tests` refuses to run
    import pwd
    import resource
except ImportError:  # pragma: no cover - Windows
    pwd = resource = None  # type: ignore[assignment]

PASSED, FAILED, ERROR, TIMEOUT = "passed", "failed", "error", "timeout"
NETWORK_MESSAGE = "network disabled by unitune's sandbox"

#: Folders never copied into the sandbox (nor any folder holding a `pyvenv.cfg`: a virtual environment).
SKIPPED_DIRS = frozenset({
    ".git", ".hg", ".svn", ".bzr", ".tox", ".nox", ".venv", "venv", "node_modules",
    "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis", ".unitune", ".idea",
    ".eggs", "site-packages", "htmlcov", ".ipynb_checkpoints", ".gradle", ".m2",
})
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".egg-info")
MAX_FILE_BYTES = 10 * 1024 * 1024  # larger files are not copied
MAX_COPY_FILES = 50_000
MAX_COPY_BYTES = 512 * 1024 * 1024
MAX_WRITTEN_FILE_BYTES = 128 * 1024 * 1024  # RLIMIT_FSIZE
MAX_OPEN_FILES = 1024
OUTPUT_HEAD, OUTPUT_TAIL = 2_000, 10_000  # characters of the run's output kept
_ENV_MARKER = "UNITUNE_SANDBOX"
#: The only variables of the caller's environment a run inherits: what an interpreter may need to start.
PASSED_THROUGH_ENV = ("LD_LIBRARY_PATH", "TZ")


class SandboxError(UnituneError):
    """The tests cannot be run at all (no pytest, a project too large to copy, a bad path)."""


@dataclass
class TestOutcome:
    """One test case of a run, as the JUnit report gives it."""

    __test__ = False  # a data class, not a pytest test class

    name: str
    classname: str
    outcome: str  # passed, failed, error or skipped
    message: str = ""


@dataclass
class Round:
    """One pytest run of a `run_rounds` session. `files` (relative path -> text) are written over
    the copy for this round only; the tests run are `select` (node ids, `tests/test_x.py::test_a`),
    else those that passed in every round listed in `select_passed_of`, else the whole test file."""

    files: Mapping[str, str] = field(default_factory=dict)
    select: Sequence[str] | None = None
    select_passed_of: Sequence[int] | None = None
    reverse: bool = False  # run the tests in reverse order (a test that needs another's leftovers fails)
    coverage: bool = False  # per-test coverage of the focal function
    observe: bool = False  # collect what observing tests (`unitune.oracles`) record


@dataclass
class RoundResult:
    """What one round gave: each test's (outcome, message) by node id; with coverage, the focal
    function's statements and branch arcs and, per test, the ones it ran."""

    outcomes: dict[str, tuple[str, str]] = field(default_factory=dict)
    ran: bool = True  # False: nothing was selected
    statements: set[int] = field(default_factory=set)
    branches: set[tuple[int, int]] = field(default_factory=set)
    covered: dict[str, tuple[set[int], set[tuple[int, int]]]] = field(default_factory=dict)
    observations: list[dict] = field(default_factory=list)

    def passed(self) -> set[str]:
        return {nodeid for nodeid, (outcome, _) in self.outcomes.items() if outcome == PASSED}


@dataclass
class SandboxResult:
    """What running the tests gave. Coverage is of the focal function only (fractions 0..1), None
    when it was not measured (no focal file, coverage.py missing, a run that did not finish) or,
    for branches, when the function has no branch."""

    status: str  # passed, failed, error or timeout
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    output: str = ""  # pytest's output (head and tail when long)
    duration: float = 0.0  # seconds, the run itself (not the copy)
    line_coverage: float | None = None
    branch_coverage: float | None = None
    covered_lines: list[int] = field(default_factory=list)
    missing_lines: list[int] = field(default_factory=list)
    covered_branches: list[tuple[int, int]] = field(default_factory=list)
    missing_branches: list[tuple[int, int]] = field(default_factory=list)
    tests: list[TestOutcome] = field(default_factory=list)
    returncode: int | None = None
    isolation: dict = field(default_factory=dict)  # what the tests saw: user, namespaces, guard, limits
    rounds: list[RoundResult] = field(default_factory=list)  # `run_rounds` only

    @property
    def ok(self) -> bool:
        return self.status == PASSED

    def summary(self, limit: int = 300) -> str:
        """One line: the status and the first problems (for messages and for a repair prompt)."""
        if self.status == TIMEOUT:
            text = f"timed out after {self.duration:.1f}s"
        elif self.status == PASSED:
            text = f"{self.passed} passed"
        else:
            problems = [f"{test.name}: {test.message}" if test.message else f"{test.name}: {test.outcome}"
                        for test in self.tests if test.outcome in (FAILED, ERROR)]
            text = f"{self.status}: " + ("; ".join(problems) if problems else _last_meaningful_line(self.output))
        return text if len(text) <= limit else text[: limit - 3] + "..."

    def to_json(self) -> dict:
        return asdict(self)


# -- running -------------------------------------------------------------------------------------

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
    test_rel = _relative(test_relpath, "test file")
    interpreter = _absolute_program(str(python) if python else project_python(root))
    plan = _plan(interpreter)
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
            focal_rel = _relative(str(focal_file), "focal file")

    work = Path(tempfile.mkdtemp(prefix="unitune-sandbox-"))
    try:
        return _run_in(work, root, test_rel, extra_files or {}, focal_rel, focal_lines, select, timeout,
                       memory_mb, max_processes, network, plugins, interpreter, plan, _rounds)
    finally:
        _remove_tree(work)


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
        "files": {str(copy / _relative(relative, "round file")): text for relative, text in spec.files.items()},
        "targets": list(spec.select) if spec.select is not None else None,
        "select_passed_of": list(spec.select_passed_of) if spec.select_passed_of is not None else None,
        "reverse": spec.reverse, "coverage": spec.coverage, "observations": spec.observe,
    }


def _read_round(out: Path, index: int, copy: Path, focal_copy: Path | None, span, body_start) -> RoundResult:
    record = _read_json(out / f"round-{index}.json") or {}
    result = RoundResult(ran=not record.get("skipped"))
    result.outcomes = {nodeid: (str(value[0]), str(value[1])) for nodeid, value in (record.get("outcomes") or {}).items()
                       if isinstance(value, list) and len(value) == 2}
    observations = out / f"observations-{index}.jsonl"
    if observations.is_file() and not observations.is_symlink():
        for line in observations.read_text("utf-8", errors="replace").splitlines()[:10_000]:
            try:
                result.observations.append(json.loads(line))
            except ValueError:
                continue
    report = _read_json(out / f"coverage-{index}.json")
    if report and focal_copy is not None:
        whole = SandboxResult(status=PASSED)
        _focal_coverage(report, copy, focal_copy, span, body_start, whole)
        result.statements = set(whole.covered_lines) | set(whole.missing_lines)
        result.branches = {tuple(arc) for arc in whole.covered_branches + whole.missing_branches}
        for nodeid, data in (record.get("contexts") or {}).items():
            lines = {line for line in data.get("lines") or () if line in result.statements}
            arcs = {tuple(arc) for arc in data.get("arcs") or () if tuple(arc) in result.branches}
            known = result.covered.setdefault(nodeid, (set(), set()))
            known[0].update(lines)
            known[1].update(arcs)
    return result


def _run_in(work, root, test_rel, extra_files, focal_rel, focal_lines, select, timeout, memory_mb,
            max_processes, network, plugins, interpreter, plan, rounds=None) -> SandboxResult:
    copy, home, tmp, out, site = (work / name for name in ("project", "home", "tmp", "out", "site"))
    copy_project(root, copy)
    for relative, text in extra_files.items():
        target = copy / _relative(relative, "extra file")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir() and not target.is_symlink():
            _remove_tree(target)
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
        body_start = _body_start(focal_copy.read_text(encoding="utf-8", errors="replace"), *span)

    token = secrets.token_hex(8)
    config = {
        "cwd": str(copy),
        "out": str(out),
        "pytest_args": _pytest_args(copy, out, test_rel, select),
        "coverage_source": str(focal_copy.parent) if focal_copy is not None else None,
        "coverage_include": str(focal_copy) if focal_copy is not None else None,
        # remounted read-only around the temporary folder (a user namespace's root only)
        "read_only_except": [str(work)] if plan.read_only_fs else [],
        "outer_mount_namespace": _mount_namespace(),  # never mount anything in this one
        "python": interpreter,
        "become": [plan.user.uid, plan.user.gid] if plan.user is not None else None,
        # what `nobody` is shown of folders it may not enter (the interpreter's, the temporary one's)
        "expose": _exposure([*plan.interpreter_paths, str(work)], plan.user) if plan.exposes else [],
        # bound back into the run's own /tmp: the temporary folder, and the interpreter when it lives there
        "keep_in_tmp": [str(work), *plan.interpreter_paths],
    }
    if rounds is not None:
        config.update(rounds=[_round_config(copy, spec) for spec in rounds[0]], per_test_timeout=rounds[1],
                      test_file=test_rel, pytest_base_args=_pytest_args(copy, out, test_rel, None)[:-1])
        # node ids relative to the copy's root whatever the project's layout, so rounds can select them
        config["pytest_base_args"] = [arg for arg in config["pytest_base_args"] if not arg.startswith("--junitxml")
                                      ] + [f"--rootdir={copy}"]
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE if not network else "", encoding="utf-8")
    (site / "unitune_sandbox_driver.py").write_text(_DRIVER, encoding="utf-8")
    (site / "config.json").write_text(json.dumps(config), encoding="utf-8")
    os.chmod(work, 0o711)
    for path in (site, *site.iterdir()):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    uid = os.geteuid()
    if plan.user is not None:
        uid = plan.user.uid
        for folder in (copy, home, tmp, out):
            _chown_tree(folder, plan.user.uid, plan.user.gid)

    python_path = [str(site), str(copy)] + ([str(copy / "src")] if (copy / "src").is_dir() else [])
    env = {
        "PATH": os.pathsep.join(dict.fromkeys([str(Path(interpreter).parent), "/usr/local/bin", "/usr/bin", "/bin"])),
        "HOME": str(home),
        "TMPDIR": str(tmp), "TEMP": str(tmp), "TMP": str(tmp),
        "LANG": "C.UTF-8",
        "USER": plan.user.name if plan.user else _current_user(),
        "LOGNAME": plan.user.name if plan.user else _current_user(),
        "PYTHONPATH": os.pathsep.join(python_path),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONUNBUFFERED": "1",
        "MALLOC_ARENA_MAX": "2",  # threads' malloc arenas would eat the address-space limit
        "NO_COLOR": "1",
        _ENV_MARKER: token,
        **_passed_through(),
    }
    if not plugins:
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"

    command = [*(plan.namespace_prefix if not network else plan.namespace_prefix_with_network),
               *_driver_command(interpreter, site / "unitune_sandbox_driver.py", site / "config.json")]
    limits = _limits(timeout, memory_mb, max_processes + _task_count(uid))
    unshare_net = plan.preexec_unshare_net and not network
    preexec = None  # no Python between fork and exec where possible: unitune's server has threads
    if plan.prlimit and not unshare_net:
        command = _prlimit_prefix(plan.prlimit, limits) + command
    else:
        preexec = functools.partial(_preexec, limits, unshare_net)
    log_path = work / "output.log"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=copy, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, preexec_fn=preexec, start_new_session=True,  # noqa: PLW1509
                                   close_fds=True)
        timed_out = not _wait_exited(process.pid, timeout)
        _kill_group(process.pid)  # the leader is not reaped yet: its group id is still ours
        returncode = process.wait()
    duration = time.monotonic() - started
    _kill_stragglers(token, uid)

    output = _read_output(log_path)
    result = SandboxResult(status=ERROR, output=output, duration=duration, returncode=returncode)
    result.isolation = _read_json(out / "isolation.json") or plan.describe(network)
    _read_junit(out / "junit.xml", result)
    if timed_out:
        result.status = TIMEOUT
        result.output = _truncate(output + f"\n[unitune sandbox] timed out after {timeout:g}s; every process of the run was killed\n")
        return result
    if rounds is not None:
        result.rounds = [_read_round(out, index, copy, focal_copy, span, body_start) for index in range(len(rounds[0]))]
        result.status = PASSED if returncode == 0 else ERROR
        return result
    result.status = _status(result, returncode)
    if focal_copy is not None:
        report = _read_json(out / "coverage.json")
        if report:
            _focal_coverage(report, copy, focal_copy, span, body_start, result)
    return result


def _driver_command(interpreter: str, driver: Path, config: Path) -> list[str]:
    """The driver's first process: isolated (`-I`: no `PYTHONPATH`, no user site, not the script's
    folder) and without `site` (`-S`), as it may hold privileges: it imports the standard library only."""
    return [interpreter, "-I", "-S", "-B", str(driver), str(config)]


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


def _wait_exited(pid: int, timeout: float) -> bool:
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


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_stragglers(token: str, uid: int) -> None:
    """Kill processes of the run that left its process group (`setsid`), found by their marker."""
    proc = Path("/proc")
    if not proc.is_dir():
        return
    needle = f"{_ENV_MARKER}={token}".encode()
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


# -- limits and privileges -----------------------------------------------------------------------

_PRLIMIT_NAMES = {"RLIMIT_AS": "as", "RLIMIT_CPU": "cpu", "RLIMIT_FSIZE": "fsize", "RLIMIT_CORE": "core",
                  "RLIMIT_NOFILE": "nofile", "RLIMIT_NPROC": "nproc"}


def _limits(timeout: float, memory_mb: int, processes: int) -> list[tuple[str, int, int]]:
    """(resource name, soft, hard) for the run, never above the caller's own hard limits."""
    wanted = [
        ("RLIMIT_AS", int(memory_mb) * 1024 * 1024, None),
        ("RLIMIT_CPU", int(timeout) + 5, int(timeout) + 10),  # SIGXCPU, then SIGKILL
        ("RLIMIT_FSIZE", MAX_WRITTEN_FILE_BYTES, None),
        ("RLIMIT_CORE", 0, None),
        ("RLIMIT_NOFILE", MAX_OPEN_FILES, None),
        ("RLIMIT_NPROC", int(processes), None),
    ]
    limits = []
    for name, soft, hard in wanted:
        kind = getattr(resource, name, None)
        if kind is None:
            continue
        hard = soft if hard is None else hard
        _, current = resource.getrlimit(kind)
        if current != resource.RLIM_INFINITY:
            soft, hard = min(soft, current), min(hard, current)
        limits.append((name, soft, hard))
    return limits


def _prlimit_prefix(prlimit: str, limits) -> list[str]:
    return [prlimit, *(f"--{_PRLIMIT_NAMES[name]}={soft}:{hard}" for name, soft, hard in limits), "--"]


def _preexec(limits, unshare_net: bool) -> None:  # pragma: no cover - runs in the child
    """In the child before exec (only where util-linux `prlimit` or `unshare` is missing): limits,
    then a network namespace."""
    for name, soft, hard in limits:
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        except (ValueError, OSError):
            pass
    if unshare_net:
        _unshare_net()


def _unshare_net() -> None:  # pragma: no cover - fallback when util-linux `unshare` is missing
    clone_newnet = 0x40000000
    try:
        if hasattr(os, "unshare"):
            os.unshare(clone_newnet)
        else:
            import ctypes

            ctypes.CDLL(None, use_errno=True).unshare(clone_newnet)
    except (OSError, AttributeError):
        pass  # the sitecustomize guard still holds; the run reports what it saw


def _task_count(uid: int) -> int:
    """Processes and threads `uid` has now: RLIMIT_NPROC counts them all, so the run's budget is
    added to them."""
    count = 0
    proc = Path("/proc")
    if not proc.is_dir():
        return 256 if uid == os.geteuid() else 0
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += max(1, len(os.listdir(entry / "task")))
            except OSError:
                continue
    return count


@dataclass(frozen=True)
class _User:
    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class _Plan:
    """The isolation this machine allows for one interpreter (probed once per process)."""

    root: bool
    has_pytest: bool
    namespace_prefix: tuple[str, ...] = ()  # unshare ... --
    namespace_prefix_with_network: tuple[str, ...] = ()  # the same without --net
    drop_prefix: tuple[str, ...] = ()  # setpriv ... --: the Java runner's programs as `user` (the driver drops itself)
    user: _User | None = None  # whom the tests run as, when not the caller
    preexec_unshare_net: bool = False  # fallback: unshare(CLONE_NEWNET) in the child (no `unshare`)
    read_only_fs: bool = False  # a mount namespace where all but the temporary folder is read-only
    exposes: bool = False  # root: a mount namespace where `user` is shown the folders it may not enter
    interpreter_paths: tuple[str, ...] = ()  # what the interpreter needs: prefixes, `sys.path`, its program's folders
    problem: str | None = None  # why the tests cannot run here (`run_tests` raises it)
    prlimit: str | None = None  # util-linux `prlimit`, which sets the limits (else a preexec function)

    def describe(self, network: bool = False) -> dict:
        namespaces = []
        if self.namespace_prefix:
            namespaces = ["pid"] if network else ["net", "pid"]
            if "--user" in self.namespace_prefix:
                namespaces.insert(0, "user")
            if "--mount" in self.namespace_prefix:
                namespaces.append("mount")
        elif self.preexec_unshare_net and not network:
            namespaces = ["net"]
        return {
            "root": self.root,
            "user": self.user.name if self.user else _current_user(),
            "namespaces": namespaces,
            "network_guard": not network,
            "read_only_outside_copy": self.read_only_fs,
            "limits": ["address space", "processes", "cpu time", "file size", "open files", "no core dumps"],
            "problem": self.problem,
        }


def sandbox_isolation(python: str | os.PathLike | None = None) -> dict:
    """The layers `run_tests` sets up on this machine (probed once per interpreter): `root` (whether
    unitune runs as root), `user` (whom the tests run as), `namespaces` (`net`, `pid`; `mount` for
    root, where `user` is shown an interpreter in a folder it may not enter; for a non-root caller
    also `user`, and `mount` for the read-only file systems), `network_guard` (the
    `sitecustomize`), `read_only_outside_copy` (the mount namespace's read-only file systems),
    `limits` and `problem` (why the tests cannot run here at all, else None)."""
    return _plan(_absolute_program(str(python) if python else sys.executable)).describe()


@functools.lru_cache(maxsize=8)
def _plan(python: str) -> _Plan:
    plan = _isolation_plan(python)
    prlimit = shutil.which("prlimit")
    if prlimit and _probe([prlimit, f"--nofile={MAX_OPEN_FILES}:{MAX_OPEN_FILES}", "--", python, "-s", "-c", ""]):
        plan = dataclasses.replace(plan, prlimit=prlimit)
    return plan


def _isolation_plan(python: str) -> _Plan:
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    has_pytest = _probe([python, "-s", "-c", "import pytest"])
    prefix = prefix_with_network = ()
    mount = False
    unshare = shutil.which("unshare") if sys.platform.startswith("linux") else None
    if unshare:
        tail = ["--pid", "--fork", "--kill-child"]
        # As root: a mount namespace too, where the driver may show `nobody` the interpreter. As
        # another user than root: a user namespace; best as its root, which may remount the file
        # system read-only (then gives up every capability before the tests run).
        variants = [(["--mount"], True), ([], False)] if root else [
            (["--user", "--map-root-user", "--mount"], True), (["--user", "--map-current-user"], False), (["--user"], False),
        ]
        for variant, can_mount in variants:
            candidate = (unshare, *variant, "--net", *tail, "--")
            if _probe([*candidate, python, "-s", "-c", ""]):
                prefix, prefix_with_network = candidate, (unshare, *variant, *tail, "--")
                mount = can_mount
                break
    preexec_unshare_net = bool(root and not prefix and sys.platform.startswith("linux"))
    if not root:
        return _Plan(False, has_pytest, prefix, prefix_with_network, read_only_fs=mount)
    user = _nobody()
    if user is None:  # no one to become: the tests run as root (documented limit)
        return _Plan(True, has_pytest, prefix, prefix_with_network, preexec_unshare_net=preexec_unshare_net)
    drop = ()
    setpriv = shutil.which("setpriv")
    if setpriv:
        candidate = (setpriv, f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups", "--no-new-privs",
                     "--inh-caps=-all", "--bounding-set=-all", "--")
        if _probe([*candidate, shutil.which("true") or "/bin/true"]):
            drop = candidate
    interpreter = _interpreter(python)
    plan = _Plan(True, has_pytest, prefix, prefix_with_network, drop, user, preexec_unshare_net=preexec_unshare_net,
                 exposes=mount, interpreter_paths=_interpreter_paths(python, interpreter) if interpreter else ())
    if not has_pytest or interpreter is None:
        return plan  # run_tests says pytest is missing
    code, message = _check(plan, python, interpreter)
    if code == _CANNOT_BECOME:  # root that may not change its user (a container's policy): documented limit
        return dataclasses.replace(plan, drop_prefix=(), user=None, exposes=False, interpreter_paths=())
    if code != 0:
        return dataclasses.replace(plan, problem=_unreachable(plan, python, message))
    return plan


#: Two of the driver's exit codes: the interpreter did not start; root may not become the tests' user.
_CANNOT_START, _CANNOT_BECOME = 3, 6

_INTERPRETER_INFO = """\
import json, sys, sysconfig
print(json.dumps({"version": sys.version, "prefix": sys.prefix, "base_prefix": sys.base_prefix,
                  "paths": [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                            sysconfig.get_config_var("LIBDIR") or "", *sys.path]}))
"""


def _interpreter(python: str) -> dict | None:
    """What `python` is as the caller starts it (as a run starts it: `-s`, a clean environment):
    version, prefixes and the paths it reads, or None when it does not start."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/", **_passed_through()}
    try:
        completed = subprocess.run([python, "-s", "-c", _INTERPRETER_INFO], cwd="/", env=env, stdin=subprocess.DEVNULL,
                                   capture_output=True, timeout=60, check=False)
        return json.loads(completed.stdout) if completed.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def _interpreter_paths(python: str, interpreter: dict) -> tuple[str, ...]:
    """The real paths the interpreter needs: its prefixes, its library folder, the folders on its
    `sys.path`, and the folder of each link on the way to its program (a venv's `bin/python` ->
    `/root/.pyenv/versions/3.11.7/bin/python3.11`)."""
    paths = [path for path in interpreter.get("paths", []) if path and os.path.isabs(path)]
    hop = python
    for _ in range(40):  # links to links (a loop ends here)
        paths.append(os.path.dirname(hop))
        if not os.path.islink(hop):
            break
        hop = os.path.normpath(os.path.join(os.path.dirname(hop), os.readlink(hop)))
    return tuple(sorted({os.path.realpath(path) for path in paths if os.path.exists(path)}))


def _enterable(folder: str, user: _User) -> bool:
    """Whether `user` (no supplementary group) may pass through `folder` (its x bit for them)."""
    try:
        info = os.stat(folder)
    except OSError:
        return True  # nothing there to show
    if info.st_uid == user.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == user.gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _exposure(paths: Sequence[str], user: _User) -> list[list[str]]:
    """The mounts that show `user` the real `paths` through folders it may not enter, in the order
    the driver makes them: `["tmpfs", folder]` covers the first such folder on the way with an empty
    tmpfs (mode 755), `["bind", path]` binds a path under it back (the folders between become mount
    points of the tmpfs); a private folder inside a path bound back is covered in turn. Empty when
    `user` reaches every path already."""
    binds: list[str] = []
    covers: set[str] = set()
    for path in sorted(set(paths), key=lambda path: (path.count("/"), path)):
        parts = PurePosixPath(path).parts
        hidden = False  # inside a tmpfs of ours: only mount points
        for depth in range(2, len(parts)):
            folder = str(PurePosixPath(*parts[:depth]))
            if folder in binds:
                hidden = False
            elif not hidden and not _enterable(folder, user):
                covers.add(folder)
                hidden = True
        if hidden:
            binds.append(path)
    operations = [["tmpfs", folder] for folder in covers] + [["bind", path] for path in binds]
    return sorted(operations, key=lambda operation: (operation[1].count("/"), operation[1]))


def _check(plan: _Plan, python: str, interpreter: dict) -> tuple[int, str]:
    """Start the driver as a run would (namespaces, the folders shown, the user it becomes), only to
    see that this user starts the same interpreter as the caller (not a fallback to another Python
    whose files it can read) and imports pytest: (the driver's exit code, its last message)."""
    work = Path(tempfile.mkdtemp(prefix="unitune-check-"))
    try:
        out = work / "out"
        out.mkdir()
        config = {
            "cwd": str(out), "out": str(out), "python": python,
            "check": {"version": interpreter["version"], "prefix": os.path.realpath(interpreter["prefix"]),
                      "base_prefix": os.path.realpath(interpreter["base_prefix"])},
            "become": [plan.user.uid, plan.user.gid],
            "expose": _exposure([*plan.interpreter_paths, str(work)], plan.user) if plan.exposes else [],
            "keep_in_tmp": [str(work), *plan.interpreter_paths],
            "outer_mount_namespace": _mount_namespace(),
        }
        (work / "driver.py").write_text(_DRIVER, encoding="utf-8")
        (work / "config.json").write_text(json.dumps(config), encoding="utf-8")
        for path in (work / "driver.py", work / "config.json"):
            os.chmod(path, 0o644)
        os.chmod(work, 0o711)
        os.chown(out, plan.user.uid, plan.user.gid)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(out), "LANG": "C.UTF-8", **_passed_through()}
        command = [*plan.namespace_prefix, *_driver_command(python, work / "driver.py", work / "config.json")]
        completed = subprocess.run(command, cwd=out, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                                   check=False)
        output = (completed.stdout + completed.stderr).decode("utf-8", errors="replace")
        said = [line.split("]", 1)[1].strip() for line in output.splitlines() if line.startswith("[unitune sandbox]")]
        return completed.returncode, said[-1] if said else f"the check ended with exit code {completed.returncode}"
    except (OSError, subprocess.SubprocessError) as error:
        return _CANNOT_START, str(error)
    finally:
        _remove_tree(work)


def _unreachable(plan: _Plan, python: str, message: str) -> str:
    """The `SandboxError` message of a plan whose check failed: what went wrong, and what to do."""
    user = plan.user.name
    private = [folder for kind, folder in _exposure(plan.interpreter_paths, plan.user) if kind == "tmpfs"]
    text = f"the sandbox cannot run tests as `{user}` with {python}: {message}."
    if private and not plan.exposes:
        text += (f" The interpreter lies in {', '.join(private)}, which `{user}` may not enter, and unitune (root) may "
                 "not make a mount namespace here to show it the interpreter (util-linux `unshare` is missing, or "
                 "CAP_SYS_ADMIN is withheld, as in many containers).")
    elif private:
        text += f" The interpreter lies in {', '.join(private)}, which `{user}` may not enter."
    return text + (f" Use an interpreter that other users may run and read (for the project: a virtual environment "
                   f"made from the system's Python, `/usr/bin/python3 -m venv .venv`, with pytest installed), or "
                   f"let `{user}` in (`chmod o+rx` on the folders on the way)")


def _mount_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/mnt")
    except OSError:
        return None


def _passed_through() -> dict[str, str]:
    return {name: os.environ[name] for name in PASSED_THROUGH_ENV if os.environ.get(name)}


def _probe(command: list[str], preexec=None) -> bool:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/", **_passed_through()}
    try:
        return subprocess.run(command, cwd="/", env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=60, preexec_fn=preexec, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _nobody() -> _User | None:
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return _User("nobody", entry.pw_uid, entry.pw_gid)


def _current_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, AttributeError):
        return "user"


def _absolute_program(program: str) -> str:
    """`program` as an absolute path, links kept (a venv's `bin/python` must be started as itself):
    found on PATH when it is a bare name."""
    if os.sep not in program:
        return shutil.which(program) or program  # not found: pytest is said to be missing for it
    return os.path.abspath(program)


def project_python(root: str | os.PathLike, configured: str | None = None) -> str:
    """The interpreter the project's tests run with (see `which_python`)."""
    return which_python(root, configured)[0]


def which_python(root: str | os.PathLike, configured: str | None = None) -> tuple[str, str]:
    """(interpreter, why it was chosen): the `python` setting, else the active virtual environment
    (`$VIRTUAL_ENV`), else `.venv` or `venv` at the project's root, else the one running unitune."""
    if configured:
        return str(Path(configured).expanduser()), "the `python` setting"
    active = os.environ.get("VIRTUAL_ENV")
    if active and (Path(active) / "bin" / "python").exists():
        return str(Path(active) / "bin" / "python"), "the active virtual environment ($VIRTUAL_ENV)"
    for folder in (".venv", "venv"):
        candidate = Path(root) / folder / "bin" / "python"
        if candidate.exists():
            return str(candidate), f"the project's {folder}/"
    return sys.executable, "the interpreter unitune runs on"


# -- the copy ------------------------------------------------------------------------------------

def copy_project(root: Path, target: Path) -> int:
    """Copy the project's files under `root` into `target` (created), leaving out version control,
    virtual environments, caches, `node_modules`, build output beside a build file and files over
    `MAX_FILE_BYTES`; symbolic links are copied as the file they point to when that is inside the
    project, else left out. Returns the number of files copied."""
    root = Path(root).resolve()
    target.mkdir(parents=True)
    files = size = 0
    has_build_file = any((root / name).exists() for name in ("pyproject.toml", "setup.py", "setup.cfg"))
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        relative = here.relative_to(root)
        keep = []
        for name in dirs:
            path = here / name
            if (name in SKIPPED_DIRS or name.endswith(SKIPPED_SUFFIXES) or path.is_symlink()
                    or (here == root and has_build_file and name in ("build", "dist"))
                    or (path / "pyvenv.cfg").exists()):
                continue
            keep.append(name)
        dirs[:] = keep
        (target / relative).mkdir(exist_ok=True)
        for name in names:
            if name.endswith(SKIPPED_SUFFIXES):
                continue
            source = here / name
            try:
                if source.is_symlink():
                    resolved = source.resolve()
                    if not resolved.is_relative_to(root) or not resolved.is_file():
                        continue
                    source = resolved
                info = source.stat()
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
                continue
            files += 1
            size += info.st_size
            if files > MAX_COPY_FILES or size > MAX_COPY_BYTES:
                raise SandboxError(
                    f"{root}: the project is too large to copy into a sandbox (over {MAX_COPY_FILES} files or "
                    f"{MAX_COPY_BYTES // (1024 * 1024)} MB without caches and virtual environments)"
                )
            destination = target / relative / name
            try:
                shutil.copyfile(source, destination)
                os.chmod(destination, (info.st_mode & 0o777) | 0o600)
            except OSError:
                continue
    return files


def _relative(path: str, what: str) -> str:
    """`path` as a relative POSIX path that stays inside the copy."""
    pure = PurePosixPath(str(path).replace("\\", "/"))
    if not str(path) or pure.is_absolute() or ".." in pure.parts or str(pure) in ("", "."):
        raise SandboxError(f"{path!r}: the {what} must be a path relative to the project, inside it")
    return pure.as_posix()


def _chown_tree(folder: Path, uid: int, gid: int) -> None:
    os.chown(folder, uid, gid)
    for current, dirs, names in os.walk(folder):
        for name in dirs + names:
            try:
                os.chown(os.path.join(current, name), uid, gid, follow_symlinks=False)
            except OSError:
                pass


def _remove_tree(folder: Path) -> None:
    def unlock(function, path, _):
        try:
            os.chmod(os.path.dirname(path), 0o700)
            os.chmod(path, 0o700)
            function(path)
        except OSError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(folder, onexc=unlock)
    else:
        shutil.rmtree(folder, onerror=unlock)


# -- reading the results -------------------------------------------------------------------------

def _read_json(path: Path) -> dict | None:
    try:
        if path.is_file() and not path.is_symlink():
            return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass
    return None


def _read_junit(path: Path, result: SandboxResult) -> None:
    try:
        if path.is_symlink() or not path.is_file():
            return
        tree = ElementTree.parse(path)
    except (OSError, ElementTree.ParseError):
        return
    for case in tree.iter("testcase"):
        outcome, message = PASSED, ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = FAILED if child.tag == "failure" else ERROR
                message = _problem_line(child.get("message") or "", child.text or "")
                break
            if child.tag == "skipped":
                outcome, message = "skipped", (child.get("message") or "").strip()
        result.tests.append(TestOutcome(case.get("name", ""), case.get("classname", ""), outcome, message))
    result.passed = sum(test.outcome == PASSED for test in result.tests)
    result.failed = sum(test.outcome == FAILED for test in result.tests)
    result.errors = sum(test.outcome == ERROR for test in result.tests)
    result.skipped = sum(test.outcome == "skipped" for test in result.tests)


def _problem_line(message: str, text: str) -> str:
    """The most telling line of a failure: the last `E   ...` line of the traceback, else the message."""
    errors = [line[1:].strip() for line in text.splitlines() if line.startswith("E ")]
    raised = [line for line in errors if ":" in line and line.split(":", 1)[0].replace(".", "").isidentifier()]
    if raised:  # `ValueError: ...`, `SyntaxError: ...`
        return raised[-1][:500]
    if message.strip():  # an assertion: `assert 6 == 5`
        return message.strip().splitlines()[0][:500]
    return errors[0][:500] if errors else ""


def _last_meaningful_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip() and not set(line.strip()) <= set("=-_ ")]
    return lines[-1][:300] if lines else "no test ran"


def _read_output(path: Path) -> str:
    """The run's output, its head and tail only when long (it may be up to the file-size limit)."""
    size = path.stat().st_size
    budget = 4 * (OUTPUT_HEAD + OUTPUT_TAIL)  # bytes: up to 4 per character
    with open(path, "rb") as handle:
        if size <= budget:
            return _truncate(handle.read().decode("utf-8", errors="replace"))
        head = handle.read(4 * OUTPUT_HEAD).decode("utf-8", errors="replace")[:OUTPUT_HEAD]
        handle.seek(size - 4 * OUTPUT_TAIL)
        tail = handle.read().decode("utf-8", errors="replace")[-OUTPUT_TAIL:]
    return head + f"\n[... about {size - len(head) - len(tail)} bytes left out ...]\n" + tail


def _truncate(text: str) -> str:
    if len(text) <= OUTPUT_HEAD + OUTPUT_TAIL:
        return text
    cut = len(text) - OUTPUT_HEAD - OUTPUT_TAIL
    return text[:OUTPUT_HEAD] + f"\n[... {cut} characters left out ...]\n" + text[-OUTPUT_TAIL:]


def _body_start(source: str, start: int, end: int) -> int | None:
    """The first line of the body of the outermost function defined in lines start..end (its
    decorators and signature run at import, not in a test)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    best = None
    for node in ast.walk(tree):
        if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and start <= node.lineno <= end
                and (best is None or node.lineno < best.lineno)):
            best = node
    if best is None or not best.body:
        return None
    return max(best.lineno, best.body[0].lineno)


def _focal_coverage(report: dict, copy: Path, focal: Path, span, body_start, result: SandboxResult) -> None:
    entry = None
    for name, data in (report.get("files") or {}).items():
        path = Path(name) if Path(name).is_absolute() else copy / name
        if os.path.normpath(path) == os.path.normpath(focal):
            entry = data
            break
    if entry is None:
        return
    executed = set(entry.get("executed_lines") or [])
    missing = set(entry.get("missing_lines") or [])
    if span is not None:
        low, high = (body_start or span[0]), span[1]
    else:
        low, high = 1, max(executed | missing, default=0)

    def inside(line: int) -> bool:
        return low <= line <= high

    result.covered_lines = sorted(line for line in executed if inside(line))
    result.missing_lines = sorted(line for line in missing if inside(line))
    statements = len(result.covered_lines) + len(result.missing_lines)
    result.line_coverage = len(result.covered_lines) / statements if statements else None
    result.covered_branches = sorted(tuple(arc) for arc in entry.get("executed_branches") or [] if inside(arc[0]))
    result.missing_branches = sorted(tuple(arc) for arc in entry.get("missing_branches") or [] if inside(arc[0]))
    branches = len(result.covered_branches) + len(result.missing_branches)
    if branches and report.get("meta", {}).get("branch_coverage", True):
        result.branch_coverage = len(result.covered_branches) / branches


# -- what runs inside ----------------------------------------------------------------------------

_SITECUSTOMIZE = '''\
"""Written by unitune's sandbox: no network for the tests it runs (every Python process loads it)."""
import socket as _socket_module
import _socket

_MESSAGE = "network disabled by unitune's sandbox"
_INTERNET = {_socket.AF_INET, getattr(_socket, "AF_INET6", _socket.AF_INET)}
_LOCAL_NAMES = {None, "", "localhost", b"localhost", "localhost.localdomain"}


def _refuse(what):
    raise PermissionError(f"{_MESSAGE} ({what})")


def _guard_method(name):
    original = getattr(_socket_module.socket, name, None)
    if original is None:
        return

    def guarded(self, *args, **kwargs):
        if self.family in _INTERNET:
            _refuse(f"socket.{name}")
        return original(self, *args, **kwargs)

    guarded.__name__ = guarded.__qualname__ = name
    guarded.__unitune_guard__ = True
    setattr(_socket_module.socket, name, guarded)


def _numeric(host):
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    host = str(host).split("%", 1)[0]
    for family in (_socket.AF_INET, getattr(_socket, "AF_INET6", None)):
        if family is None:
            continue
        try:
            _socket.inet_pton(family, host)
            return True
        except (OSError, ValueError):
            pass
    return False


def _guard_lookup(module, name):
    original = getattr(module, name, None)
    if original is None:
        return

    def guarded(host, *args, **kwargs):
        if host not in _LOCAL_NAMES and not _numeric(host):
            _refuse(f"looking up {host!r}")
        return original(host, *args, **kwargs)

    guarded.__name__ = guarded.__qualname__ = name
    guarded.__unitune_guard__ = True
    setattr(module, name, guarded)


for _name in ("connect", "connect_ex", "sendto", "sendmsg"):
    _guard_method(_name)
for _module in (_socket_module, _socket):
    for _name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        _guard_lookup(_module, _name)
del _name, _module
'''

_DRIVER = r'''"""Written by unitune's sandbox. The first process (PID 1 of the run's PID namespace, where there is
one) sets up what only it can, starts the run as a new program and reaps orphans until it ends:
as root (unitune's), it shows the tests' user what that user needs of folders it may not enter (the
interpreter under /root), then becomes that user, without any capability; as a user namespace's
root (another caller's), it makes the file system read-only around the temporary folder, then drops
every capability. It runs with -I -S: nothing of the project is imported while it has privileges.
The run reports the isolation it sees and runs pytest under coverage (for the sandbox's own check,
it only shows that it is the caller's interpreter and imports pytest)."""
import json
import os
import re
import signal
import stat
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC, MS_PRIVATE, MS_RELATIME = 1024, 2048, 4096, 16384, 1 << 18, 1 << 21
KEPT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
              "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 24, 38
# exit codes before pytest runs (pytest's own are 0 to 5; unitune's sandbox knows 3 and 6)
CANNOT_START, NO_PYTEST, ANOTHER_PYTHON, CANNOT_BECOME, CANNOT_EXPOSE = 3, 4, 5, 6, 7
_libc = None


def say(message):
    print(f"[unitune sandbox] {message}", flush=True)


def libc():
    global _libc
    if _libc is None:
        import ctypes

        _libc = ctypes.CDLL(None, use_errno=True)
        _libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    return _libc


def mount(source, target, flags, kind=None, data=None):
    import ctypes

    def encoded(text):
        return text.encode() if isinstance(text, str) else text

    if libc().mount(encoded(source), encoded(target), encoded(kind), flags, encoded(data)) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error), target)


def unescape(text):
    """A path of /proc/self/mountinfo, where space, tab, newline and backslash are octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), text)


def read_only_world(writable):
    """Remount every file system read-only in this mount namespace, except `writable` (bound onto
    themselves first, so they are mounts of their own) and /proc, /sys, /dev. True when all worked."""
    try:
        mount(None, "/", MS_REC | MS_PRIVATE)
        for path in writable:
            mount(path, path, MS_BIND | MS_REC)
        with open("/proc/self/mountinfo") as handle:
            mounts = [line.split() for line in handle]
    except OSError:
        return False
    complete = True
    for fields in mounts:
        point, options = unescape(fields[4]), fields[5].split(",")
        if any(point == path or point.startswith(path.rstrip("/") + "/") for path in writable):
            continue
        if point in ("/proc", "/sys", "/dev") or point.startswith(("/proc/", "/sys/", "/dev/")):
            continue
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        for option in options:
            flags |= KEPT_FLAGS.get(option, 0)
        try:
            mount(None, point, flags)
        except OSError:
            complete = False
    return complete


def expose(operations):
    """Show the run's user what it needs of folders it may not enter, and nothing else of them: each
    `["tmpfs", folder]` covers one with an empty tmpfs (mode 755), each `["bind", path]` binds a
    path back from the original, opened before anything covered it. Returns the paths bound back."""
    mount(None, "/", MS_REC | MS_PRIVATE)  # nothing of this reaches the caller's namespace
    originals = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for kind, path in operations if kind == "bind"}
    os.umask(0o022)
    for kind, path in operations:
        if kind == "tmpfs":
            mount("tmpfs", path, MS_NOSUID | MS_NODEV | MS_NOEXEC, "tmpfs", "mode=755,size=1m")
            continue
        original = originals[path]
        if not os.path.lexists(path):  # inside a tmpfs of ours: a mount point like the original
            if stat.S_ISDIR(os.fstat(original).st_mode):
                os.makedirs(path)
            else:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "x").close()
        mount(f"/proc/self/fd/{original}", path, MS_BIND | MS_REC)
    for original in originals.values():
        os.close(original)
    return sorted(originals)


def private_tmp(keep):
    """Give the run its own /tmp and /dev/shm: empty tmpfs mounts, size-capped, gone with the run
    (nothing written there outlives it, and no host socket under /tmp is reachable). `keep` (the
    temporary folder, the interpreter's folders) are bound back where they were, opened first."""
    mount(None, "/", MS_REC | MS_PRIVATE)  # nothing of this reaches the caller's namespace
    under = [path for path in keep if path.startswith(("/tmp/", "/dev/shm/")) and os.path.exists(path)]
    under = [path for path in sorted(set(under)) if not any(path != other and path.startswith(other.rstrip("/") + "/")
                                                             for other in under)]
    originals = {path: os.open(path, os.O_PATH | os.O_CLOEXEC) for path in under}
    os.umask(0o022)
    for point, size in (("/tmp", "512m"), ("/dev/shm", "64m")):
        if os.path.isdir(point):
            mount("tmpfs", point, MS_NOSUID | MS_NODEV, "tmpfs", f"mode=1777,size={size}")
    for path, original in originals.items():
        if stat.S_ISDIR(os.fstat(original).st_mode):
            os.makedirs(path, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "x").close()
        mount(f"/proc/self/fd/{original}", path, MS_BIND | MS_REC)
        os.close(original)
    return True


def try_private_tmp(keep):
    try:
        return private_tmp(keep)
    except OSError as error:  # a kernel or policy that refuses: the rest of the isolation still holds
        say(f"no private /tmp for the run: {error}")
        return False


def mount_namespace():
    try:
        return os.readlink("/proc/self/ns/mnt")
    except OSError:
        return None


def drop_capabilities():
    """Empty the bounding set and forbid gaining privileges: the next program has no capability."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    for capability in range(64):
        if libc().prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) != 0 and ctypes.get_errno() == 22:  # EINVAL: no more
            break
    libc().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)


def become(uid, gid):
    """Become the run's user for good: no supplementary group, no capability (changing the user
    from root clears the permitted and effective sets; the bounding set is emptied before, and
    no_new_privs keeps any program from granting one back)."""
    drop_capabilities()
    os.setgroups([])
    if hasattr(os, "setresgid"):
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    else:  # macOS: setgid/setuid as root set the real, effective and saved ids
        os.setgid(gid)
        os.setuid(uid)
    if (os.getuid(), os.geteuid(), os.getgid(), os.getegid()) != (uid, uid, gid, gid):
        raise PermissionError(f"still uid {os.geteuid()}, gid {os.getegid()}")


def user_name():
    try:
        import pwd
        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return f"uid {os.getuid()}"


def isolation(seen):
    seen = dict(seen, uid=os.getuid())
    try:
        import pwd
        seen["user"] = pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        seen["user"] = str(os.getuid())
    try:
        import socket
        names = {name for _, name in socket.if_nameindex()}
        seen["network_namespace"] = names <= {"lo"}
        seen["network_guard"] = bool(getattr(socket.socket.connect, "__unitune_guard__", False))
    except (ImportError, OSError):
        seen["network_namespace"] = None
    try:
        import resource
        seen["limits"] = {name: resource.getrlimit(getattr(resource, name))[0]
                          for name in ("RLIMIT_AS", "RLIMIT_NPROC", "RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_CORE")
                          if hasattr(resource, name)}
    except ImportError:
        pass
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    seen["capabilities"] = line.split()[1]
    except OSError:
        pass
    return seen


def check(expected):
    """The sandbox's check of its plan: this user starts the caller's interpreter (not another
    Python whose files it can read, as a program under /root does when its own are out of reach),
    and it imports pytest."""
    found = {"version": sys.version, "prefix": os.path.realpath(sys.prefix),
             "base_prefix": os.path.realpath(sys.base_prefix)}
    if found != expected:
        say(f"as {user_name()}, {sys.executable} starts another Python ({found['version'].split()[0]} in "
            f"{found['base_prefix']}, not {expected['version'].split()[0]} in {expected['base_prefix']}): "
            "its own files are out of that user's reach")
        return ANOTHER_PYTHON
    try:
        import pytest  # noqa: F401
    except ImportError as error:
        say(f"as {user_name()}, {sys.executable} cannot import pytest ({error})")
        return NO_PYTEST
    return 0


class Measure:
    """pytest plugin: coverage on while the tests run only; plugin and collection imports are not
    traced (they cost seconds; the focal function's body runs in the tests)."""

    def __init__(self, cov):
        self.cov = cov

    def pytest_collection_finish(self, session):
        if self.cov is not None:
            self.cov.start()

    def pytest_sessionfinish(self, session, exitstatus):
        if self.cov is not None:
            self.cov.stop()


def run(config):
    out = config["out"]
    try:
        import pytest
    except ImportError:
        print(f"[unitune sandbox] pytest is not installed for {sys.executable}", flush=True)
        return NO_PYTEST
    cov = None
    if config.get("coverage_source"):
        try:
            import coverage
        except ImportError:
            print("[unitune sandbox] coverage.py is not installed: coverage is not measured", flush=True)
        else:
            cov = coverage.Coverage(data_file=os.path.join(out, ".coverage"), branch=True,
                                    source=[config["coverage_source"]], config_file=False)

    code = pytest.main(config["pytest_args"], plugins=[Measure(cov)])
    if cov is not None:
        try:
            cov.save()
            cov.json_report(outfile=os.path.join(out, "coverage.json"), include=[config["coverage_include"]])
        except Exception as error:  # no data, a file that vanished: the run still counts
            print(f"[unitune sandbox] no coverage report: {error}", flush=True)
    return int(code)


class Rounds:
    """pytest plugin of a round: each test's outcome by node id, a time limit per test, the
    coverage context switched to the test, and the test order reversed when asked."""

    def __init__(self, cov, per_test_timeout, reverse):
        self.cov, self.timeout, self.reverse = cov, per_test_timeout, reverse
        self.outcomes = {}

    def pytest_collection_modifyitems(self, session, config, items):
        if self.reverse:
            items.reverse()

    def pytest_runtest_setup(self, item):
        if self.cov is not None:
            self.cov.switch_context(item.nodeid)
        if self.timeout:
            signal.setitimer(signal.ITIMER_REAL, self.timeout)

    def pytest_runtest_logreport(self, report):
        if report.when == "teardown":
            signal.setitimer(signal.ITIMER_REAL, 0)
        known = self.outcomes.get(report.nodeid)
        if report.when == "call" or report.failed or (report.skipped and known is None):
            if known is not None and known[0] != "passed":
                return  # the first problem is the one to report
            outcome = "passed" if report.passed else "skipped" if report.skipped else (
                "failed" if report.when == "call" else "error")
            message = ""
            crash = getattr(report.longrepr, "reprcrash", None)
            if crash is not None:
                message = crash.message
            elif report.longrepr is not None and not report.passed:
                message = str(report.longrepr)[-500:]
            self.outcomes[report.nodeid] = [outcome, message[:500]]


def too_slow(signum, frame):
    raise TimeoutError("the test ran longer than unitune's time limit per test")


def run_rounds(config):
    """Each round in a process of its own (forked: pytest and coverage are imported once), with
    its files written over the copy's and restored afterwards; its results in `round-N.json`."""
    import pytest
    try:
        import coverage
    except ImportError:
        coverage = None
    if not os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        # imported once here rather than in every round's process (pytest still registers them there)
        try:
            from importlib.metadata import entry_points
            for entry in entry_points(group="pytest11"):
                try:
                    __import__(entry.module)
                except Exception:
                    pass
        except Exception:
            pass
    signal.signal(signal.SIGALRM, too_slow)
    passed = {}
    for index, spec in enumerate(config["rounds"]):
        targets = spec.get("targets") or [config["test_file"]]
        if spec.get("select_passed_of") is not None:
            chosen = None
            for earlier in spec["select_passed_of"]:
                ids = {nodeid for nodeid, (outcome, _) in passed.get(earlier, {}).items() if outcome == "passed"}
                chosen = ids if chosen is None else chosen & ids
            targets = [nodeid for nodeid in passed.get(spec["select_passed_of"][0], {}) if nodeid in (chosen or ())]
        result_path = os.path.join(config["out"], f"round-{index}.json")
        if not targets:
            with open(result_path, "w") as handle:
                json.dump({"outcomes": {}, "code": None, "skipped": True}, handle)
            passed[index] = {}
            continue
        originals = {}
        for path, text in (spec.get("files") or {}).items():
            try:
                with open(path, encoding="utf-8") as handle:
                    originals[path] = handle.read()
            except OSError:
                originals[path] = None
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                code = one_round(config, spec, index, targets, pytest, coverage)
            except BaseException:
                import traceback
                traceback.print_exc()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        for path, text in originals.items():
            if text is None:
                os.unlink(path)
            else:
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(text)
        try:
            with open(result_path) as handle:
                passed[index] = json.load(handle)["outcomes"]
        except (OSError, ValueError, KeyError):
            passed[index] = {}
            with open(result_path, "w") as handle:
                json.dump({"outcomes": {}, "code": os.waitstatus_to_exitcode(status)}, handle)
    return 0


def one_round(config, spec, index, targets, pytest, coverage):
    out = config["out"]
    if spec.get("observations"):
        os.environ["UNITUNE_OBSERVATIONS"] = os.path.join(out, f"observations-{index}.jsonl")
    cov = None
    if spec.get("coverage") and coverage is not None and config.get("coverage_source"):
        cov = coverage.Coverage(data_file=os.path.join(out, f".coverage-{index}"), branch=True,
                                source=[config["coverage_source"]], config_file=False)
    plugin = Rounds(cov, config.get("per_test_timeout"), spec.get("reverse"))

    args = [*config["pytest_base_args"], *targets]
    code = int(pytest.main(args, plugins=[plugin, Measure(cov)]))
    record = {"outcomes": plugin.outcomes, "code": code}
    if cov is not None:
        try:
            cov.save()
            cov.json_report(outfile=os.path.join(out, f"coverage-{index}.json"), include=[config["coverage_include"]])
            data = cov.get_data()
            contexts = {}
            for context in data.measured_contexts():
                if not context:
                    continue
                data.set_query_contexts([context])
                contexts[context] = {"lines": sorted(data.lines(config["coverage_include"]) or ()),
                                     "arcs": sorted(data.arcs(config["coverage_include"]) or ())}
            record["contexts"] = contexts
        except Exception as error:
            print(f"[unitune sandbox] no coverage report: {error}", flush=True)
    with open(os.path.join(out, f"round-{index}.json"), "w") as handle:
        json.dump(record, handle)
    return code


def child(config, seen):
    if config.get("check"):
        code = check(config["check"])
    elif config.get("rounds"):
        try:
            with open(os.path.join(config["out"], "isolation.json"), "w") as handle:
                json.dump(isolation(seen), handle)
        except OSError:
            pass
        try:
            code = run_rounds(config)
        except BaseException:
            import traceback
            traceback.print_exc()
            code = CANNOT_START
    else:
        try:
            with open(os.path.join(config["out"], "isolation.json"), "w") as handle:
                json.dump(isolation(seen), handle)
        except OSError:
            pass
        try:
            code = run(config)
        except BaseException:
            import traceback
            traceback.print_exc()
            code = CANNOT_START
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # not waiting for threads or atexit handlers a test left behind


def start(python, argv):
    """Become the run: a new program, which starts without the capabilities given up above. When
    that fails the run says why (else it would end with no output and no test)."""
    try:
        os.execv(python, argv)
    except BaseException as error:
        say(f"cannot start the tests' interpreter {python} as {user_name()}: {error}")
    os._exit(CANNOT_START)


def main():
    with open(sys.argv[1]) as handle:
        config = json.load(handle)
    if sys.argv[2:3] == ["--run"]:
        child(config, json.loads(sys.argv[3]))
    seen = {"pid_namespace": os.getpid() == 1, "read_only_outside_copy": False, "exposed": [], "private_tmp": False}
    own_namespace = mount_namespace() not in (None, config.get("outer_mount_namespace"))
    keep = [*config.get("keep_in_tmp", []), sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix,
            # the interpreter's folder and the one above (a virtual environment's root, with its pyvenv.cfg:
            # under -S, sys.prefix is the base installation's)
            os.path.dirname(config.get("python") or sys.executable),
            os.path.dirname(os.path.dirname(config.get("python") or sys.executable)),
            os.path.dirname(os.path.abspath(sys.argv[0])),
            os.path.dirname(os.path.abspath(sys.argv[1])), config["cwd"], config["out"]]
    if config.get("read_only_except") and os.getuid() == 0 and own_namespace:
        seen["read_only_outside_copy"] = read_only_world(config["read_only_except"])
        seen["private_tmp"] = try_private_tmp(keep)
        drop_capabilities()
    if config.get("expose") and os.getuid() == 0 and own_namespace:  # never in the caller's namespace
        try:
            seen["exposed"] = expose(config["expose"])
        except OSError as error:
            say(f"cannot show the tests' user the interpreter's folders: {error}")
            os._exit(CANNOT_EXPOSE)
    if config.get("become") and os.getuid() == 0 and own_namespace:
        seen["private_tmp"] = try_private_tmp(keep)
    if config.get("become"):
        try:
            become(*config["become"])
        except OSError as error:
            say(f"cannot become uid {config['become'][0]} to run the tests: {error}")
            os._exit(CANNOT_BECOME)
    os.chdir(config["cwd"])  # the old working folder may be covered, or on a mount now read-only
    python = config.get("python") or sys.executable
    argv = [python, "-s", "-B", sys.argv[0], sys.argv[1], "--run", json.dumps(seen)]
    try:
        pid = os.fork()
    except OSError:  # no process to spare: become the run, without a reaper
        start(python, argv)
    if pid == 0:
        start(python, argv)
    while True:
        try:
            ended, status = os.wait()
        except ChildProcessError:
            os._exit(CANNOT_START)
        except InterruptedError:
            continue
        if ended == pid:
            code = os.waitstatus_to_exitcode(status)
            os._exit(code if code >= 0 else 128 - code)


main()
'''
