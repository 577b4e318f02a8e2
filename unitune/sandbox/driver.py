"""Written by unitune's sandbox. The first process (PID 1 of the run's PID namespace, where there is
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


if __name__ == "__main__":
    main()
