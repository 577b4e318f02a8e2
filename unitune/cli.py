"""The `unitune` command line.

Usage examples:

    unitune focal src/shop/cart.py --line 42 --json
    unitune focal src/main/java/shop/Cart.java --line 17 --column 9 --context fm+fc

Each subcommand lives in a small `_cmd_*` function; subcommands that need the model runtime or the
training code import it lazily, so `unitune focal` and `unitune --help` start without torch.
Errors are unitune's own exception types, turned into one line on stderr and an exit code:
1 when the request is well formed but there is nothing to do (no function at the position),
2 for bad input (a missing, binary or unsupported file, a line past the end, a bad option value).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from unitune import __version__
from unitune.errors import UnituneError


class BadTcpAddress(UnituneError):
    exit_code = 2

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def _cmd_focal(args: argparse.Namespace) -> int:
    from pathlib import Path

    from unitune.cli_options import setting_overrides
    from unitune.context import parse_context_level, render_context
    from unitune.focal import require_focal_at
    from unitune.project_layout import find_project_root
    from unitune.settings import COMMAND_LINE, load_settings, refuse_bad_flags
    from unitune.source import SourceFile, cli_offset

    file = SourceFile.from_path(args.file)
    # the project's `context` setting, as `generate` would use it, unless --context says otherwise
    loaded = load_settings(find_project_root(Path(args.file).resolve()), setting_overrides(args, ["context"]),
                           COMMAND_LINE)
    refuse_bad_flags(loaded)
    level = parse_context_level(loaded.settings.context)
    function = require_focal_at(file, cli_offset(file, args.line, args.column))
    context = render_context(file, function, level)
    if args.json:
        record = function.to_json(file)
        record["context"] = context
        print(json.dumps(record, ensure_ascii=False, indent=2))
    else:
        print(f"{function.qualified_name} ({function.kind}, lines {function.start_line}-{function.end_line})")
        print()
        print(context)
    return EXIT_OK


def _add_focal(subparsers) -> None:
    from unitune.cli_options import add_position, add_setting_flags

    parser = subparsers.add_parser(
        "focal",
        help="show the function or method at a position and the context a prompt gives it",
        description=(
            "Find the focal method at FILE:LINE[:COLUMN]: the innermost top-level function, method or "
            "constructor there (a closure, lambda or anonymous-class method resolves to the function "
            "around it), and render its context. Exit 1 when no function is there, 2 for a bad file "
            "or position."
        ),
    )
    add_position(parser)
    add_setting_flags(parser, ["context"])
    parser.add_argument(
        "--json", action="store_true",
        help="print one JSON object: language, name, qualified_name, class_name, start_line, end_line, source, context",
    )
    parser.set_defaults(handler=_cmd_focal)


def _add_adapters(subparsers) -> None:
    from unitune.commands.adapters import add_parser

    add_parser(subparsers)


def _add_generate(subparsers) -> None:
    from unitune.commands.generate import add_generate_parser

    add_generate_parser(subparsers)


def _cmd_serve(args: argparse.Namespace) -> int:
    from unitune.logs import configure
    from unitune.settings import data_home

    log_file = args.log_file or data_home() / "logs" / "server.log"
    configure(verbose=False, file=log_file)
    from unitune.server.server import create_server

    server = create_server()
    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        if not host or not port.isdigit():
            raise BadTcpAddress(f"--tcp takes HOST:PORT, e.g. 127.0.0.1:2087; got {args.tcp!r}")
        server.start_tcp(host, int(port))
    else:
        server.start_io()
    return server.exit_code


def _add_serve(subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the language server (stdio; --tcp HOST:PORT for debugging)",
        description=(
            "Run unitune's language server for an editor: the code action \"Generate unit tests\" and the "
            "commands unitune.generateTests, listAdapters, selectAdapter, trainAdapter and status. It talks on "
            "stdin/stdout unless --tcp is given, and logs to the data directory's logs/server.log."
        ),
    )
    transport = parser.add_mutually_exclusive_group()
    transport.add_argument("--tcp", metavar="HOST:PORT", help="listen on a TCP port instead of stdio (for debugging)")
    # Language clients (vscode-languageclient's stdio transport, others) add --stdio: accept it.
    transport.add_argument("--stdio", action="store_true", help="talk over stdin/stdout (the default)")
    parser.add_argument("--log-file", metavar="FILE", help="where to log (default: <data dir>/logs/server.log)")
    parser.set_defaults(handler=_cmd_serve)


def _add_mine(subparsers) -> None:
    from unitune.commands.mine import add_mine_parser

    add_mine_parser(subparsers)


def _add_train(subparsers) -> None:
    from unitune.commands.train import add_train_parser

    add_train_parser(subparsers)


def _add_pretrain(subparsers) -> None:
    from unitune.commands.pretrain import add_pretrain_parser

    add_pretrain_parser(subparsers)


def _add_score(subparsers) -> None:
    from unitune.commands.score import add_score_parser

    add_score_parser(subparsers)


def _add_eval(subparsers) -> None:
    from unitune.commands.eval import add_eval_parser

    add_eval_parser(subparsers)


def _add_engine(subparsers) -> None:
    from unitune.commands.engine import add_engine_parser

    add_engine_parser(subparsers)


def _add_doctor(subparsers) -> None:
    from unitune.commands.doctor import add_doctor_parser

    add_doctor_parser(subparsers)


#: Subcommand registrars, in the order `--help` lists them.
SUBCOMMANDS: list[Callable] = [
    _add_focal, _add_generate, _add_adapters, _add_mine, _add_train, _add_pretrain, _add_score, _add_eval,
    _add_serve, _add_engine, _add_doctor,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="unitune",
        description=(
            "Unit tests for the function under your cursor, written by a local code model tuned on "
            "your repository. Run `unitune COMMAND --help` for each command."
        ),
    )
    parser.add_argument("--version", action="version", version=f"unitune {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens (with request ids) to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in SUBCOMMANDS:
        register(subparsers)
    _verbose_everywhere(parser)
    return parser


def _verbose_everywhere(parser: argparse.ArgumentParser) -> None:
    """`-v` after any (sub)command too: `unitune generate FILE --line 3 -v`. SUPPRESS keeps a `-v`
    given before the command when the subcommand's own is absent."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                if not any("-v" in a.option_strings for a in sub._actions):
                    sub.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                     help="log what happens (with request ids) to stderr")
                _verbose_everywhere(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_BAD_INPUT
    from unitune.logs import configure

    configure(verbose=args.verbose)
    try:
        return args.handler(args)
    except UnituneError as error:
        from unitune.terminal import printable

        # a message may quote a name read from a file (an archive member, a card field): escaped
        print(f"unitune: {printable(str(error), keep_newlines=True)}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("unitune: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `unitune ... | head`
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
