"""`unitune.listAdapters`, `unitune.selectAdapter(name, folderUri?)` and `unitune.status`."""

from __future__ import annotations

from lsprotocol import types

from unitune.server.server import UnituneServer
from unitune import __version__
from unitune.errors import UnituneError

LIST_COMMAND = "unitune.listAdapters"
SELECT_COMMAND = "unitune.selectAdapter"
STATUS_COMMAND = "unitune.status"


def _folder(ls: UnituneServer, folder_uri):
    if folder_uri is not None:
        if not isinstance(folder_uri, str):
            raise UnituneError(f"{SELECT_COMMAND}: the folder must be a URI string; got {folder_uri!r}")
        return ls.folder_for_uri(folder_uri)
    if len(ls.folders.folders) == 1:
        return next(iter(ls.folders.folders.values()))
    if not ls.folders.folders:
        raise UnituneError("no workspace folder is open; open a project folder first")
    raise UnituneError(f"{SELECT_COMMAND}: several folders are open; pass the folder's URI as the second argument")


def list_adapters(ls: UnituneServer, *args):
    from unitune.adapters.registry import AdapterRegistry

    try:
        folder = _folder(ls, args[0] if args else None)
    except UnituneError:
        folder = None
    entries = AdapterRegistry(folder.path if folder else None).list()
    return [entry.to_dict() for entry in entries if not entry.shadowed]


def select_adapter(ls: UnituneServer, *args):
    from unitune.adapters.registry import NO_ADAPTER, AdapterRegistry
    from unitune.settings import write_project_setting

    try:
        if len(args) > 2 or (args and args[0] is not None and not isinstance(args[0], str)):
            raise UnituneError(f"{SELECT_COMMAND} takes (name, folderUri?) where name is a string or null; got {list(args)!r}")
        name = args[0] if args else None
        folder = _folder(ls, args[1] if len(args) > 1 else None)
        if name in (None, "", NO_ADAPTER):
            path = write_project_setting(folder.path, "adapter", None)
            name = None
        else:
            path = AdapterRegistry(folder.path).use(name, folder.path)
    except UnituneError as error:
        ls.notify_user(f"unitune: {error}")
        return {"ok": False, "error": str(error)}
    ls.reload_settings()
    message = f"unitune: {folder.path.name} now uses adapter {name}" if name else f"unitune: {folder.path.name} now uses the bare model"
    ls.notify_user(message + f" (recorded in {path.name})", types.MessageType.Info)
    return {"ok": True, "adapter": name, "folder": folder.uri, "settings_file": str(path)}


def status(ls: UnituneServer, *args):
    folders = []
    for folder in list(ls.folders.folders.values()):
        settings = folder.settings
        folders.append({
            "uri": folder.uri, "model": settings.model, "adapter": settings.adapter,
            "quantization": settings.quantization, "device": settings.device, "context": settings.context,
            "candidates": settings.candidates, "validate": settings.validate,
        })
    return {"version": __version__, "position_encoding": ls.position_encoding, "folders": folders,
            "open_documents": len(ls.documents._documents), **ls.engine.status()}


def register(ls: UnituneServer) -> None:
    ls.command(LIST_COMMAND)(list_adapters)
    ls.command(SELECT_COMMAND)(select_adapter)
    ls.command(STATUS_COMMAND)(status)
