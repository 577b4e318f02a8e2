"""Initialisation, configuration and document sync."""

from __future__ import annotations

from lsprotocol import types

from unitune.server.config import SECTION, normalize_editor_settings
from unitune.server.server import UnituneServer, uri_to_path
from unitune.logs import get_logger, log_event

log = get_logger("server.lifecycle")


def initialize(ls: UnituneServer, params: types.InitializeParams) -> None:
    ls.folders.global_editor = normalize_editor_settings(params.initialization_options)
    _sync_folders(ls)
    log_event(log, "initialize", client=params.client_info.name if params.client_info else None,
              encoding=ls.position_encoding, folders=len(ls.folders.folders))


async def initialized(ls: UnituneServer, params: types.InitializedParams) -> None:
    await _pull_configuration(ls)
    ls.reload_settings()


async def did_change_configuration(ls: UnituneServer, params: types.DidChangeConfigurationParams) -> None:
    # A pushed `unitune` section replaces the previous one, even when empty (the user cleared every
    # setting); a notification without it only tells us to pull the configuration again.
    if isinstance(params.settings, dict) and SECTION in params.settings:
        ls.folders.global_editor = normalize_editor_settings(params.settings)
    await _pull_configuration(ls)
    ls.reload_settings()


async def did_change_folders(ls: UnituneServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
    _sync_folders(ls)
    await _pull_configuration(ls)
    ls.reload_settings()


def did_open(ls: UnituneServer, params: types.DidOpenTextDocumentParams) -> None:
    document = params.text_document
    ls.documents.open(document.uri, uri_to_path(document.uri), document.language_id, document.text, document.version)


def did_change(ls: UnituneServer, params: types.DidChangeTextDocumentParams) -> None:
    ls.documents.change(params.text_document.uri, params.text_document.version, params.content_changes,
                        ls.position_encoding)


def did_close(ls: UnituneServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.documents.close(params.text_document.uri)


def shutdown(ls: UnituneServer, params) -> None:
    ls.engine.shutdown()


def _sync_folders(ls: UnituneServer) -> None:
    folders = []
    for folder in ls.workspace.folders.values():
        path = uri_to_path(folder.uri)
        if path is not None:
            folders.append((folder.uri, path))
    if not folders and ls.workspace.root_uri:
        path = uri_to_path(ls.workspace.root_uri)
        if path is not None:
            folders.append((ls.workspace.root_uri, path))
    ls.folders.set_folders(folders)


async def _pull_configuration(ls: UnituneServer) -> None:
    """Ask the client for each folder's `unitune` section, when it can answer."""
    workspace = ls.client_capabilities.workspace
    if not (workspace and workspace.configuration) or not ls.folders.folders:
        return
    folders = list(ls.folders.folders.values())
    items = [types.ConfigurationItem(scope_uri=f.uri, section=SECTION) for f in folders]
    try:
        answers = await ls.workspace_configuration_async(types.ConfigurationParams(items=items))
    except Exception as error:  # a client that fails the request: keep what we have
        log_event(log, "configuration.failed", error=str(error))
        return
    for folder, answer in zip(folders, answers or []):
        folder.editor = normalize_editor_settings(answer)


def register(ls: UnituneServer) -> None:
    ls.feature(types.INITIALIZE)(initialize)
    ls.feature(types.INITIALIZED)(initialized)
    ls.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(did_change_configuration)
    ls.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)(did_change_folders)
    ls.feature(types.TEXT_DOCUMENT_DID_OPEN)(did_open)
    ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)(did_change)
    ls.feature(types.TEXT_DOCUMENT_DID_CLOSE)(did_close)
    ls.feature(types.SHUTDOWN)(shutdown)
