"""llama.cpp's server (`llama-server`) for the end-to-end tests, built as `unitune engine install` builds
it (`unitune.runtime.llama_server`: the llama-cpp-python sdist from the package index, its server target
only), once, into a folder of the tests' own: `$UNITUNE_LLAMA_CACHE`, else
`~/.cache/unitune-tests/llama-server-VERSION/` (tests run with a fresh `UNITUNE_HOME` each). A
`llama-server` on PATH or in `$UNITUNE_LLAMA_SERVER` is used instead when there is one.

    python tests/llama_server.py          # build (or find) it and print its path; about 10 minutes once

`LlamaServer` starts it on a free port with a base GGUF and adapter GGUF files and stops it after.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from unitune.runtime.llama_server import LLAMA_CPP_PYTHON_VERSION as VERSION
from unitune.runtime.llama_server import LlamaServerProcess as LlamaServer  # noqa: F401 - the tests' name for it
from unitune.runtime.llama_server import build_server, find_server_binary


def cache_dir() -> Path:
    configured = os.environ.get("UNITUNE_LLAMA_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "unitune-tests" / f"llama-server-{VERSION}"


def find() -> Path | None:
    return find_server_binary(cache_dir())


def build(log=sys.stderr) -> Path:
    """Find `llama-server`, or build it into the tests' cache. Raises `BuildError` saying what is missing
    (the compiler, cmake, the package index)."""
    said: dict[str, int] = {}

    def progress(stage: str, done: int, total: int) -> None:
        if done // 10 > said.get(stage, -1):  # a line per tenth
            said[stage] = done // 10
            print(f"{stage}: {done}%", file=log, flush=True)

    return build_server(progress, into=cache_dir())


if __name__ == "__main__":
    print(build())
