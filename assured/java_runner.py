"""Compiling and running JUnit 5 tests of a Java project in a sandbox: `run_java_tests`.

The project (Maven layout: `src/main/java`, `src/test/java`; else every `.java` file of it) is
copied into a temporary folder, compiled with `javac` against the JUnit Platform console launcher
(`junit-platform-console-standalone.jar`, which holds the Jupiter API, from Debian's `junit5`), and
one test class is run with `java -jar junit-platform-console-standalone.jar`; the XML report gives
the outcome. The containment is `unitune.assured.sandbox`'s, minus what is Python-only:

- a temporary copy, a clean environment (`HOME`, `TMPDIR` and `java.io.tmpdir` inside it);
- limits (`prlimit`: processes, CPU seconds, file size, open files, no core dumps; memory by the
  JVM's `-Xmx` rather than the address space, which a JVM reserves far beyond what it uses);
- its own session and process group, killed at `timeout`, stragglers found by a marker;
- no network where the kernel allows a network namespace (`unshare --net`); there is no
  `sitecustomize`-like guard inside the JVM;
- as root, the compiler and the tests run as `nobody` (`setpriv`), owning only the copy.

With `coverage_of` (the focal class) and JaCoCo installed (Debian: `libjacoco-java`), the sources are
compiled for Java 11 (the class files JaCoCo 0.8.6 reads), each test method runs once more alone
under JaCoCo's agent, and `coverage` gives the focal class's lines each one ran (the analysis is
`java/UnituneCoverage.java`, compiled with the run). Mutation testing is not done for Java.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

from unitune.assured import sandbox

PASSED, FAILED, ERROR, TIMEOUT, COMPILE_ERROR = "passed", "failed", "error", "timeout", "compile_error"
JUNIT_JAR_ENV = "UNITUNE_JUNIT_JAR"
JUNIT_JAR_CANDIDATES = ("/usr/share/java/junit-platform-console-standalone.jar",
                        "/usr/share/java/junit-platform-console-standalone-*.jar",
                        "/usr/share/maven-repo/org/junit/platform/junit-platform-console-standalone/*/*.jar")
JVM_OPTIONS = ("-Xmx512m", "-Xss4m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
               "-Xshare:auto")
MAX_THREADS = 256  # RLIMIT_NPROC counts threads: a JVM starts a few dozen


@dataclass
class JavaResult:
    status: str  # passed, failed, error, timeout or compile_error
    passed: int = 0
    failed: int = 0  # failed or threw
    skipped: int = 0
    output: str = ""  # the compiler's or the launcher's output (head and tail when long)
    duration: float = 0.0  # seconds: compiling and running
    # method name -> (outcome, message, exception type, the failure's text), per run (`repeat`)
    runs: list[dict[str, tuple[str, str, str, str]]] = field(default_factory=list)
    # with `coverage_of`: method name -> {line: (status, branches, covered branches)} of the focal class
    coverage: dict[str, dict[int, tuple[int, int, int]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == PASSED


JACOCO_DIR = Path("/usr/share/java")
JACOCO_JARS = ("org.jacoco.agent.rt.jar", "org.jacoco.core.jar", "asm.jar", "asm-commons.jar", "asm-tree.jar")
COVERAGE_PROGRAM = Path(__file__).resolve().parent / "java" / "UnituneCoverage.java"


def jacoco_jars() -> list[Path] | None:
    """JaCoCo's runtime and core with ASM (Debian's `libjacoco-java`), or None when missing."""
    jars = [JACOCO_DIR / name for name in JACOCO_JARS]
    return jars if all(jar.is_file() for jar in jars) else None


def _agent_jar(folder: Path, jars: list[Path]) -> Path:
    """A jar holding only a manifest that makes JaCoCo's runtime a Java agent (Debian ships it
    without one), its classes and ASM on the agent's class path."""
    import zipfile

    manifest = ("Manifest-Version: 1.0\nPremain-Class: org.jacoco.agent.rt.internal.PreMain\n"
                "Class-Path: " + " ".join(jar.as_uri() for jar in jars) + "\n\n")
    agent = folder / "unitune-jacoco-agent.jar"
    with zipfile.ZipFile(agent, "w") as archive:
        archive.writestr("META-INF/MANIFEST.MF", manifest)
    return agent


