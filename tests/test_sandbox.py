"""The sandbox that runs generated tests (`unitune.assured.sandbox`) and `validate = "run"`.

Every test runs a tiny project's tests in the sandbox; the dangerous ones (a loop, a fork bomb,
writes outside the copy, network calls) carry their own guard, so even a broken sandbox could not
harm the machine: the fork bomb stops after a few hundred processes, writes are cleaned up, and
nothing is ever sent anywhere but to a socket of this test on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import site
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from unitune.assured import sandbox
from unitune.assured.sandbox import NETWORK_MESSAGE, SandboxError, run_tests

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the sandbox needs a POSIX system")

FOCAL = '''\
"""A tiny module."""


def sign(x):
    if x >= 0:
        return "non-negative"
    return "negative"


def twice(x):
    return 2 * x
'''
SIGN_LINES = (4, 7)
GENERATED = "tests/test_generated.py"


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    (root / "tiny").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "tiny"\nversion = "0.1"\n')
    (root / "tiny" / "__init__.py").write_text("")
    (root / "tiny" / "calc.py").write_text(FOCAL)
    (root / "tests" / "test_calc.py").write_text("from tiny.calc import twice\n\n\ndef test_twice():\n    assert twice(2) == 4\n")
    (root / ".git").mkdir()
    (root / ".git" / "config").write_text("[core]\n")
    return root


def run(project: Path, test_source: str, **options) -> sandbox.SandboxResult:
    """Run `test_source` as the project's tests/test_generated.py (plugins off: fast)."""
    options.setdefault("plugins", False)
    options.setdefault("timeout", 20)
    options.setdefault("focal_file", "tiny/calc.py")
    options.setdefault("focal_lines", SIGN_LINES)
    return run_tests(project, GENERATED, {GENERATED: textwrap.dedent(test_source)}, **options)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def isolation() -> dict:
    return sandbox.sandbox_isolation()


def unprivileged() -> bool:
    """Whether the tests run as another user than unitune's (root's) own."""
    return isolation()["root"] and isolation()["user"] != "root"


def users_files_protected() -> bool:
    """An unprivileged sandbox user (unitune as root), or a read-only file system around the copy."""
    return unprivileged() or isolation()["read_only_outside_copy"]


