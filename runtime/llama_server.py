"""llama.cpp's server (`llama-server`) on this machine: the binary, built once, and the process.

**The binary.** No prebuilt llama.cpp for Linux x86-64 comes from the package index, but the sdist of
llama-cpp-python does, with llama.cpp's source inside. `build_server` downloads that sdist through pip
(the package index is the one place this machine may reach), builds only the `llama-server` target
(CPU, no native tuning, so a home folder shared between machines of this kind keeps working) and puts
it into `$UNITUNE_HOME/engines/llama.cpp-VERSION/`, once; a build lock keeps two builds from racing.
It needs cmake and a C++ compiler; `BuildError` says which is missing. A `llama-server` in
`$UNITUNE_LLAMA_SERVER` or on PATH is used instead when there is one.

**The process.** `LlamaServerProcess` starts a command from `unitune.runtime.llama_cpp.server_command`
on a free port of 127.0.0.1, waits until `/health` answers, and stops it (its output kept in a log file).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from unitune.errors import UnituneError
from unitune.logs import get_logger, log_event

log = get_logger("llama_server")

#: llama-cpp-python's version whose sdist holds the llama.cpp that is built.
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
BINARY = "llama-server"
ENGINES_FOLDER = "engines"
BINARY_ENV = "UNITUNE_LLAMA_SERVER"
#: What a build writes as it goes; `unitune doctor` points at it.
BUILD_LOG = "build.log"
#: Seconds a server is given to exit after SIGTERM before it is killed.
STOP_SECONDS = 3.0
#: cmake's "[ 45%] Building CXX object ..." lines: how far the build is.
_PERCENT = re.compile(r"^\[\s*(\d+)%\]")


class BuildError(UnituneError):
    """llama-server could not be built; the message says what is missing."""


class ServerStartError(UnituneError):
    """llama-server did not start; the message holds the end of its log."""


def engine_folder() -> Path:
    from unitune.settings import data_home

    return data_home() / ENGINES_FOLDER / f"llama.cpp-{LLAMA_CPP_PYTHON_VERSION}"


def find_server_binary(folder: Path | None = None) -> Path | None:
    """The llama-server to run: `$UNITUNE_LLAMA_SERVER`, one on PATH, or the one built into `folder`
    (default `engine_folder()`); None when there is none yet."""
    for candidate in (os.environ.get(BINARY_ENV), shutil.which(BINARY), str((folder or engine_folder()) / BINARY)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def missing_build_tools() -> list[str]:
    """What building llama-server needs and this machine lacks."""
    return [tool for tool, found in (("cmake", shutil.which("cmake")),
                                     ("a C++ compiler (g++)", shutil.which("c++") or shutil.which("g++"))) if not found]


def build_running() -> bool:
    """Whether another process holds the build lock now."""
    lock = engine_folder().with_name(engine_folder().name + ".lock")
    if not lock.is_file():
        return False
    with lock.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def build_server(progress: Callable[[str, int, int], None] | None = None, into: Path | None = None) -> Path:
    """Find llama-server, or build it into `into` (default `engine_folder()`; minutes, once).
    `progress(stage, done, total)` hears how far (in percent while compiling). Raises `BuildError`
    saying what is missing."""
    target = into or engine_folder()
    found = find_server_binary(target)
    if found:
        return found
    missing = missing_build_tools()
    if missing:
        raise BuildError(f"building llama.cpp's server needs {' and '.join(missing)}; install them (Debian/Ubuntu: "
                         "`sudo apt install cmake g++`) and run `unitune engine install`, or set engine = \"torch\"")
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.with_name(target.name + ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process building: wait for it, then use what it built
        found = find_server_binary(target)
        if found:
            return found
        return _build(target, progress or (lambda stage, done, total: None))


def _build(target: Path, progress: Callable[[str, int, int], None]) -> Path:
    work = target.with_name(target.name + ".build")
    work.mkdir(parents=True, exist_ok=True)
    log_file = work / BUILD_LOG
    started = time.monotonic()
    log_event(log, "engine.build.start", folder=work, log=log_file)
    with log_file.open("a") as out:
        sdist = next(work.glob("llama_cpp_python-*.tar.gz"), None)
        if sdist is None:
            progress("downloading llama.cpp's source", 0, 100)
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                  f"llama-cpp-python=={LLAMA_CPP_PYTHON_VERSION}", "-d", str(work)], out)
            sdist = next(work.glob("llama_cpp_python-*.tar.gz"), None)
            if sdist is None:
                raise BuildError(f"pip downloaded no llama-cpp-python sdist; see {log_file}")
        source = work / f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}" / "vendor" / "llama.cpp"
        if not source.is_dir():
            progress("unpacking llama.cpp's source", 0, 100)
            with tarfile.open(sdist) as archive:
                _extract(archive, work)
        progress("configuring llama.cpp", 0, 100)
        _run(["cmake", "-S", str(source), "-B", str(work / "build"), "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=OFF",
              "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON",
              "-DBUILD_SHARED_LIBS=OFF"], out)
        _run(["cmake", "--build", str(work / "build"), "--target", BINARY, "-j", str(os.cpu_count() or 2)], out,
             on_line=lambda line: _report_percent(line, progress))
    target.mkdir(parents=True, exist_ok=True)
    partial = target / (BINARY + ".partial")
    shutil.copy2(work / "build" / "bin" / BINARY, partial)
    partial.replace(target / BINARY)  # atomic: a binary that is there is whole
    seconds = time.monotonic() - started
    (target / BUILD_LOG).write_text(log_file.read_text(errors="replace")[-20000:] + f"\nbuilt in {seconds:.0f} s\n")
    shutil.rmtree(work, ignore_errors=True)
    log_event(log, "engine.build.done", binary=target / BINARY, seconds=seconds)
    return target / BINARY


def _report_percent(line: str, progress: Callable[[str, int, int], None]) -> None:
    match = _PERCENT.match(line)
    if match:
        progress("building llama.cpp's server", int(match.group(1)), 100)


def _run(command: list[str], out, on_line: Callable[[str], None] | None = None) -> None:
    print("+ " + " ".join(command), file=out, flush=True)
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as error:
        raise BuildError(f"cannot run {command[0]}: {error}") from None
    tail: list[str] = []
    for line in process.stdout:
        out.write(line)
        tail = (tail + [line])[-40:]
        if on_line:
            on_line(line)
    if process.wait():
        raise BuildError(f"{Path(command[0]).name} failed ({process.returncode}) building llama.cpp's server; "
                         f"the end of its output:\n{''.join(tail)[-3000:]}")


def _extract(archive: tarfile.TarFile, into: Path) -> None:
    """Unpack with the "data" filter where this Python has it (3.11.4, 3.10.12 and later); before that,
    refuse a member that is a link or lands outside `into`, which is what the filter would refuse."""
    if hasattr(tarfile, "data_filter"):
        archive.extractall(into, filter="data")
        return
    root = into.resolve()
    for member in archive.getmembers():
        if member.issym() or member.islnk() or not (root / member.name).resolve().is_relative_to(root):
            raise BuildError(f"{archive.name}: {member.name} would unpack outside {into}")
    archive.extractall(into)


def _prctl():
    """libc's prctl, looked up once here: a child calls it between fork and exec, where loading a
    library could deadlock on a lock another thread held."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the server's process: SIGTERM when unitune's process ends, even killed, so no server is left
    behind holding memory."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LlamaServerProcess:
    """`with LlamaServerProcess(command, log) as server: server.url`: the server started on a free port
    (the command's `--port` value is replaced), waited for until `/health` answers, and stopped."""

    def __init__(self, command: list[str], log_path: Path, startup_seconds: float = 180.0):
        self.port = free_port()
        self.command = [*command]
        self.command[self.command.index("--port") + 1] = str(self.port)
        self.log_path, self.startup_seconds = log_path, startup_seconds
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LlamaServerProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("w") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, start_new_session=True,
                                            preexec_fn=_die_with_parent)
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerStartError(f"llama-server exited ({self.process.returncode}) while starting; "
                                       f"the end of {self.log_path}:\n{self._log_tail()}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            time.sleep(0.1)
        self.stop()
        raise ServerStartError(f"llama-server did not answer in {self.startup_seconds:.0f} s; "
                               f"the end of {self.log_path}:\n{self._log_tail()}")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.running():
            self.process.terminate()
            try:
                # it finishes the request in flight before it exits: a user who stops unitune does not wait for that
                self.process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.is_file() else "(no output)"

    def __enter__(self) -> "LlamaServerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


#: Set to "never" to keep `engine = "auto"` from starting a build (the test suite does).
BUILD_ENV = "UNITUNE_ENGINE_BUILD"


def start_background_build() -> str | None:
    """Start building llama.cpp's server in a detached, lowest-priority process unless one is running,
    this machine lacks the tools, or `UNITUNE_ENGINE_BUILD=never`. What to tell the user, or None."""
    if os.environ.get(BUILD_ENV) == "never" or missing_build_tools():
        return None
    log_file = engine_folder().with_name(engine_folder().name + ".build") / BUILD_LOG
    if build_running():
        return f"llama.cpp's server is being built in the background (log: {log_file}); torch serves meanwhile"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(os.devnull, "rb") as nothing, log_file.open("a") as out:
        process = subprocess.Popen([sys.executable, "-m", "unitune", "engine", "install", "--quiet"], stdin=nothing,
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                   preexec_fn=lambda: os.nice(19))
    log_event(log, "engine.build.background", pid=process.pid, log=log_file)
    return (f"building llama.cpp's server in the background, once (minutes, lowest priority; log: {log_file}); "
            "this request runs on torch, later ones on llama.cpp")
