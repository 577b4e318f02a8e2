"""`unitune generate`: tests for the function at a position, printed or written into its test file.

    unitune generate src/bank/account.py --line 16
    unitune generate src/bank/account.py --line 16 --model ./my-model --adapter team-lora --candidates 4 --write
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from unitune.errors import UnituneError
from unitune.cli_options import add_position, add_setting_flags, setting_overrides
from unitune.progress_line import ProgressLine
from unitune.settings import COMMAND_LINE, load_settings, refuse_bad_flags


def add_generate_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="write unit tests for the function at a position",
        description=(
            "Generate unit tests for the function or method at FILE:LINE[:COLUMN] with the base model and the "
            "project's adapter. Prints the tests; with --write, inserts them into the test file (created if "
            "missing, imports added, names made unique, nothing existing replaced) and prints its path."
        ),
    )
    add_position(parser)
    add_setting_flags(parser)
    parser.add_argument("--project", metavar="DIR", type=Path, help="project root (default: found from FILE)")
    parser.add_argument("--write", action="store_true", help="insert the tests into the test file and print its path")
    parser.add_argument("--json", action="store_true", help="print one JSON object describing the outcome")
    parser.set_defaults(handler=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    """`_generate`, and with `--json` a JSON answer on stdout for every failure too (a missing file, a line
    past the end, a model that cannot load), so a script reading stdout always gets one."""
    try:
        return _generate(args)
    except UnituneError as error:
        if args.json:
            print(json.dumps({"ok": False, "error": str(error), "exit_code": error.exit_code}, indent=2))
        raise


def _generate(args: argparse.Namespace) -> int:
    from unitune.runtime.loading import ModelSpec, quiet_libraries
    from unitune.adapters.registry import selected_adapter
    from unitune.runtime.runtime import runtime_for
    from unitune.assured.delivery import delivery_notes
    from unitune.request import GenerationRequest
    from unitune.generation.service import TestGenerator
    from unitune.insertion import write_insertion
    from unitune.project_layout import find_project_root
    from unitune.source import SourceFile, cli_offset

    quiet_libraries()
    file = SourceFile.from_path(args.file)
    offset = cli_offset(file, args.line, args.column)
    root = args.project.resolve() if args.project else find_project_root(Path(args.file).resolve())
    overrides = setting_overrides(args)
    loaded = load_settings(root, {k: v for k, v in overrides.items() if v is not None}, COMMAND_LINE)
    refuse_bad_flags(loaded)
    for problem in loaded.problems:
        print(f"unitune: {problem}", file=sys.stderr)
    settings = loaded.settings
    named_by = loaded.sources.get("adapter") if args.adapter is None else None  # the file that asked for it
    adapter = selected_adapter(args.adapter if args.adapter is not None else settings.adapter, root, named_by)
    runtime = runtime_for(ModelSpec.from_settings(settings))
    if runtime.served_by.notice:
        print(f"unitune: {runtime.served_by.reason}", file=sys.stderr)
    request = GenerationRequest(Path(args.file).resolve(), offset, settings, text=file.text, project_root=root,
                                adapter=adapter)
    progress = _TerminalProgress() if sys.stderr.isatty() and not args.json else _FirstUseNotice()
    streamed = None if args.json else _DeliveredAsTheyCome(progress, args.write)  # JSON: one answer at the end
    request.on_delivered = streamed
    try:
        outcome = TestGenerator(runtime).generate(request, on_progress=progress)
    except UnituneError:
        progress.done()
        raise
    except KeyboardInterrupt:
        progress.done()
        if streamed is not None and streamed.count:
            print(f"unitune: interrupted; the {streamed.count} test(s) delivered before stay", file=sys.stderr)
        raise
    finally:
        getattr(runtime, "close", lambda: None)()
    progress.done()
    for note in outcome.notes:
        print(f"unitune: {note}", file=sys.stderr)
    if streamed is not None:
        return 0
    for note in delivery_notes(outcome.tests):
        print(f"unitune: {note}", file=sys.stderr)
    written = write_insertion(outcome.insertion) if args.write else None
    record = {"ok": True, **outcome.to_json()}
    record["written"] = str(written) if written else None
    print(json.dumps(record, indent=2, ensure_ascii=False))
    return 0


class _DeliveredAsTheyCome:
    """`request.on_delivered` for the terminal: each group of tests printed (or, with --write, added to the
    test file) the moment it is delivered, what each one adds on stderr; an interrupt keeps them."""

    def __init__(self, progress, write: bool):
        self.progress, self.write = progress, write
        self.count = 0
        self.started = time.perf_counter()

    def __call__(self, outcome) -> None:
        from unitune.assured.delivery import delivery_notes
        from unitune.insertion import write_insertion
        from unitune.source import decode_source, read_source_bytes

        self.progress.done()  # the bar would be torn by what is printed
        first = self.count == 0
        self.count += len(outcome.tests)
        names = ", ".join(test.name for test in outcome.tests)
        print(f"unitune: {'first ' if first else 'more '}test(s) after {time.perf_counter() - self.started:.0f} s: "
              f"{names}", file=sys.stderr, flush=True)
        for note in delivery_notes(outcome.tests):
            print(f"unitune: {note}", file=sys.stderr)
        if self.write:
            path = outcome.insertion.path
            current = decode_source(read_source_bytes(path), str(path)) if path.exists() else None
            written = write_insertion(outcome.replan(current))
            if first:
                print(written, flush=True)
            return
        print(("" if first else "\n") + "\n\n".join(test.source.rstrip("\n") for test in outcome.tests), flush=True)


class _FirstUseNotice:
    """Where stderr is not a terminal: one line when a model is checked or converted on its first use
    (a minute or two of silence would look like a hang), nothing else."""

    def __init__(self):
        self.said: set[str] = set()

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        if "first use" in message and message not in self.said:
            self.said.add(message)
            print(f"unitune: {message}", file=sys.stderr, flush=True)

    def done(self) -> None:
        pass


class _TerminalProgress:
    """The generation's stages as a bar on stderr."""

    def __init__(self) -> None:
        self._line = ProgressLine(percent=True)

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        self._line.update(fraction, 1.0, stage, message)

    def done(self) -> None:
        self._line.close()