def processes() -> list[Path]:
    return [entry for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in processes():
        try:
            if marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def running_processes_of(uid: int, settle: float = 3.0) -> int:
    """Processes of `uid` that still run, waiting up to `settle` seconds for killed ones to die.
    Zombies are left out: they no longer run, and reaping them is the job of whoever is the
    machine's (or container's) init, which may be slow at it."""
    deadline = time.monotonic() + settle
    while True:
        count = 0
        for entry in processes():
            try:
                if entry.stat().st_uid != uid:
                    continue
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            count += state not in ("Z", "X")
        if count == 0 or time.monotonic() >= deadline:
            return count
        time.sleep(0.05)


# -- outcomes and coverage -----------------------------------------------------------------------

def test_a_passing_test_reports_the_focal_functions_coverage(project):
    before = snapshot(project)
    result = run(project, """\
        from tiny.calc import sign


        def test_sign_of_a_positive_number():
            assert sign(3) == "non-negative"
    """)
    assert result.status == "passed", result.output
    assert (result.passed, result.failed, result.errors) == (1, 0, 0)
    # sign's body: `if` (5), `return "non-negative"` (6) ran; `return "negative"` (7) did not.
    assert result.covered_lines == [5, 6] and result.missing_lines == [7]
    assert result.line_coverage == pytest.approx(2 / 3)
    assert result.covered_branches == [(5, 6)] and result.missing_branches == [(5, 7)]
    assert result.branch_coverage == pytest.approx(0.5)
    assert snapshot(project) == before  # the generated file went into the copy only


def test_both_branches_and_only_the_selected_tests(project):
    result = run(project, """\
        from tiny.calc import sign


        def test_positive():
            assert sign(1) == "non-negative"


        def test_negative():
            assert sign(-1) == "negative"


        def test_not_selected():
            assert False
    """, select=["test_positive", "test_negative"])
    assert result.status == "passed", result.output
    assert result.passed == 2 and not result.failed
    assert result.line_coverage == 1.0 and result.branch_coverage == 1.0


def test_each_test_is_credited_only_with_the_lines_it_ran_whatever_its_name(project):
    # one test's name is the start of another's: each keeps its own lines and branches
    source = textwrap.dedent("""\
        from tiny.calc import sign


        def test_sign():
            assert sign(1) == "non-negative"


        def test_sign_2():
            assert sign(-1) == "negative"
    """)
    result = sandbox.run_rounds(project, GENERATED, [sandbox.Round(coverage=True)], {GENERATED: source},
                                focal_file="tiny/calc.py", focal_lines=SIGN_LINES, timeout=30)
    covered = result.rounds[0].covered
    assert covered[f"{GENERATED}::test_sign"] == ({5, 6}, {(5, 6)})
    assert covered[f"{GENERATED}::test_sign_2"] == ({5, 7}, {(5, 7)})


def test_each_round_says_how_long_it_ran_and_a_round_with_nothing_to_run_took_no_time(project):
    # `-v` shows where a session's time goes from these (`assure.session`)
    source = "from tiny.calc import sign\n\n\ndef test_wrong():\n    assert sign(-2) == 'x'\n"
    result = sandbox.run_rounds(project, GENERATED, [sandbox.Round(), sandbox.Round(select_passed_of=[0])],
                                {GENERATED: source}, timeout=30)
    ran, skipped = result.rounds
    assert ran.outcomes and 0 < ran.seconds < 30
    assert not skipped.ran and skipped.seconds == 0


def test_a_projects_own_pytest_cov_leaves_the_coverage_to_unitune(project):
    # `--cov` in a project's addopts (with pytest-cov installed, as in its own environment) started a second
    # coverage collector that stopped unitune's: every run ended in an internal error, nothing was delivered
    pytest.importorskip("pytest_cov")
    (project / "pyproject.toml").write_text('[project]\nname = "tiny"\nversion = "0.1"\n\n[tool.pytest.ini_options]\n'
                                            'addopts = "--cov=tiny --cov-branch --cov-fail-under=100"\n')
    source = "from tiny.calc import sign\n\n\ndef test_sign():\n    assert sign(1) == 'non-negative'\n"
    result = run(project, source, plugins=True)
    assert result.status == "passed", result.output
    assert result.covered_lines == [5, 6]
    rounds = sandbox.run_rounds(project, GENERATED, [sandbox.Round(coverage=True)], {GENERATED: source},
                                focal_file="tiny/calc.py", focal_lines=SIGN_LINES, timeout=30)
    assert rounds.rounds[0].outcomes[f"{GENERATED}::test_sign"][0] == "passed", rounds.output
    assert rounds.rounds[0].covered[f"{GENERATED}::test_sign"] == ({5, 6}, {(5, 6)})


def test_a_function_without_branches_has_no_branch_coverage(project):
    result = run_tests(project, GENERATED, {GENERATED: "from tiny.calc import twice\n\n\ndef test_t():\n    assert twice(1) == 2\n"},
                       focal_file=project / "tiny" / "calc.py", focal_lines=(10, 11), plugins=False)
    assert result.status == "passed", result.output
    assert result.line_coverage == 1.0 and result.branch_coverage is None


def test_a_failing_test_is_failed_with_its_assertion(project):
    result = run(project, """\
        from tiny.calc import sign


        def test_wrong():
            assert sign(-2) == "non-negative"
    """)
    assert result.status == "failed"
    assert (result.passed, result.failed) == (0, 1)
    assert "test_wrong" in result.summary() and "non-negative" in result.summary()
    assert result.line_coverage == pytest.approx(2 / 3)  # coverage is measured for failing tests too


def test_a_syntax_error_is_an_error(project):
    result = run(project, "def test_broken(:\n    assert True\n")
    assert result.status == "error"
    assert "SyntaxError" in result.output or "SyntaxError" in result.summary()


def test_unittest_test_cases_run_too(project):
    result = run(project, """\
        import unittest

        from tiny.calc import sign


        class SignTest(unittest.TestCase):
            def test_negative(self):
                self.assertEqual(sign(-5), "negative")
    """, select=["SignTest::test_negative"])
    assert result.status == "passed", result.output
    assert result.covered_lines == [5, 7] and result.branch_coverage == 0.5


def test_the_project_copy_leaves_out_version_control_and_bad_paths_are_refused(project):
    result = run(project, """\
        import os


        def test_copy():
            assert not os.path.exists(".git")
            assert os.path.exists("tiny/calc.py") and os.path.exists("tests/test_calc.py")
    """)
    assert result.status == "passed", result.output
    for bad in ("../outside.py", "/etc/passwd", ""):
        with pytest.raises(SandboxError):
            run_tests(project, "tests/test_calc.py", {bad: "x = 1\n"}, plugins=False)
    with pytest.raises(SandboxError):
        run_tests(project, "tests/test_missing.py", plugins=False)


# -- containment ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_an_infinite_loop_times_out_and_its_processes_are_killed(project):
    marker = f"unitune-loop-{os.getpid()}-{time.monotonic_ns()}"
    started = time.monotonic()
    result = run(project, f"""\
        import os
        import subprocess
        import sys


        def test_forever():
            # a child that would outlive the test, and a loop that never ends
            subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "{marker}"])
            while True:
                pass
    """, timeout=4)
    elapsed = time.monotonic() - started
    assert result.status == "timeout"
    assert 4 <= result.duration < 7 and elapsed < 9
    assert "timed out" in result.summary()
    time.sleep(0.2)
    assert processes_with(marker) == []


def test_a_process_that_leaves_the_group_is_killed_after_the_run(project):
    marker = f"unitune-escapee-{os.getpid()}-{time.monotonic_ns()}"
    result = run(project, f"""\
        import os
        import sys


        def test_escape():
            if os.fork() == 0:
                os.setsid()  # out of the run's process group
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)", "{marker}"])
            assert True
    """)
    assert result.status == "passed", result.output
    time.sleep(0.2)
    assert processes_with(marker) == []


def test_a_fork_bomb_is_contained(project):
    # Every process forks (the bomb); the guard: the main test stops at 200 forks and each child
    # forks at most 3 times, so even without limits there would be at most 800 sleeping processes.
    source = """\
        import os
        import time


        def test_fork_bomb():
            main = os.getpid()
            for _ in range(200):
                if os.fork() == 0:
                    try:
                        for _ in range(3):
                            if os.fork() == 0:
                                break
                    except OSError:
                        pass
                    finally:
                        if os.getpid() != main:
                            time.sleep(5)
                            os._exit(0)
    """
    started = time.monotonic()
    result = run(project, source, max_processes=32, timeout=15)
    assert time.monotonic() - started < 9
    assert result.status in ("failed", "error", "timeout")
    assert "BlockingIOError" in result.output or "Resource temporarily unavailable" in result.output
    assert result.isolation["limits"]["RLIMIT_NPROC"] > 0  # a finite limit was set
    if unprivileged():  # nothing of the run is left: every process of the sandbox's user is gone
        assert running_processes_of(result.isolation["uid"]) == 0


def test_memory_is_limited(project):
    result = run(project, """\
        def test_hog():
            blob = bytearray(3 * 1024 * 1024 * 1024)
            assert len(blob)
    """, memory_mb=512)
    assert result.status == "failed"
    assert "MemoryError" in result.output


@pytest.mark.skipif(not users_files_protected(), reason="no unprivileged user and no mount namespace here: only "
                    "HOME and TMPDIR keep the tests' writes in the copy")
def test_writes_outside_the_copy_fail_and_the_users_files_stay_unchanged(project, tmp_path):
    before = snapshot(project)
    real_home = Path.home()
    probe_name = f"unitune-sandbox-probe-{os.getpid()}.txt"
    try:
        result = run(project, f"""\
            import os

            import pytest

            PROJECT = {str(project)!r}
            HOME = {str(real_home)!r}


            def test_overwrite_the_original_focal_file():
                with open(os.path.join(PROJECT, "tiny", "calc.py"), "w") as handle:
                    handle.write("broken")


            def test_create_a_file_in_the_original_project():
                with open(os.path.join(PROJECT, "{probe_name}"), "w") as handle:
                    handle.write("x")


            def test_write_into_the_real_home():
                with open(os.path.join(HOME, "{probe_name}"), "w") as handle:
                    handle.write("x")


            def test_remove_an_original_file():
                os.remove(os.path.join(PROJECT, "tests", "test_calc.py"))


            def test_writing_inside_the_copy_works():
                with open("tiny/scratch.txt", "w") as handle:
                    handle.write("fine")
                with open(os.path.join(os.environ["HOME"], "note"), "w") as handle:
                    handle.write("fine")
        """)
        assert result.status == "failed"
        outcomes = {test.name: test.outcome for test in result.tests}
        assert outcomes == {
            "test_overwrite_the_original_focal_file": "failed", "test_create_a_file_in_the_original_project": "failed",
            "test_write_into_the_real_home": "failed", "test_remove_an_original_file": "failed",
            "test_writing_inside_the_copy_works": "passed",
        }, result.output
        assert "PermissionError" in result.output or "Read-only file system" in result.output
        assert snapshot(project) == before
        assert not (real_home / probe_name).exists()
    finally:
        (real_home / probe_name).unlink(missing_ok=True)
        (project / probe_name).unlink(missing_ok=True)


@pytest.mark.slow
def test_network_calls_are_blocked_before_anything_is_sent(project):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        result = run(project, f"""\
            import socket
            import urllib.request

            import pytest


            def guarded():
                # never try an outside address unless the guard is in place: nothing may leave
                assert getattr(socket.socket.connect, "__unitune_guard__", False), "no network guard"


            def test_connect_to_localhost():
                socket.create_connection(("127.0.0.1", {port}), timeout=2)


            def test_connect_to_an_outside_address():
                guarded()
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.settimeout(1)
                    sock.connect(("192.0.2.1", 80))


            def test_udp_to_an_outside_address():
                guarded()
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.sendto(b"x", ("192.0.2.1", 53))


            def test_host_name_lookup():
                guarded()
                socket.getaddrinfo("example.com", 80)


            def test_http_download():
                guarded()
                urllib.request.urlopen("http://example.com/", timeout=1)


            def test_unix_sockets_still_work():
                left, right = socket.socketpair()
                left.sendall(b"ping")
                assert right.recv(4) == b"ping"
        """)
        outcomes = {test.name: test.outcome for test in result.tests}
        assert outcomes.pop("test_unix_sockets_still_work") == "passed", result.output
        assert set(outcomes.values()) == {"failed"}, result.output
        assert NETWORK_MESSAGE in result.output and "no network guard" not in result.output
        assert result.isolation["network_guard"] is True
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing reached the listener
    finally:
        listener.close()


@pytest.mark.skipif("net" not in isolation()["namespaces"], reason="no network namespace on this machine")
def test_the_network_namespace_holds_when_the_guard_is_bypassed(project):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        result = run(project, f"""\
            import _socket
            import socket


            def test_raw_connect_to_localhost():
                # _socket.socket is the C type under the guarded socket.socket; only localhost is tried
                sock = _socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.settimeout(2)
                sock.connect(("127.0.0.1", {port}))


            def test_only_a_loopback_interface():
                assert [name for _, name in socket.if_nameindex()] == ["lo"]
        """)
        outcomes = {test.name: test.outcome for test in result.tests}
        assert outcomes == {"test_raw_connect_to_localhost": "failed", "test_only_a_loopback_interface": "passed"}, result.output
        assert result.isolation["network_namespace"] is True and result.isolation["pid_namespace"] is True
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


def test_the_environment_is_clean(project, monkeypatch):
    monkeypatch.setenv("UNITUNE_SECRET", "do-not-leak")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "nope")
    real_home = str(Path.home())
    result = run(project, f"""\
        import os
        import site
        import sys
        import tempfile


        def test_nothing_leaks():
            assert "UNITUNE_SECRET" not in os.environ
            assert "AWS_SECRET_ACCESS_KEY" not in os.environ
            assert not any("proxy" in key.lower() for key in os.environ)
            assert os.environ["HOME"] != {real_home!r} and os.path.isdir(os.environ["HOME"])
            assert os.path.expanduser("~") == os.environ["HOME"]
            assert tempfile.gettempdir().startswith(os.path.dirname(os.environ["HOME"]))
            assert os.environ["PYTHONDONTWRITEBYTECODE"] == "1"
            assert not site.ENABLE_USER_SITE
            assert os.getcwd() == os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    """, focal_file=None, focal_lines=None)
    assert result.status == "passed", result.output
    assert result.line_coverage is None and result.branch_coverage is None  # no focal file: nothing measured