def junit_jar() -> Path | None:
    """The JUnit Platform console launcher (standalone) jar: `$UNITUNE_JUNIT_JAR`, else Debian's."""
    candidates = [os.environ[JUNIT_JAR_ENV]] if os.environ.get(JUNIT_JAR_ENV) else []
    for pattern in JUNIT_JAR_CANDIDATES:
        candidates.extend(sorted(glob.glob(pattern)))
    return next((Path(c) for c in candidates if Path(c).is_file()), None)


def java_available() -> str | None:
    """None when Java tests can run here; else why not (one line)."""
    missing = [tool for tool in ("javac", "java") if shutil.which(tool) is None]
    if missing:
        return (f"{' and '.join(missing)} not found: Java tests need a JDK (Debian: apt-get install "
                "default-jdk-headless junit5)")
    if junit_jar() is None:
        return ("the JUnit 5 console launcher (junit-platform-console-standalone.jar) was not found: "
                f"apt-get install junit5, or set {JUNIT_JAR_ENV} to its path")
    return None


def java_test_class(test_rel: str, test_text: str) -> str:
    """The test class's fully qualified name: the file's package and its name."""
    package = re.search(r"^\s*package\s+([\w.]+)\s*;", test_text, flags=re.MULTILINE)
    name = Path(test_rel).stem
    return f"{package.group(1)}.{name}" if package else name


def run_java_tests(project_dir: str | os.PathLike, test_class_fqn: str, timeout: float = 60,
                   extra_files: Mapping[str, str] | None = None, methods: Sequence[str] | None = None,
                   network: bool = False, repeat: int = 1, coverage_of: str | None = None) -> JavaResult:
    """Compile the project's Java sources (and `extra_files`, relative path -> text, written over
    them) and run the JUnit 5 test class `test_class_fqn` (only `methods` of it, when given),
    `repeat` times after one compilation; `runs` holds each run's outcome per test method, the
    counts and status are the first run's. `timeout` bounds everything together. Raises
    `SandboxError` when Java or JUnit is missing or the paths are wrong."""
    reason = java_available()
    if reason:
        raise sandbox.SandboxError(reason)
    root = Path(project_dir).resolve()
    if not root.is_dir():
        raise sandbox.SandboxError(f"{root}: not a folder")
    work = Path(tempfile.mkdtemp(prefix="unitune-java-"))
    try:
        return _run_in(work, root, test_class_fqn, timeout, extra_files or {}, methods, network, max(1, repeat),
                       coverage_of if jacoco_jars() else None)
    finally:
        sandbox.workspace.remove_tree(work)


