"""`unitune adapters`: list, show, pick, remove, export, import and publish adapters (and serve them
with llama.cpp).

    unitune adapters list [--json]
    unitune adapters show NAME [--json]
    unitune adapters use NAME [--project DIR]
    unitune adapters remove NAME
    unitune adapters export NAME FILE            (FILE.gguf: a LoRA adapter for llama.cpp)
    unitune adapters import FILE [--name N] [--project [DIR]] [--overwrite]
    unitune adapters publish NAME --server URL [--kind vllm|llamacpp] [--server-path DIR] [--gguf-dir DIR]
    unitune adapters llama-server [NAME ...] [--port P] [--host H] [--gguf-dir DIR]

Registering the parser is cheap: the registry is imported only when a subcommand runs, and nothing
here imports torch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from unitune.adapters import constants as c
from unitune.terminal import printable



def _say(text: object = "", *, layout: bool = False) -> None:
    """Print a line of what the registry holds. Names, card fields and paths come from files anyone may
    have written: their control characters are shown as escapes (a card's fields once retitled and
    cleared the terminal). `layout`: the text's line breaks are unitune's own (indented JSON)."""
    print(printable(str(text), keep_newlines=layout))

def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "adapters",
        help="list, show, pick, remove, export, import and publish adapters",
        description=(
            "Adapters live in <project>/.unitune/adapters/ (searched first, shareable with a team) and "
            "$UNITUNE_HOME/adapters/. Exit 2 for a bad name, a missing or damaged adapter, or a bad archive."
        ),
    )
    parser.set_defaults(handler=lambda args: _help(parser))
    commands = parser.add_subparsers(dest="adapters_command", metavar="COMMAND")

    project = argparse.ArgumentParser(add_help=False)
    project.add_argument(
        "--project", metavar="DIR",
        help="the project whose store and settings to use (default: the project around the current folder)",
    )

    listing = commands.add_parser("list", parents=[project], help="the adapters of both stores")
    listing.add_argument("--json", action="store_true", help="print a JSON array, one object per adapter")
    listing.set_defaults(handler=_cmd_list)

    show = commands.add_parser("show", parents=[project], help="an adapter's card")
    show.add_argument("name", metavar="NAME", help="adapter name or folder")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    show.set_defaults(handler=_cmd_show)

    use = commands.add_parser("use", parents=[project], help="make the project use an adapter")
    use.add_argument("name", metavar="NAME", help="adapter name or folder")
    use.set_defaults(handler=_cmd_use)

    remove = commands.add_parser("remove", parents=[project], help="delete an adapter (project store first)")
    remove.add_argument("name", metavar="NAME")
    remove.set_defaults(handler=_cmd_remove)

    export = commands.add_parser(
        "export", parents=[project], help="write an adapter to one .tar.gz file (or a LoRA one to GGUF)",
        description="Write an adapter to one archive that `unitune adapters import` installs elsewhere; a FILE "
                    "ending in .gguf gets a LoRA adapter as the GGUF file llama.cpp loads with --lora.")
    export.add_argument("name", metavar="NAME", help="adapter name or folder")
    export.add_argument("file", metavar="FILE", help=f"archive to write (a folder gets NAME{c.ARCHIVE_SUFFIX}), "
                                                     "or NAME.gguf for llama.cpp")
    export.set_defaults(handler=_cmd_export)

    imported = commands.add_parser("import", help="install an adapter from an exported archive")
    imported.add_argument("file", metavar="FILE", help="a .tar.gz made by `unitune adapters export`")
    imported.add_argument("--name", metavar="N", help="install under this name instead of the archive's")
    imported.add_argument(
        "--project", nargs="?", const="", metavar="DIR",
        help="install into the project store (of DIR, or of the current project) instead of the user store",
    )
    imported.add_argument("--overwrite", action="store_true", help="replace an adapter of the same name")
    imported.set_defaults(handler=_cmd_import)

    publish = commands.add_parser(
        "publish", parents=[project], help="put a LoRA adapter on an inference server (vLLM, llama.cpp)",
        description=(
            "Load a LoRA adapter of the registry into a running vLLM server (POST /v1/load_lora_adapter; start "
            "the server with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora), after checking that the "
            "server's base model is the adapter's. Requests with server_url = URL and this adapter then use it. "
            "For llama.cpp's server, which loads adapters only when it starts, the adapter is converted to "
            "NAME.gguf and the command that restarts the server with it is printed."),
    )
    publish.add_argument("name", metavar="NAME", help="adapter name or folder")
    publish.add_argument("--server", metavar="URL", required=True, help="the server's address, e.g. http://gpu-box:8000")
    publish.add_argument("--kind", choices=("vllm", "llamacpp"), help="what the server is (default: asked of it)")
    publish.add_argument("--server-path", metavar="DIR",
                         help="the adapter's folder as the server's machine sees it (default: its folder here)")
    publish.add_argument("--gguf-dir", metavar="DIR", type=Path,
                         help="llama.cpp: where to write the adapter as NAME.gguf (default: $UNITUNE_HOME/gguf)")
    publish.set_defaults(handler=_cmd_publish)

    llama = commands.add_parser(
        "llama-server", parents=[project], help="write the model and LoRA adapters as GGUF and print llama.cpp's command",
        description=(
            "Write the `model` setting's model (the built-in one's installed GGUF, joined once) and each named LoRA "
            "adapter as GGUF files, and print the llama-server command that serves them all, each adapter loaded but "
            "applied only to the requests that name it. Point server_url at it; `publish` adds adapters later."),
    )
    llama.add_argument("names", nargs="*", metavar="NAME", help="LoRA adapters to serve (names or folders)")
    llama.add_argument("--port", type=int, default=8080, help="the port to listen on (default 8080)")
    llama.add_argument("--host", default="127.0.0.1",
                       help="the address to bind (default 127.0.0.1; 0.0.0.0 to serve a team)")
    llama.add_argument("--gguf-dir", metavar="DIR", type=Path,
                       help="where to write the adapters as NAME.gguf (default: $UNITUNE_HOME/gguf)")
    llama.set_defaults(handler=_cmd_llama_server)


def _help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _project_root(value: str | None) -> Path:
    from unitune.adapters.errors import AdapterError
    from unitune.project_layout import find_project_root

    if not value:
        return find_project_root(Path.cwd())
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise AdapterError(f"--project {value}: no such folder; give the project's root folder")
    return folder.resolve()


def _registry(args: argparse.Namespace):
    from unitune.adapters.registry import AdapterRegistry

    return AdapterRegistry(_project_root(getattr(args, "project", None)))


def _project_model(args: argparse.Namespace) -> str:
    """The `model` setting of the project the command is about (the base an adapter's GGUF is named for)."""
    from unitune.settings import load_settings

    return load_settings(_project_root(args.project)).settings.model


def _disk_errors(function):
    """Turn a failing disk operation into a one-line error instead of a traceback."""
    def run(args: argparse.Namespace) -> int:
        from unitune.adapters.errors import AdapterError

        try:
            return function(args)
        except OSError as error:
            where = f" ({error.filename})" if error.filename else ""
            raise AdapterError(f"{error.strerror or error}{where}; check the path, its permissions and free space") from None
    return run


@_disk_errors
def _cmd_list(args: argparse.Namespace) -> int:
    entries = _registry(args).list()
    if args.json:
        _say(json.dumps([entry.to_dict() for entry in entries], indent=2, ensure_ascii=False), layout=True)
        return 0
    if not entries:
        _say("no adapters yet; train one with `unitune train REPO --method lora --name NAME`")
        return 0
    rows = [("NAME", "METHOD", "STORE", "BASE MODEL", "LANGUAGES", "CREATED")]
    for entry in entries:
        card = entry.card
        store = entry.store + (" (shadowed)" if entry.shadowed else "")
        rows.append(tuple(printable(cell) for cell in (  # escaped before the widths are measured
            entry.name + ("  [broken]" if entry.problems else ""),
            entry.method or "?",
            store,
            card.base_model.id if card else "?",
            ", ".join(card.languages) if card and card.languages else "-",
            card.created if card and card.created else "-",
        )))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        _say("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    for entry in entries:
        for problem in entry.problems:
            _say(f"! {entry.name}: {problem}")
    return 0


@_disk_errors
def _cmd_show(args: argparse.Namespace) -> int:
    entry = _registry(args).find(args.name)
    if args.json:
        _say(json.dumps(entry.to_dict(), indent=2, ensure_ascii=False), layout=True)
        return 0
    _say(f"{entry.name}  ({entry.store}: {entry.path})")
    if entry.card is not None:
        card = entry.card
        _say(f"method:         {card.method}")
        _say(f"base model:     {card.base_model.id}")
        if card.base_model.revision:
            _say(f"  revision:     {card.base_model.revision}")
        if card.base_model.weights_hash:
            _say(f"  weights hash: {card.base_model.weights_hash}")
        _say(f"prompt format:  {card.prompt_format_version}")
        _say(f"languages:      {', '.join(card.languages) or '-'}")
        _say(f"created:        {card.created or '-'} (unitune {card.unitune_version or '?'})")
        if card.library_versions:
            _say("libraries:      " + ", ".join(f"{k} {v}" for k, v in sorted(card.library_versions.items())))
        for title, table in (("training", card.training), ("metrics", card.metrics)):
            if table:
                _say(f"{title}:")
                for key, value in table.items():
                    shown = json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value
                    _say(f"  {key}: {shown}")
    if entry.problems:  # shown above as far as readable; the damage is the error
        from unitune.adapters.errors import CorruptAdapterError

        raise CorruptAdapterError(entry.problems[0])
    return 0


@_disk_errors
def _cmd_use(args: argparse.Namespace) -> int:
    registry = _registry(args)
    written = registry.use(args.name, registry.project_root)
    _say(f"{registry.project_root} now uses adapter {args.name!r} (recorded in {written})")
    return 0


@_disk_errors
def _cmd_remove(args: argparse.Namespace) -> int:
    entry = _registry(args).remove(args.name)
    _say(f"removed adapter {entry.name!r} from the {entry.store} store ({entry.path})")
    return 0


@_disk_errors
def _cmd_export(args: argparse.Namespace) -> int:
    if str(args.file).lower().endswith(".gguf"):
        from unitune.runtime.llama_cpp import lora_to_gguf

        _say(lora_to_gguf(_registry(args).find_verified(args.name), Path(args.file), _project_model(args)))
        return 0
    written = _registry(args).export(args.name, args.file)
    _say(written)
    return 0


@_disk_errors
def _cmd_import(args: argparse.Namespace) -> int:
    from unitune.adapters.registry import AdapterRegistry

    into_project = args.project is not None
    registry = AdapterRegistry(_project_root(args.project) if into_project else None)
    store = c.STORE_PROJECT if into_project else c.STORE_USER
    entry = registry.import_archive(args.file, store=store, name=args.name, overwrite=args.overwrite)
    _say(f"imported adapter {entry.name!r} into the {entry.store} store ({entry.path})")
    return 0


@_disk_errors
def _cmd_publish(args: argparse.Namespace) -> int:
    from unitune.runtime.publish import publish_adapter
    from unitune.runtime.served_models import LLAMA_CPP
    from unitune.errors import BadSettingError
    from unitune.settings import validate

    problems: list[str] = []
    server_url = validate({"server_url": args.server}, "--server", problems).get("server_url")
    if problems:
        raise BadSettingError(problems[0].split(";")[0])
    entry = _registry(args).find_verified(args.name)
    published = publish_adapter(entry, server_url, args.kind, args.server_path, gguf_dir=args.gguf_dir,
                                model=_project_model(args))
    if published.restart_command:
        import shlex

        _say(f"wrote adapter {published.name!r} for llama.cpp to {published.lora_path}. llama.cpp's server loads "
              f"adapters only when it starts: restart the server at {published.server_url} with it (its other "
              f"adapters kept):\n  {shlex.join(published.restart_command)}\nthen generate with server_url = "
              f"\"{published.server_url}\" and adapter = \"{published.name}\"", layout=True)  # its lines are ours
        return 0
    if published.kind == LLAMA_CPP:
        _say(f"adapter {published.name!r} is on the llama.cpp server at {published.server_url} (its file "
              f"{published.lora_path}, written again; a server started before the adapter was last trained holds the "
              f"old one until it restarts); generate with it: server_url = \"{published.server_url}\" and adapter = "
              f"\"{published.name}\"")
        return 0
    _say(f"{'replaced' if published.replaced else 'published'} adapter {published.name!r} on {published.server_url} "
          f"(read by the server from {published.lora_path}); generate with it: server_url = "
          f"\"{published.server_url}\" and adapter = \"{published.name}\"")
    return 0


@_disk_errors
def _cmd_llama_server(args: argparse.Namespace) -> int:
    import shlex

    from unitune.runtime.builtin_models import terminal_progress
    from unitune.runtime.llama_cpp import base_gguf, gguf_folder, lora_to_gguf, server_command

    model = _project_model(args)
    registry = _registry(args)
    folder = gguf_folder(args.gguf_dir)
    adapters = [lora_to_gguf(registry.find_verified(name), folder / f"{Path(name).name}.gguf", model)
                for name in args.names]
    base = base_gguf(model, terminal_progress())
    _say(shlex.join(server_command("llama-server", base, adapters, args.port, args.host)))
    return 0