def test_the_driver_says_why_it_cannot_start_the_interpreter(tmp_path):
    # Run the driver itself (as the caller, no namespace): its interpreter is not executable.
    config, out = tmp_path / "config.json", tmp_path / "out"
    out.mkdir()
    not_a_program = tmp_path / "python"
    not_a_program.write_text("#!/bin/sh\n")
    os.chmod(not_a_program, 0o644)
    driver = sandbox.programs.write_driver(tmp_path)
    config.write_text(json.dumps({"cwd": str(out), "out": str(out), "python": str(not_a_program), "pytest_args": []}))
    completed = subprocess.run(sandbox.programs.driver_command(sys.executable, driver, config), capture_output=True,
                               text=True, timeout=60)
    assert completed.returncode == 3
    said = f"[unitune sandbox] cannot start the tests' interpreter {not_a_program} as "
    assert said in completed.stdout and "Permission denied" in completed.stdout
    summary = sandbox.SandboxResult(status="error", output=completed.stdout, returncode=3).summary()
    assert "cannot start the tests' interpreter" in summary


def test_folders_the_sandbox_user_may_not_enter_are_covered_and_only_the_needed_paths_bound_back(monkeypatch):
    private = {"/root", "/root/work/private"}
    monkeypatch.setattr(sandbox.isolation, "_enterable", lambda folder, user: folder not in private)
    user = sandbox.isolation.User("nobody", 65534, 65534)
    needed = ["/root/.pyenv/versions/3.11.7", "/root/.pyenv/versions/3.11.7/lib/python3.11", "/root/work",
              "/root/work/private/venv", "/tmp/unitune-sandbox-x", "/usr/lib/python3/dist-packages"]
    assert sandbox.isolation.exposure(needed, user) == [
        ["tmpfs", "/root"],
        ["bind", "/root/work"],  # bound back whole: its private folder is covered again
        ["tmpfs", "/root/work/private"],
        ["bind", "/root/.pyenv/versions/3.11.7"],  # not lib/python3.11 again: it is inside
        ["bind", "/root/work/private/venv"],
    ]
    assert sandbox.isolation.exposure(["/tmp/unitune-sandbox-x", "/usr/lib"], user) == []