def _run_in(work: Path, root: Path, test_class: str, timeout: float, extra_files, methods, network,
            repeat: int = 1, coverage_of: str | None = None) -> JavaResult:
    started = time.monotonic()
    copy, classes, out, home, tmp = (work / name for name in ("project", "classes", "out", "home", "tmp"))
    sandbox.copy_project(root, copy)
    for relative, text in extra_files.items():
        target = copy / sandbox.workspace.relative_path(relative, "extra file")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    for folder in (classes, out, home, tmp):
        folder.mkdir()
    trees = [copy / "src" / kind / "java" for kind in ("main", "test")]
    trees = [tree for tree in trees if tree.is_dir()] or [copy]
    sources = sorted(str(path) for tree in trees for path in tree.rglob("*.java"))
    if not sources:
        raise sandbox.SandboxError(f"{root}: no Java source to compile")
    (work / "sources.txt").write_text("\n".join(f'"{s}"' for s in sources) + "\n", encoding="utf-8")

    plan = sandbox.isolation.plan_for(sys.executable)
    uid = os.geteuid()
    if plan.user is not None and plan.drop_prefix:
        uid = plan.user.uid
        os.chmod(work, 0o711)
        os.chmod(work / "sources.txt", 0o644)
        for folder in (copy, classes, out, home, tmp):
            sandbox.workspace.chown_tree(folder, plan.user.uid, plan.user.gid)
    jar = str(junit_jar())
    jvm = [*JVM_OPTIONS, f"-Djava.io.tmpdir={tmp}", f"-Duser.home={home}"]
    release = ["--release", "11"] if coverage_of else []
    javac = ["javac", *(f"-J{option}" for option in jvm), "-proc:none", "-nowarn", "-encoding", "UTF-8", *release,
             "-g", "-d", str(classes), "-cp", jar, f"@{work / 'sources.txt'}"]
    code, output, timed_out = _spawn(javac, copy, home, tmp, plan, uid, timeout, network, work / "javac.log")
    if timed_out:
        return JavaResult(TIMEOUT, output=output + f"\n[unitune] compiling timed out after {timeout:g}s",
                          duration=time.monotonic() - started)
    if code != 0:
        return JavaResult(COMPILE_ERROR, output=output, duration=time.monotonic() - started)

    selectors = ([f"--select-method={test_class}#{m}" for m in methods] if methods
                 else [f"--select-class={test_class}"])
    launcher = ["java", *jvm, "-jar", jar, "--disable-banner", "--disable-ansi-colors", "--details=tree",
                "--include-engine=junit-jupiter",
                f"--class-path={classes}", *selectors, f"--reports-dir={out}"]
    remaining = max(1.0, timeout - (time.monotonic() - started))
    code, output, timed_out = _spawn(launcher, copy, home, tmp, plan, uid, remaining, network, work / "junit.log")
    result = JavaResult(ERROR, output=output, duration=time.monotonic() - started)
    _read_report(out, result)
    result.runs.append(_read_cases(out))
    for run in range(1, repeat):
        if timed_out:
            break
        again = out.parent / f"out-{run}"
        again.mkdir()
        if plan.user is not None and plan.drop_prefix:
            sandbox.workspace.chown_tree(again, plan.user.uid, plan.user.gid)
        remaining = max(1.0, timeout - (time.monotonic() - started))
        rerun = [arg if not arg.startswith("--reports-dir=") else f"--reports-dir={again}" for arg in launcher]
        _, _, timed_out = _spawn(rerun, copy, home, tmp, plan, uid, remaining, network, work / f"junit-{run}.log")
        result.runs.append(_read_cases(again))
    if coverage_of and not timed_out and methods:
        remaining = max(1.0, timeout - (time.monotonic() - started))
        result.coverage = _coverage(work, copy, classes, launcher, jvm, methods, test_class, coverage_of, plan, uid,
                                    remaining, network)
    result.duration = time.monotonic() - started
    if timed_out:
        result.status = TIMEOUT
        result.output = sandbox.results.truncate(output + f"\n[unitune] timed out after {timeout:g}s; every process of the run was killed\n")
    elif result.failed:
        result.status = FAILED
    elif result.passed and code == 0:
        result.status = PASSED
    return result  # else ERROR: no test ran (none found, the launcher failed)


