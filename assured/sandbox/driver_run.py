"""Written by unitune's sandbox beside its driver, which imports it by path (the driver runs with -I:
its folder is not on sys.path). This is the run itself, which the driver starts as a new program
once it has given up its privileges: it reports the isolation it sees and runs pytest under
coverage, in one session or in rounds (for the sandbox's own check, it only shows that it is the
caller's interpreter and imports pytest). Also what both share: how they speak to the caller and
their exit codes. Standard library only."""
import json
import os
import re
import signal
import sys
import time

# exit codes before pytest runs (pytest's own are 0 to 5; unitune's sandbox knows 3 and 6)
CANNOT_START, NO_PYTEST, ANOTHER_PYTHON, CANNOT_BECOME, CANNOT_EXPOSE = 3, 4, 5, 6, 7


def say(message):
    print(f"[unitune sandbox] {message}", flush=True)


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


def project_coverage_off(args):
    """The arguments with the project's own pytest-cov turned off where it is installed: its `--cov` (in
    many projects' addopts) starts a second coverage.py collector, which stops unitune's and ends the
    session with an internal error, and its `--cov-fail-under` fails a run of a few tests. `--no-cov` is
    pytest-cov's own switch (an unknown option where the plugin is not loaded, hence the check)."""
    from importlib.util import find_spec
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") or find_spec("pytest_cov") is None:
        return list(args)
    return [*args, "--no-cov"]


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
        say(f"pytest is not installed for {sys.executable}")
        return NO_PYTEST
    cov = None
    if config.get("coverage_source"):
        try:
            import coverage
        except ImportError:
            say("coverage.py is not installed: coverage is not measured")
        else:
            cov = coverage.Coverage(data_file=os.path.join(out, ".coverage"), branch=True,
                                    source=[config["coverage_source"]], config_file=False)

    code = pytest.main(project_coverage_off(config["pytest_args"]), plugins=[Measure(cov)])
    if cov is not None:
        try:
            cov.save()
            cov.json_report(outfile=os.path.join(out, "coverage.json"), include=[config["coverage_include"]])
        except Exception as error:  # no data, a file that vanished: the run still counts
            say(f"no coverage report: {error}")
    return int(code)


class Rounds:
    """pytest plugin of a round: each test's outcome by node id, a time limit per test, the
    coverage context switched to the test, and the test order reversed when asked."""

    def __init__(self, cov, per_test_timeout, reverse):
        self.cov, self.timeout, self.reverse = cov, per_test_timeout, reverse
        self.outcomes = {}
        self.lines = {}  # node id -> the line of the test file where it failed

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
            line = failing_line(report)
            if line is not None and outcome != "passed":
                self.lines[report.nodeid] = line


def failing_line(report):
    """The line of the test's own file where it failed (the deepest frame in that file), or None."""
    test_path = report.location[0] if report.location else None
    entries = getattr(getattr(report.longrepr, "reprtraceback", None), "reprentries", None) or []
    for entry in reversed(entries):
        place = getattr(entry, "reprfileloc", None)
        if place is not None and test_path and str(place.path).replace(os.sep, "/").endswith(test_path):
            return int(place.lineno)
    return None


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
    warm_up(pytest, config["out"])
    config["pytest_base_args"] = project_coverage_off(config["pytest_base_args"])  # once for every round
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
        elif spec.get("select_failed_of") is not None:
            earlier = passed.get(spec["select_failed_of"], {})
            targets = [nodeid for nodeid in (spec.get("targets") or earlier)
                       if nodeid not in earlier or earlier[nodeid][0] != "passed"]
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
        began = time.monotonic()
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
        seconds = time.monotonic() - began
        try:
            with open(result_path) as handle:
                record = json.load(handle)
            passed[index] = record["outcomes"]
        except (OSError, ValueError, KeyError):
            passed[index] = {}
            record = {"outcomes": {}, "code": os.waitstatus_to_exitcode(status)}
        record["seconds"] = seconds  # the round's own time, fork to exit: where a session's time goes
        with open(result_path, "w") as handle:
            json.dump(record, handle)
    return 0


def warm_up(pytest, out):
    """One pytest session on an empty folder before the rounds fork: what pytest and its plugins import
    only once a session runs (hypothesis's plugin imports hypothesis at the end of each session) is then
    imported here, once, instead of in every round, where it is also rewritten for assertions each time
    (the sandbox's Python writes no bytecode cache): 0.5 s a round against 0.13 with hypothesis installed.
    Nothing of the project is collected; a failure here only costs the time it would have saved."""
    empty = os.path.join(out, "warm-up")
    stdout = sys.stdout
    try:
        os.makedirs(empty, exist_ok=True)
        sys.stdout = open(os.devnull, "w")
        pytest.main(["-q", "-p", "no:cacheprovider", "--collect-only", "--rootdir", empty, empty])
    except BaseException:
        pass
    finally:
        if sys.stdout is not stdout:
            sys.stdout.close()
            sys.stdout = stdout


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
    record = {"outcomes": plugin.outcomes, "lines": plugin.lines, "code": code}
    if cov is not None:
        try:
            cov.save()
            cov.json_report(outfile=os.path.join(out, f"coverage-{index}.json"), include=[config["coverage_include"]])
            data = cov.get_data()
            contexts = {}
            for context in data.measured_contexts():
                if not context:
                    continue
                # coverage.py searches contexts as regular expressions: `test_x` would also match
                # `test_x_2`, and `@1:4` would match `@1:40`, so only the whole name, literally
                data.set_query_contexts(["^" + re.escape(context) + "$"])
                contexts[context] = {"lines": sorted(data.lines(config["coverage_include"]) or ()),
                                     "arcs": sorted(data.arcs(config["coverage_include"]) or ())}
            record["contexts"] = contexts
        except Exception as error:
            say(f"no coverage report: {error}")
    with open(os.path.join(out, f"round-{index}.json"), "w") as handle:
        json.dump(record, handle)
    return code


def child(config, seen):
    """The run: the sandbox's check, or the tests (in rounds when the config has them) after the
    isolation they see is written down. Never returns."""
    if config.get("check"):
        code = check(config["check"])
    else:
        try:
            with open(os.path.join(config["out"], "isolation.json"), "w") as handle:
                json.dump(isolation(seen), handle)
        except OSError:
            pass
        try:
            code = run_rounds(config) if config.get("rounds") else run(config)
        except BaseException:
            import traceback
            traceback.print_exc()
            code = CANNOT_START
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # not waiting for threads or atexit handlers a test left behind