# -- an interpreter out of the sandbox user's reach --------------------------------------------

def nobody():
    """`nobody`'s password entry, None where there is none (or no `pwd`: not POSIX)."""
    try:
        import pwd

        return pwd.getpwnam("nobody")
    except (ImportError, KeyError):
        return None


def private_ancestor(path: str) -> Path | None:
    """The first folder on the way to `path` that `nobody` may not enter (no x bit for it), if any."""
    user = nobody()
    for folder in reversed(Path(os.path.realpath(path)).parents):
        mode = folder.stat()
        bits = (0o100 if mode.st_uid == user.pw_uid else 0o010 if mode.st_gid == user.pw_gid else 0o001)
        if not mode.st_mode & bits:
            return folder
    return None


def mount_namespaces() -> bool:
    """Whether this process may make mount namespaces (root with CAP_SYS_ADMIN, util-linux `unshare`)."""
    try:
        return subprocess.run(["unshare", "--mount", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


needs_root_and_namespaces = pytest.mark.skipif(
    os.name != "posix" or os.geteuid() != 0 or nobody() is None or not mount_namespaces(),
    reason="only unitune running as root drops to `nobody`, and showing it an interpreter it cannot reach "
           "needs a mount namespace (CAP_SYS_ADMIN)",
)

#: Run inside: the private folder shows the interpreter and nothing else; no capability to read any file.
SEES_NOTHING_ELSE = """\
    import os

    from tiny.calc import sign


    def test_sign():
        assert sign(2) == "non-negative"


    def test_nothing_else_of_the_private_folder():
        assert not os.path.exists({secret!r})
        with open("/proc/self/status") as status:
            capabilities = dict(line.split(":", 1) for line in status if line.startswith("Cap"))
        assert int(capabilities["CapEff"], 16) == 0 and int(capabilities["CapPrm"], 16) == 0
        if os.path.exists("/etc/shadow"):
            try:
                open("/etc/shadow").close()
            except PermissionError:
                pass
            else:
                raise AssertionError("the tests could read /etc/shadow")
"""


def assert_ran_as_nobody(result) -> None:
    assert result.status == "passed", result.output
    assert result.passed == 2
    assert result.line_coverage == pytest.approx(2 / 3) and result.branch_coverage == pytest.approx(0.5)
    assert result.isolation["user"] == "nobody" and int(result.isolation["capabilities"], 16) == 0


# The interpreter running these tests keeps its files where `nobody` may not go (a pyenv Python under /root).
needs_private_interpreter = pytest.mark.skipif(
    nobody() is None or private_ancestor(sys.executable) is None,
    reason="the interpreter running these tests is within reach of `nobody` (not under /root)")


@pytest.fixture
def private_venv(tmp_path) -> Path:
    """A virtual environment inside a folder only root may enter (as one made from a Python under
    /root would be), with the packages of the interpreter running these tests (pytest, coverage;
    offline: `--system-site-packages` would give the base interpreter's when that is a venv itself).
    Its interpreter is out of `nobody`'s reach unless the sandbox shows it."""
    private = tmp_path / "private"
    private.mkdir()
    os.chmod(private, 0o700)
    venv = private / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    Path(purelib, "outer.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


@pytest.mark.slow
@needs_root_and_namespaces
def test_a_virtual_environment_in_a_private_folder_runs_as_nobody(project, private_venv):
    secret = private_venv.parents[2] / "secret.txt"
    secret.write_text("root's eyes only")
    result = run(project, SEES_NOTHING_ELSE.format(secret=str(secret)), python=private_venv)
    assert_ran_as_nobody(result)
    assert result.isolation["exposed"]  # the venv, bound back into a tmpfs over the private folder


@pytest.mark.slow
@needs_root_and_namespaces
@needs_private_interpreter  # a venv of a Python `nobody` may reach (/usr/bin) starts and runs as it
def test_an_interpreter_nobody_cannot_start_is_an_error_that_says_so(project, private_venv, monkeypatch):
    # The original fault: the run starts, but `nobody` cannot start the interpreter. Nothing shown
    # to it (the plan, made first, passed its check): the run must say why, not "no test ran".
    sandbox.isolation.plan_for(str(private_venv))
    monkeypatch.setattr(sandbox.running, "exposure", lambda paths, user: [])  # what a run shows nobody
    result = run(project, "def test_nothing():\n    pass\n", python=private_venv)
    assert result.status == "error" and not result.tests
    assert "cannot start the tests' interpreter" in result.summary() and "Permission denied" in result.summary()
    assert str(private_venv) in result.output


@needs_root_and_namespaces
@needs_private_interpreter
def test_an_interpreter_under_roots_private_home_runs_as_nobody(project):
    # The machine's own case: a pyenv Python under /root (mode 700).
    secret = private_ancestor(sys.executable) / f"unitune-sandbox-secret-{os.getpid()}.txt"
    try:
        secret.write_text("root's eyes only")
        result = run(project, SEES_NOTHING_ELSE.format(secret=str(secret)), python=sys.executable)
    finally:
        secret.unlink(missing_ok=True)
    assert_ran_as_nobody(result)
    assert any(path.startswith(f"{private_ancestor(sys.executable)}/") for path in result.isolation["exposed"])


# -- validate = "run" in generation --------------------------------------------------------------

def _generate(example_project, trained_base, monkeypatch, **settings):
    from conftest import PY_FOCAL
    from unitune.runtime.loading import ModelSpec
    from unitune.runtime.runtime import ModelRuntime
    from unitune.request import GenerationRequest
    from unitune.generation.service import TestGenerator

    from unitune.settings import Settings
    from unitune.source import SourceFile, cli_offset

    relative, line = PY_FOCAL
    path = example_project / relative
    file = SourceFile.from_path(path)
    options = Settings(model=str(trained_base), validate="run", **settings)
    request = GenerationRequest(path, cli_offset(file, line, None), options, project_root=example_project / "python")
    return TestGenerator(ModelRuntime(ModelSpec.from_settings(options))).generate(request)


@pytest.mark.slow
def test_validate_run_keeps_the_passing_test(example_project, trained_base, monkeypatch):
    before = snapshot(example_project)
    outcome = _generate(example_project, trained_base, monkeypatch)
    assert [test.name for test in outcome.tests] == ["test_deposit", "test_deposit_raises_value_error"]
    assert outcome.tests[0].adds.startswith("covers 3/4 lines, 1/2 branches, kills ")
    assert outcome.tests[1].adds.startswith("covers 2/4 lines, 1/2 branches, kills ")
    assert not any("cannot be run" in note for note in outcome.notes)
    assert snapshot(example_project) == before  # nothing written: the caller applies the plan


@pytest.mark.slow
def test_validate_run_refuses_tests_that_fail(example_project, trained_base, monkeypatch):
    from unitune.errors import GenerationFailed

    # Outside the prompt (bank/__init__.py): deposit is off by one, so the model's test fails.
    (example_project / "python" / "bank" / "__init__.py").write_text(
        "from bank import account as _account\n\n_deposit = _account.Account.deposit\n"
        "_account.Account.deposit = lambda self, amount: _deposit(self, amount) + 1\n"
    )
    with pytest.raises(GenerationFailed) as caught:
        _generate(example_project, trained_base, monkeypatch, repair="none", time_budget=5)
    message = str(caught.value)
    assert "round 1: 1 candidate (greedy), dropped: failed when run" in message and "6 == 5" in message
    assert "nothing was inserted" in message

    # With repair = "observe" (the default) the test records what the code does: a regression oracle.
    outcome = _generate(example_project, trained_base, monkeypatch)
    assert "assert account.deposit(5) == 6" in outcome.tests[0].source
    assert "# expected value observed by running the code (regression oracle)" in outcome.tests[0].source


@pytest.mark.slow
def test_the_run_has_its_own_tmp_and_shm_and_no_host_socket(tmp_path):
    """Writes to /tmp and /dev/shm do not outlive the run; a host socket under /tmp is out of reach."""
    import socket
    import uuid

    marker = f"unitune-leak-{uuid.uuid4().hex}"
    host_socket = f"/tmp/{marker}.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(host_socket)
    os.chmod(host_socket, 0o777)
    server.listen(1)
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_leak.py").write_text(
        "import socket\n\n\ndef test_leak():\n"
        f"    open('/tmp/{marker}', 'w').write('x')\n"
        f"    open('/dev/shm/{marker}', 'w').write('x')\n"
        "    s = socket.socket(socket.AF_UNIX)\n"
        "    try:\n"
        f"        s.connect('{host_socket}')\n"
        "    except OSError:\n"
        "        return\n"
        "    raise AssertionError('reached a host socket')\n")
    try:
        result = run_tests(project, "tests/test_leak.py", timeout=60)
    finally:
        server.close()
        os.unlink(host_socket)
    if not result.isolation.get("private_tmp"):
        pytest.skip("no mount namespace here: /tmp stays shared (documented limit)")
    assert result.status == "passed", result.output
    assert not os.path.exists(f"/tmp/{marker}") and not os.path.exists(f"/dev/shm/{marker}")


@pytest.mark.slow
def test_every_world_writable_place_is_the_runs_own_and_no_host_unix_socket_is_reachable(tmp_path):
    """/var/tmp and /run/lock too: writes there once outlived the run, and a test exchanged bytes with a
    host socket at /var/tmp/x.sock (stream and datagram); an abstract socket is refused as well."""
    import socket
    import uuid

    marker = f"unitune-leak-{uuid.uuid4().hex}"
    places = [place for place in ("/var/tmp", "/run/lock") if os.path.isdir(place) and os.access(place, os.W_OK)]
    servers, paths = [], []
    for place in places:
        for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            path = f"{place}/{marker}-{kind}.sock"
            server = socket.socket(socket.AF_UNIX, kind)
            server.bind(path)
            os.chmod(path, 0o777)
            if kind == socket.SOCK_STREAM:
                server.listen(1)
            servers.append(server)
            paths.append((path, kind))
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    writes = "".join(f"    open('{place}/{marker}', 'w').write('x')\n" for place in places)
    reaches = "".join(
        f"    s = socket.socket(socket.AF_UNIX, {int(kind)})\n"
        "    try:\n"
        + (f"        s.connect('{path}')\n        s.send(b'x')\n" if kind == socket.SOCK_STREAM
           else f"        s.sendto(b'x', '{path}')\n")
        + "    except OSError:\n        pass\n    else:\n"
        f"        raise AssertionError('reached {path}')\n"
        for path, kind in paths)
    (project / "tests" / "test_leak.py").write_text(
        "import socket\n\n\ndef test_leak():\n" + writes + reaches +
        "    s = socket.socket(socket.AF_UNIX)\n"
        "    try:\n        s.connect('\\0unitune-abstract')\n    except PermissionError:\n        pass\n"
        "    else:\n        raise AssertionError('reached an abstract socket')\n")
    try:
        result = run_tests(project, "tests/test_leak.py", timeout=60)
    finally:
        for server in servers:
            server.close()
        for path, _ in paths:
            os.unlink(path)
    assert result.status == "passed", result.output
    if result.isolation.get("private_tmp"):
        assert not any(os.path.exists(f"{place}/{marker}") for place in places)
    else:
        for place in places:
            if os.path.exists(f"{place}/{marker}"):
                os.unlink(f"{place}/{marker}")


@pytest.mark.slow
def test_the_run_sees_only_its_own_processes_in_proc(tmp_path):
    """The host's /proc once showed the tests every process of the machine and its command line."""
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "tests" / "test_peek.py").write_text(
        "import os\n\n\ndef test_peek():\n"
        f"    assert not os.path.exists('/proc/{os.getpid()}/cmdline') or os.getpid() == {os.getpid()}\n"
        "    assert len([name for name in os.listdir('/proc') if name.isdigit()]) < 50\n")
    result = run_tests(project, "tests/test_peek.py", timeout=60)
    if not (result.isolation.get("pid_namespace") and result.isolation.get("private_tmp")):
        pytest.skip("no PID and mount namespaces here: /proc stays the host's (documented limit)")
    assert result.isolation.get("own_proc")
    assert result.status == "passed", result.output
