"""llama.cpp's server (`llama-server`) for the end-to-end tests, from the package index: the sdist of
llama-cpp-python holds llama.cpp's source, and only its `llama-server` target is built (CPU, no
native tuning, so the binary runs on any x86-64 of this kind), once, into a cached folder:
`$UNITUNE_LLAMA_CACHE`, else `~/.cache/unitune-tests/llama-server-VERSION/`. A `llama-server` on PATH
or in `$UNITUNE_LLAMA_SERVER` is used instead when there is one.

    python tests/llama_server.py          # build (or find) it and print its path; about 10 minutes once

`LlamaServer` starts it on a free port with a base GGUF and adapter GGUF files and stops it after.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

VERSION = "0.3.36"  # llama-cpp-python, whose sdist vendors llama.cpp
BINARY = "llama-server"


def cache_dir() -> Path:
    configured = os.environ.get("UNITUNE_LLAMA_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "unitune-tests" / f"llama-server-{VERSION}"


def find() -> Path | None:
    for candidate in (os.environ.get("UNITUNE_LLAMA_SERVER"), shutil.which(BINARY), str(cache_dir() / BINARY)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def build(log=sys.stderr) -> Path:
    """Find `llama-server`, or build it from the sdist into the cache. Raises RuntimeError saying what
    is missing (the compiler, cmake, the package index)."""
    found = find()
    if found:
        return found
    for tool in ("cmake", "c++"):
        if not shutil.which(tool):
            raise RuntimeError(f"building llama-server needs {tool}; install it (Debian: cmake g++)")
    cache = cache_dir()
    work = cache.with_name(cache.name + ".build")
    work.mkdir(parents=True, exist_ok=True)
    sdist = next(work.glob("llama_cpp_python-*.tar.gz"), None)
    if sdist is None:
        _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
              f"llama-cpp-python=={VERSION}", "-d", str(work)], log)
        sdist = next(work.glob("llama_cpp_python-*.tar.gz"))
    source = work / f"llama_cpp_python-{VERSION}" / "vendor" / "llama.cpp"
    if not source.is_dir():
        with tarfile.open(sdist) as archive:
            _extract(archive, work)
    started = time.monotonic()
    _run(["cmake", "-S", str(source), "-B", str(work / "build"), "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=OFF",
          "-DLLAMA_CURL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_SERVER=ON",
          "-DBUILD_SHARED_LIBS=OFF"], log)
    _run(["cmake", "--build", str(work / "build"), "--target", BINARY, "-j", str(os.cpu_count() or 2)], log)
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copy2(work / "build" / "bin" / BINARY, cache / BINARY)
    print(f"built {cache / BINARY} in {time.monotonic() - started:.0f} s", file=log)
    shutil.rmtree(work, ignore_errors=True)
    return cache / BINARY


def _extract(archive: tarfile.TarFile, into: Path) -> None:
    """Unpack with the "data" filter where this Python has it (3.11.4, 3.10.12 and later); before that,
    refuse a member that is a link or lands outside `into`, which is what the filter would refuse."""
    if hasattr(tarfile, "data_filter"):
        archive.extractall(into, filter="data")
        return
    root = into.resolve()
    for member in archive.getmembers():
        if member.issym() or member.islnk() or not (root / member.name).resolve().is_relative_to(root):
            raise RuntimeError(f"{archive.name}: {member.name} would unpack outside {into}")
    archive.extractall(into)


def _run(command: list[str], log) -> None:
    print("+ " + " ".join(command), file=log, flush=True)
    done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode:
        raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{done.stdout[-3000:]}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LlamaServer:
    """`with LlamaServer(command_without_port) as server: server.url`: the server started on a free port,
    waited for until `/health` answers, and stopped (its output kept in `server.log`)."""

    def __init__(self, command: list[str], log: Path, startup_seconds: float = 180.0):
        self.port = free_port()
        self.command = [*command]
        port_at = self.command.index("--port") + 1
        self.command[port_at] = str(self.port)
        self.log, self.startup_seconds = log, startup_seconds
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "LlamaServer":
        self.process = subprocess.Popen(self.command, stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self.process.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"llama-server did not answer in {self.startup_seconds:.0f} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":
    print(build())
