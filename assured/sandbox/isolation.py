"""How a sandbox run is contained on this machine: the plan (namespaces, the user the tests run as,
what that user is shown of folders it may not enter), probed once per interpreter; the resource
limits; the caller's environment a run may keep; which interpreter runs a project's tests."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from unitune.assured.sandbox.programs import driver_command, write_driver
from unitune.assured.sandbox.workspace import remove_tree

try:  # POSIX only; on other systems `run_tests` refuses to run
    import pwd
    import resource
except ImportError:  # pragma: no cover - Windows
    pwd = resource = None  # type: ignore[assignment]

MAX_WRITTEN_FILE_BYTES = 128 * 1024 * 1024  # RLIMIT_FSIZE
MAX_OPEN_FILES = 1024
ENV_MARKER = "UNITUNE_SANDBOX"
#: The only variables of the caller's environment a run inherits: what an interpreter may need to start.
PASSED_THROUGH_ENV = ("LD_LIBRARY_PATH", "TZ")


_PRLIMIT_NAMES = {"RLIMIT_AS": "as", "RLIMIT_CPU": "cpu", "RLIMIT_FSIZE": "fsize", "RLIMIT_CORE": "core",
                  "RLIMIT_NOFILE": "nofile", "RLIMIT_NPROC": "nproc"}


def run_limits(timeout: float, memory_mb: int, processes: int) -> list[tuple[str, int, int]]:
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


def prlimit_prefix(prlimit: str, limits) -> list[str]:
    return [prlimit, *(f"--{_PRLIMIT_NAMES[name]}={soft}:{hard}" for name, soft, hard in limits), "--"]


def apply_in_child(limits, unshare_net: bool) -> None:  # pragma: no cover - runs in the child
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


def task_count(uid: int) -> int:
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
class User:
    name: str
    uid: int
    gid: int


@dataclass(frozen=True)
class Plan:
    """The isolation this machine allows for one interpreter (probed once per process)."""

    root: bool
    has_pytest: bool
    namespace_prefix: tuple[str, ...] = ()  # unshare ... --
    namespace_prefix_with_network: tuple[str, ...] = ()  # the same without --net
    drop_prefix: tuple[str, ...] = ()  # setpriv ... --: the Java runner's programs as `user` (the driver drops itself)
    user: User | None = None  # whom the tests run as, when not the caller
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
            "user": self.user.name if self.user else current_user(),
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
    return plan_for(absolute_program(str(python) if python else sys.executable)).describe()


@functools.lru_cache(maxsize=8)
def plan_for(python: str) -> Plan:
    plan = _isolation_plan(python)
    prlimit = shutil.which("prlimit")
    if prlimit and _probe([prlimit, f"--nofile={MAX_OPEN_FILES}:{MAX_OPEN_FILES}", "--", python, "-s", "-c", ""]):
        plan = dataclasses.replace(plan, prlimit=prlimit)
    return plan


def _isolation_plan(python: str) -> Plan:
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
        # the private /tmp binds these back: an interpreter (or what it starts) living under /tmp
        interpreter = _interpreter(python) if mount else None
        return Plan(False, has_pytest, prefix, prefix_with_network, read_only_fs=mount,
                    interpreter_paths=_interpreter_paths(python, interpreter) if interpreter else ())
    user = _nobody()
    if user is None:  # no one to become: the tests run as root (documented limit)
        return Plan(True, has_pytest, prefix, prefix_with_network, preexec_unshare_net=preexec_unshare_net)
    drop = ()
    setpriv = shutil.which("setpriv")
    if setpriv:
        candidate = (setpriv, f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups", "--no-new-privs",
                     "--inh-caps=-all", "--bounding-set=-all", "--")
        if _probe([*candidate, shutil.which("true") or "/bin/true"]):
            drop = candidate
    interpreter = _interpreter(python)
    plan = Plan(True, has_pytest, prefix, prefix_with_network, drop, user, preexec_unshare_net=preexec_unshare_net,
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
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/", **passed_through()}
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


def _enterable(folder: str, user: User) -> bool:
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


def exposure(paths: Sequence[str], user: User) -> list[list[str]]:
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


def _check(plan: Plan, python: str, interpreter: dict) -> tuple[int, str]:
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
            "expose": exposure([*plan.interpreter_paths, str(work)], plan.user) if plan.exposes else [],
            "keep_in_tmp": [str(work), *plan.interpreter_paths],
            "outer_mount_namespace": mount_namespace(),
        }
        driver = write_driver(work)
        (work / "config.json").write_text(json.dumps(config), encoding="utf-8")
        os.chmod(work / "config.json", 0o644)
        os.chmod(work, 0o711)
        os.chown(out, plan.user.uid, plan.user.gid)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(out), "LANG": "C.UTF-8", **passed_through()}
        command = [*plan.namespace_prefix, *driver_command(python, driver, work / "config.json")]
        completed = subprocess.run(command, cwd=out, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                                   check=False)
        output = (completed.stdout + completed.stderr).decode("utf-8", errors="replace")
        said = [line.split("]", 1)[1].strip() for line in output.splitlines() if line.startswith("[unitune sandbox]")]
        return completed.returncode, said[-1] if said else f"the check ended with exit code {completed.returncode}"
    except (OSError, subprocess.SubprocessError) as error:
        return _CANNOT_START, str(error)
    finally:
        remove_tree(work)


def _unreachable(plan: Plan, python: str, message: str) -> str:
    """The `SandboxError` message of a plan whose check failed: what went wrong, and what to do."""
    user = plan.user.name
    private = [folder for kind, folder in exposure(plan.interpreter_paths, plan.user) if kind == "tmpfs"]
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


def mount_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/mnt")
    except OSError:
        return None


def passed_through() -> dict[str, str]:
    return {name: os.environ[name] for name in PASSED_THROUGH_ENV if os.environ.get(name)}


def _probe(command: list[str], preexec=None) -> bool:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/", **passed_through()}
    try:
        return subprocess.run(command, cwd="/", env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=60, preexec_fn=preexec, check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _nobody() -> User | None:
    try:
        entry = pwd.getpwnam("nobody")
    except KeyError:
        return None
    return User("nobody", entry.pw_uid, entry.pw_gid)


def current_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, AttributeError):
        return "user"


def absolute_program(program: str) -> str:
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
