"""Position encoding: UTF-16 unless the client offers UTF-8, and positions read in that unit."""

from __future__ import annotations

import sys

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

pytestmark = pytest.mark.asyncio(loop_scope="module")
SOURCE = 'class A { String s = "日本"; int g() { return 2; } }\n'
# The byte column of the space before `int g`: in UTF-8 it is in the field declaration (no function);
# read as code points (or UTF-16 units) it would fall inside `g`, two characters further right.
COLUMN = SOURCE.encode().index(b"int g") - 2


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "unitune.server"]), scope="module")
async def client(lsp_client: LanguageClient, tmp_path_factory):
    capabilities = client_capabilities("neovim@v0.10.0")
    capabilities.general = types.GeneralClientCapabilities(position_encodings=["utf-8", "utf-16"])
    folder = tmp_path_factory.mktemp("enc")
    lsp_client.init_result = await lsp_client.initialize_session(types.InitializeParams(
        capabilities=capabilities, workspace_folders=[types.WorkspaceFolder(uri=folder.as_uri(), name="enc")]))
    path = folder / "A.java"
    path.write_text(SOURCE)
    lsp_client.uri = path.as_uri()
    lsp_client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=lsp_client.uri, language_id="java", version=1, text=SOURCE)))
    yield
    await lsp_client.shutdown_session()


@pytest.mark.slow
async def test_utf8_is_chosen_when_offered(client: LanguageClient):
    assert client.init_result.capabilities.position_encoding in ("utf-8", types.PositionEncodingKind.Utf8)


async def test_columns_are_utf8_bytes(client: LanguageClient):
    async def titles(line, character):
        position = types.Position(line=line, character=character)
        actions = await client.text_document_code_action_async(types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=client.uri), range=types.Range(start=position, end=position),
            context=types.CodeActionContext(diagnostics=[])))
        return [a.title for a in actions or []]

    assert await titles(0, COLUMN) == []
    assert await titles(0, COLUMN + 3) == ["Generate unit tests for `A.g`"]
    assert SOURCE[COLUMN:COLUMN + 3].startswith("t")  # what a server reading code points would have seen