def _spawn(command, cwd: Path, home: Path, tmp: Path, plan, uid: int, timeout: float, network: bool,
           log_path: Path) -> tuple[int, str, bool]:
    """Run `command` contained (namespaces, another user, limits, its own process group killed at
    `timeout`): (return code, output, timed out)."""
    token = secrets.token_hex(8)
    java_bin = Path(os.path.realpath(shutil.which(command[0]) or command[0])).parent
    env = {"PATH": os.pathsep.join(dict.fromkeys([str(java_bin), "/usr/local/bin", "/usr/bin", "/bin"])),
           "HOME": str(home), "TMPDIR": str(tmp), "LANG": "C.UTF-8", "NO_COLOR": "1",
           "USER": plan.user.name if plan.user and plan.drop_prefix else sandbox.isolation.current_user(),
           "MALLOC_ARENA_MAX": "2", sandbox.isolation.ENV_MARKER: token, **sandbox.isolation.passed_through()}
    prefix = list(plan.namespace_prefix if not network else plan.namespace_prefix_with_network)
    drop = list(plan.drop_prefix) if plan.user is not None else []
    limits = [limit for limit in sandbox.isolation.run_limits(timeout, 1 << 20, MAX_THREADS + sandbox.isolation.task_count(uid))
              if limit[0] != "RLIMIT_AS"]
    full = [*prefix, *drop, *command]
    if plan.prlimit:
        full = sandbox.isolation.prlimit_prefix(plan.prlimit, limits) + full
    with open(log_path, "wb") as log:
        process = subprocess.Popen(full, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        timed_out = not sandbox.running.wait_exited(process.pid, timeout)
        sandbox.running.kill_group(process.pid)
        code = process.wait()
    sandbox.running.kill_stragglers(token, uid)
    return code, sandbox.results.read_output(log_path), timed_out


def _coverage(work, copy, classes, launcher, jvm, methods, test_class, focal_class, plan, uid, timeout, network):
    """Each test method alone under JaCoCo's agent, then the focal class's lines per method."""
    import json

    started = time.monotonic()
    jars = jacoco_jars()
    agent = _agent_jar(work, jars)
    tool = work / "coverage-tool"
    tool.mkdir()
    shutil.copy(COVERAGE_PROGRAM, tool / COVERAGE_PROGRAM.name)
    os.chmod(agent, 0o644)
    if plan.user is not None and plan.drop_prefix:
        sandbox.workspace.chown_tree(tool, plan.user.uid, plan.user.gid)
    tool_cp = os.pathsep.join(str(jar) for jar in jars)
    code, output, _ = _spawn(["javac", *(f"-J{o}" for o in jvm), "-nowarn", "-cp", tool_cp, "-d", str(tool),
                              str(tool / COVERAGE_PROGRAM.name)], copy, work / "home", work / "tmp", plan, uid,
                             timeout, network, work / "coverage-javac.log")
    if code != 0:
        return {}
    execs = []
    for method in methods:
        remaining = timeout - (time.monotonic() - started)
        if remaining <= 1:
            break
        exec_file = work / "out" / f"jacoco-{method}.exec"
        command = [launcher[0], f"-javaagent:{agent}=destfile={exec_file},includes={focal_class},output=file",
                   *launcher[1:]]
        command = [arg for arg in command if not arg.startswith(("--select-method=", "--select-class=", "--reports-dir="))]
        command += [f"--select-method={test_class}#{method}", f"--reports-dir={work / 'out' / ('cov-' + method)}"]
        _spawn(command, copy, work / "home", work / "tmp", plan, uid, remaining, network, work / f"cov-{method}.log")
        execs.append((method, exec_file))
    remaining = max(1.0, timeout - (time.monotonic() - started))
    analyze = ["java", *jvm, "-cp", os.pathsep.join([str(tool), tool_cp]), "UnituneCoverage", str(classes),
               focal_class.replace(".", "/"), *(str(path) for _, path in execs)]
    code, output, _ = _spawn(analyze, copy, work / "home", work / "tmp", plan, uid, remaining, network,
                             work / "coverage.log")
    by_exec = {}
    for line in output.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        by_exec[record.get("exec")] = {int(k): tuple(v) for k, v in (record.get("lines") or {}).items()}
    return {method: by_exec.get(path.name, {}) for method, path in execs}


def _read_cases(out: Path) -> dict[str, tuple[str, str, str, str]]:
    """Each test method's (outcome, message, exception type, failure text) from a run's XML reports."""
    cases: dict[str, tuple[str, str, str, str]] = {}
    for report in sorted(out.glob("TEST-*.xml")):
        try:
            tree = ElementTree.parse(report)
        except (ElementTree.ParseError, OSError):
            continue
        for case in tree.iter("testcase"):
            name = (case.get("name") or "").split("(")[0]
            problem = case.find("failure")
            if problem is None:
                problem = case.find("error")
            if case.find("skipped") is not None:
                cases[name] = ("skipped", "", "", "")
            elif problem is not None:
                cases[name] = (FAILED, problem.get("message") or "", problem.get("type") or "", (problem.text or "")[:4000])
            else:
                cases[name] = (PASSED, "", "", "")
    return cases


def _read_report(out: Path, result: JavaResult) -> None:
    for report in sorted(out.glob("TEST-*.xml")):
        try:
            tree = ElementTree.parse(report)
        except (ElementTree.ParseError, OSError):
            continue
        for case in tree.iter("testcase"):
            if case.find("skipped") is not None:
                result.skipped += 1
            elif case.find("failure") is not None or case.find("error") is not None:
                result.failed += 1
            else:
                result.passed += 1
