"""`unitune engine`: the engines that can run the model here, and building llama.cpp's server.

    unitune engine install        # build llama.cpp's server once (minutes), with progress
    unitune engine status [--json]
"""

from __future__ import annotations

import argparse
import json
import sys

from unitune.progress_line import ProgressLine


def add_engine_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "engine", help="the engines that run the model here; build llama.cpp's server",
        description=(
            "unitune runs the model with torch in its own process, or with llama.cpp, which runs the shipped GGUF "
            "weights as they are and decodes several times faster on a CPU. The default, engine = \"auto\", uses "
            "llama.cpp on a CPU once its server is built, and torch otherwise and for adapters llama.cpp cannot run "
            "((IA)3, prompt tuning, full fine-tunes). llama.cpp comes as source from the package index and is built "
            "here once, with cmake and a C++ compiler."),
    )
    actions = parser.add_subparsers(dest="engine_command", metavar="ACTION", required=True)
    install = actions.add_parser(
        "install", help="build llama.cpp's server (once, minutes; needs cmake and g++)",
        description=("Download llama.cpp's source (the llama-cpp-python sdist) from the package index and build its "
                     "server into unitune's data folder, once. Safe to run twice: the second run finds it built. "
                     "Without cmake or a C++ compiler it says what to install and exits 0: torch runs the model. "
                     "Exit 1 when a build fails (its output is in the message)."))
    install.add_argument("--quiet", action="store_true", help="no progress (the build's log is kept)")
    install.set_defaults(handler=run_install)
    status = actions.add_parser("status", help="which engine would run the model here, and why")
    status.add_argument("--json", action="store_true", help="print as JSON")
    status.set_defaults(handler=run_status)


def run_install(args: argparse.Namespace) -> int:
    from unitune.runtime.llama_server import build_server, find_server_binary, missing_build_tools

    found = find_server_binary()
    if found:
        print(f"llama.cpp's server is here: {found}")
        return 0
    missing = missing_build_tools()
    if missing:  # not a failure: torch runs the model, as it did; the user learns how to get the faster engine
        print(f"unitune: llama.cpp's server cannot be built here without {' and '.join(missing)} (Debian/Ubuntu: "
              "`sudo apt install cmake g++`, then `unitune engine install` again); torch runs the model meanwhile",
              file=sys.stderr)
        return 0
    line = None if args.quiet else ProgressLine(percent=True)

    def progress(stage: str, done: int, total: int) -> None:
        if line is not None:
            line.update(done, total, stage, "")

    try:
        binary = build_server(progress)
    finally:
        if line is not None:
            line.close()
    print(f"built llama.cpp's server: {binary}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from pathlib import Path

    from unitune.runtime.engines import choose_engine
    from unitune.runtime.llama_server import build_running, engine_folder, find_server_binary, missing_build_tools
    from unitune.runtime.loading import ModelSpec
    from unitune.project_layout import find_project_root
    from unitune.settings import load_settings

    settings = load_settings(find_project_root(Path.cwd())).settings
    choice = choose_engine(ModelSpec.from_settings(settings))
    record = {
        "engine": choice.engine, "reason": choice.reason, "setting": settings.engine,
        "llama_server": str(find_server_binary() or ""), "building": build_running(),
        "build_folder": str(engine_folder()), "missing_build_tools": missing_build_tools(),
    }
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    print(f"engine: {choice.engine} ({choice.reason}); setting engine = {settings.engine}")
    if record["llama_server"]:
        print(f"llama.cpp's server: {record['llama_server']}")
    elif record["building"]:
        print(f"llama.cpp's server is being built into {record['build_folder']}")
    elif record["missing_build_tools"]:
        print(f"llama.cpp's server cannot be built here: {' and '.join(record['missing_build_tools'])} missing")
    else:
        print("llama.cpp's server is not built: `unitune engine install`")
    return 0
