"""The unitune language server: its state, and the features plugged into it.

State lives here (documents, folders and their settings, the model engine); each feature is a small
module under `features/` whose `register(server)` adds thin handlers that take the server as their
first argument. Nothing here imports torch: the server starts and answers code actions at once, and
the model loads on the first generation, on the engine's worker thread.
"""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from unitune.server.config import FolderConfig, FolderSettings
from unitune.server.documents import DocumentIndex
from unitune.server.engine import ModelEngine
from unitune import __version__
from unitune.logs import get_logger, log_event
from unitune.project_layout import find_project_root

log = get_logger("server")
NAME = "unitune"


class UnituneServer(LanguageServer):
    """A pygls server plus unitune's state."""

    def __init__(self) -> None:
        from unitune.server.protocol import UnituneProtocol

        super().__init__(NAME, __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
                         protocol_cls=UnituneProtocol)
        self.documents = DocumentIndex()
        self.folders = FolderSettings()
        self.engine = ModelEngine()
        self._loose_folders: dict[Path, FolderConfig] = {}
        self.exit_code = 0  # the process's, set by `exit` (1 when no `shutdown` came first)

    def _start_io_async(self, stdin=None, stdout=None):
        """pygls's stdio server with unitune's reading loop (`unitune.server.framing`): bad framing
        is logged and recovered from instead of leaving the server deaf."""
        import asyncio
        import sys
        from threading import Event

        from pygls.io_ import StdoutWriter

        from unitune.server.framing import serve_messages

        self._stop_event = Event()
        writer = StdoutWriter(stdout or sys.stdout.buffer)
        self.protocol.set_writer(writer)
        try:
            asyncio.run(serve_messages(self._stop_event, stdin or sys.stdin.buffer, self.thread_pool, self.protocol,
                                       writer))
        except BrokenPipeError:
            log.error("the connection to the client is lost; shutting down")
        except KeyboardInterrupt:
            pass
        except SystemExit as stop:  # `exit`: 0 after `shutdown`, 1 without it, as the protocol asks
            self.exit_code = stop.code if isinstance(stop.code, int) else 0
        finally:
            self.shutdown()

    # -- helpers the features share -----------------------------------------------------------
    @property
    def position_encoding(self) -> str:
        encoding = self.workspace.position_encoding or types.PositionEncodingKind.Utf16
        return getattr(encoding, "value", encoding)

    def folder_for_uri(self, uri: str) -> FolderConfig:
        """The workspace folder of a document, or (a file outside every folder) its project."""
        path = uri_to_path(uri)
        folder = self.folders.folder_for(path)
        if folder is not None:
            return folder
        root = find_project_root(path) if path is not None else Path.cwd()
        loose = self._loose_folders.get(root)
        if loose is None:
            loose = FolderConfig(root.as_uri(), root)
            loose.reload(self.folders.global_editor)
            self._loose_folders[root] = loose
        return loose

    def reload_settings(self) -> None:
        for loose in self._loose_folders.values():
            loose.reload(self.folders.global_editor)
        for problem in self.folders.reload_all():
            self.notify_user(f"unitune settings: {problem}", types.MessageType.Warning)

    def notify_user(self, message: str, kind: types.MessageType = types.MessageType.Error) -> None:
        log_event(log, "user.message", kind=kind.name, message=message)
        self.window_show_message(types.ShowMessageParams(type=kind, message=message))


def uri_to_path(uri: str) -> Path | None:
    path = to_fs_path(uri)
    return Path(path) if path else None


def create_server() -> UnituneServer:
    """A server with every feature registered."""
    from unitune.server.features import adapters, code_actions, generate, lifecycle, training

    server = UnituneServer()
    for feature in (lifecycle, code_actions, generate, adapters, training):
        feature.register(server)
    return server
