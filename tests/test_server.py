"""The language server end to end with pytest-lsp: VS Code's and Neovim's recorded capabilities, a
real tiny model (trained to answer the examples), the test file written through the client."""

from __future__ import annotations

import ast
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import pytest_lsp
from conftest import EXAMPLES, JAVA_FOCAL, PY_FOCAL
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from unitune.server.edits import supports_document_changes

SERVER = [sys.executable, "-m", "unitune.server"]


def apply_edit_to_disk(client: LanguageClient, params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
    """What an editor does with the edit (then saves): insertions only; CreateFile only if announced."""
    edit = params.edit
    client.edits.append(edit)
    # the progress messages that had arrived when this edit did: the order of tests and rounds
    client.reports_at_edit.append([report.message for reports in client.progress_reports.values()
                                   for report in reports if getattr(report, "message", None)])
    from pygls.uris import to_fs_path

    def apply(uri: str, edits) -> None:
        path = Path(to_fs_path(uri))
        text = path.read_text() if path.exists() else ""
        lines = text.split("\n")
        for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
            assert e.range.start == e.range.end, "unitune must only insert"
            line = e.range.start.line
            before = "\n".join(lines[:line]) + ("\n" if line else "")
            offset = len(before) + e.range.start.character
            text = text[:offset] + e.new_text + text[offset:]
            lines = text.split("\n")
        path.write_text(text)

    caps = client.capabilities.workspace.workspace_edit
    if edit.document_changes:
        if not caps.document_changes:
            return types.ApplyWorkspaceEditResult(applied=False, failure_reason="documentChanges not supported")
        for change in edit.document_changes:
            if isinstance(change, types.CreateFile):
                Path(to_fs_path(change.uri)).parent.mkdir(parents=True, exist_ok=True)
                Path(to_fs_path(change.uri)).touch()
            else:
                apply(change.text_document.uri, change.edits)
    for uri, edits in (edit.changes or {}).items():
        path = Path(to_fs_path(uri))
        if not path.parent.exists():
            return types.ApplyWorkspaceEditResult(applied=False, failure_reason="folder missing: cannot save")
        apply(uri, edits)
    return types.ApplyWorkspaceEditResult(applied=True)


async def start(lsp_client: LanguageClient, caps: str, folders: list[Path], init: dict | None = None) -> None:
    lsp_client.edits = []
    lsp_client.reports_at_edit = []
    lsp_client.feature(types.WORKSPACE_APPLY_EDIT)(lambda params: apply_edit_to_disk(lsp_client, params))
    params = types.InitializeParams(
        capabilities=client_capabilities(caps),
        workspace_folders=[types.WorkspaceFolder(uri=f.as_uri(), name=f.name) for f in folders],
        root_uri=folders[0].as_uri(),
        initialization_options=init or {},
    )
    lsp_client.init_result = await lsp_client.initialize_session(params)


def server_env(home: Path) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "UNITUNE_HOME": str(home / "home"),
            "UNITUNE_CONFIG": str(home / "config.toml"), "PYTHONUNBUFFERED": "1"}


HOME = Path(tempfile.mkdtemp(prefix="unitune-lsp-"))
CONFIG = ClientServerConfig(server_command=SERVER, server_env=server_env(HOME))
pytestmark = pytest.mark.asyncio(loop_scope="module")


def fresh_workspace() -> Path:
    target = Path(tempfile.mkdtemp(prefix="unitune-ws-", dir=HOME)) / "examples"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return target


@pytest_lsp.fixture(config=CONFIG, params=["visual-studio-code", "neovim@v0.7.0"], scope="module")
async def client(lsp_client: LanguageClient, request, trained_base):
    workspace = fresh_workspace()
    lsp_client.workspace_root = workspace
    lsp_client.client_name = request.param
    await start(lsp_client, request.param, [workspace / "python", workspace / "java"], {"model": str(trained_base)})
    yield
    await lsp_client.shutdown_session()


def open_file(client: LanguageClient, path: Path, language: str) -> str:
    uri = path.as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id=language, version=1, text=path.read_text())))
    return uri


def focal_position(relative: str, line: int) -> types.Position:
    """The first code character of a 1-based line, as an LSP position."""
    text = (EXAMPLES / relative).read_text().split("\n")[line - 1]
    return types.Position(line=line - 1, character=len(text) - len(text.lstrip()))


async def code_actions(client, uri, position, only: list[str] | None = None) -> list[types.CodeAction]:
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri), range=types.Range(start=position, end=position),
        context=types.CodeActionContext(diagnostics=[], only=only)))
    # lsprotocol's client-side hook reads any object with a `command` key as a Command, so a CodeAction
    # carrying a command arrives as Command(command=<repr of the dict>): undo that here.
    fixed = []
    for action in actions or []:
        if isinstance(action, types.Command) and action.command.startswith("{"):
            raw = ast.literal_eval(action.command)
            action = types.CodeAction(title=action.title, command=types.Command(**raw))
        fixed.append(action)
    return fixed


async def command(client, name, *arguments):
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(command=name, arguments=list(arguments)))


# -- the tests -----------------------------------------------------------------------------------

@pytest.mark.slow
async def test_server_info_and_sync(client: LanguageClient):
    from unitune import __version__

    init = client.init_result
    assert (init.server_info.name, init.server_info.version) == ("unitune", __version__)
    sync = init.capabilities.text_document_sync
    assert sync.change == types.TextDocumentSyncKind.Incremental and sync.open_close
    assert set(init.capabilities.execute_command_provider.commands) >= {
        "unitune.generateTests", "unitune.listAdapters", "unitune.selectAdapter", "unitune.status",
        "unitune.trainAdapter"}
    assert init.capabilities.position_encoding in (None, "utf-16", types.PositionEncodingKind.Utf16)
    result = await command(client, "unitune.status")
    assert result["position_encoding"] == "utf-16"
    assert result["runtime"]["state"] == "idle"  # nothing loaded before the first generation


async def test_code_action_offered_inside_a_function_only(client: LanguageClient):
    path = client.workspace_root / PY_FOCAL[0]
    uri = open_file(client, path, "python")
    actions = await code_actions(client, uri, focal_position(*PY_FOCAL))
    assert [a.title for a in actions] == ["Generate unit tests for `Account.deposit`"]
    assert actions[0].command.command == "unitune.generateTests"
    assert actions[0].command.arguments[0] == uri
    assert not await code_actions(client, uri, types.Position(line=0, character=0))  # the module docstring
    # a refactor at the cursor (VS Code's lightbulb and Ctrl+. list it), not a whole-file source action
    assert len(await code_actions(client, uri, focal_position(*PY_FOCAL), only=["refactor"])) == 1
    assert not await code_actions(client, uri, focal_position(*PY_FOCAL), only=["source.organizeImports"])


@pytest.mark.slow
async def test_generate_applies_the_edit_with_progress(client: LanguageClient):
    path = client.workspace_root / PY_FOCAL[0]
    uri = open_file(client, path, "python")
    test_file = client.workspace_root / "python/tests/test_account.py"
    if test_file.exists():
        test_file.unlink()
    before, edits_before = set(client.progress_reports), len(client.edits)
    result = await command(client, "unitune.generateTests", uri, {"line": PY_FOCAL[1] - 1, "character": 8})
    assert result["ok"] is True, client.messages
    # the model's test, and one a call with another argument added for the guard it left unrun
    assert result["tests"] == ["test_deposit", "test_deposit_raises_value_error"] and result["created"] is True
    assert 'assert account.deposit(5) == 5' in test_file.read_text()
    # each as soon as it was ready: the model's test inserted while the request still ran (its progress had
    # not ended), the other in an edit of its own after the round that found it
    first, second = client.edits[edits_before:]
    assert "test(s) written" not in " ".join(client.reports_at_edit[edits_before])
    inserted = [edit.new_text for change in (first.document_changes or []) if isinstance(change, types.TextDocumentEdit)
                for edit in change.edits] + [edit.new_text for edits in (first.changes or {}).values() for edit in edits]
    assert "def test_deposit():" in "".join(inserted) and "raises_value_error" not in "".join(inserted)
    assert any("test_deposit inserted; more rounds go on" in m.message for m in client.messages)
    if client.client_name.startswith("neovim"):
        assert first.document_changes is None and list(first.changes) == [test_file.as_uri()]
    else:
        assert isinstance(first.document_changes[0], types.CreateFile)
        assert not any(isinstance(change, types.CreateFile) for change in second.document_changes)
        assert client.shown_documents[-1].uri == test_file.as_uri()
    tokens = [t for t in client.progress_reports if t not in before]
    assert len(tokens) == 1
    reports = client.progress_reports[tokens[0]]
    assert isinstance(reports[0], types.WorkDoneProgressBegin) and reports[0].cancellable
    assert isinstance(reports[-1], types.WorkDoneProgressEnd)
    stages = " ".join(r.message for r in reports[1:-1] if r.message)
    assert "generating" in stages and any(r.percentage for r in reports[1:-1])
    # validate = "run": the stages show, and the result says what the test adds
    # (a client may coalesce progress reports: the last stage always arrives)
    assert "validating" in stages and " delivered" in stages
    assert result["adds"]["test_deposit"].startswith("covers 3/4 lines, 1/2 branches, kills ")
    summary = [m.message for m in client.messages if "added to test_account.py" in m.message]
    assert summary and summary[-1].startswith("unitune: 2 test(s) added to test_account.py, each passed 3 runs: "
                                              "test_deposit (covers 3/4 lines")


@pytest.mark.slow
async def test_generate_into_an_existing_file_only_inserts(client: LanguageClient, tmp_path):
    from conftest import EXISTING_PY_TESTS, EXISTING_PY_TESTS_WITH_PYTEST

    path = client.workspace_root / PY_FOCAL[0]
    uri = open_file(client, path, "python")
    test_file = client.workspace_root / "python/tests/test_account.py"
    test_file.parent.mkdir(exist_ok=True)
    test_file.write_text(EXISTING_PY_TESTS)
    result = await command(client, "unitune.generateTests", uri, {"line": PY_FOCAL[1] - 1, "character": 8})
    assert result["ok"] is True, client.messages
    text = test_file.read_text()
    assert text.startswith(EXISTING_PY_TESTS_WITH_PYTEST) and "def test_deposit_5():" in text


@pytest.mark.slow
async def test_a_test_file_edited_while_the_model_runs_gets_the_tests_placed_again(client: LanguageClient):
    """The user types into the open test file during generation: the edit is planned again on what
    is there now (and stamped with its version), so nothing lands at stale positions."""
    import asyncio

    from conftest import EXISTING_PY_TESTS, EXISTING_PY_TESTS_WITH_PYTEST

    path = client.workspace_root / PY_FOCAL[0]
    uri = open_file(client, path, "python")
    test_file = client.workspace_root / "python/tests/test_account.py"
    test_file.parent.mkdir(exist_ok=True)
    test_file.write_text(EXISTING_PY_TESTS)
    test_uri = open_file(client, test_file, "python")
    edits_before = len(client.edits)
    running = asyncio.ensure_future(command(client, "unitune.generateTests", uri, {"line": PY_FOCAL[1] - 1, "character": 8}))
    await asyncio.sleep(0.5)
    typed = "# typed while the model ran\n"
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=test_uri, version=2),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=0, character=0)),
            text=typed)]))
    test_file.write_text(typed + EXISTING_PY_TESTS)  # what the editor shows, as the client applies edits on disk
    result = await running
    assert result["ok"] is True, client.messages
    text = test_file.read_text()
    assert text.startswith(typed + EXISTING_PY_TESTS_WITH_PYTEST) and "def test_deposit_5():" in text
    edit = client.edits[edits_before]
    if supports_document_changes(client.capabilities):  # VS Code: the edit is stamped with the version it planned on
        assert edit.document_changes[0].text_document.version == 2
    else:  # Neovim 0.7 takes plain `changes`, planned on the same text
        assert edit.document_changes is None and list(edit.changes) == [test_uri]


@pytest.mark.slow
async def test_java_generation_creates_the_maven_test_file(client: LanguageClient):
    path = client.workspace_root / JAVA_FOCAL[0]
    uri = open_file(client, path, "java")
    result = await command(client, "unitune.generateTests", uri, {"line": JAVA_FOCAL[1] - 1, "character": 8})
    assert result["ok"] is True, client.messages
    test_file = client.workspace_root / "java/src/test/java/com/example/bank/AccountTest.java"
    text = test_file.read_text()
    assert text.startswith("package com.example.bank;") and "assertEquals(5, account.deposit(5));" in text


@pytest.mark.slow
async def test_file_never_opened_is_read_from_disk(client: LanguageClient):
    # a copy of the project outside the workspace folders, never opened: read from disk, its own project
    copy = client.workspace_root.parent / f"unopened-{client.client_name.replace('@', '-')}"
    shutil.copytree(client.workspace_root / "python", copy, ignore=shutil.ignore_patterns("tests"))
    uri = (copy / "bank/account.py").as_uri()
    result = await command(client, "unitune.generateTests", uri, {"line": PY_FOCAL[1] - 1, "character": 8})
    assert result["ok"] is True, client.messages
    assert "assert account.deposit(5) == 5" in (copy / "tests/test_account.py").read_text()


async def test_code_actions_follow_incremental_edits(client: LanguageClient):
    path = client.workspace_root / PY_FOCAL[0]
    uri = open_file(client, path, "python")
    # insert a new function with non-ASCII text at the top (two lines), then ask below it
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(start=types.Position(line=2, character=0), end=types.Position(line=2, character=0)),
            text='def grüße(x="😀"):\n    return x\n')]))
    actions = await code_actions(client, uri, types.Position(line=3, character=4))
    assert [a.title for a in actions] == ["Generate unit tests for `grüße`"]
    moved = focal_position(*PY_FOCAL)
    actions = await code_actions(client, uri, types.Position(line=moved.line + 2, character=moved.character))
    assert [a.title for a in actions] == ["Generate unit tests for `Account.deposit`"]
    # after the emoji (2 UTF-16 units), still inside grüße
    actions = await code_actions(client, uri, types.Position(line=2, character=17))
    assert [a.title for a in actions] == ["Generate unit tests for `grüße`"]


async def test_list_and_select_adapters(client: LanguageClient):
    assert await command(client, "unitune.listAdapters") == []
    folder = (client.workspace_root / "python").as_uri()
    result = await command(client, "unitune.selectAdapter", "ghost", folder)
    assert result["ok"] is False and "no adapter named 'ghost'" in result["error"]
    result = await command(client, "unitune.selectAdapter", None, folder)
    assert result["ok"] is True and result["adapter"] is None
    assert (client.workspace_root / "python/unitune.toml").exists() or "tool.unitune" in (
        client.workspace_root / "python/pyproject.toml").read_text()
    result = await command(client, "unitune.selectAdapter", 42)
    assert result["ok"] is False and "name is a string" in result["error"]


@pytest.mark.parametrize(
    "arguments, fragment",
    [
        ([], "takes (uri, position)"),
        (["file:///nowhere/missing.py", {"line": 0, "character": 0}], "no such file"),
        (["file:///tmp/x.py", {"line": "one", "character": 0}], "whole numbers"),
        (["file:///tmp/x.py", [0, 0]], "takes (uri, position)"),
    ],
)
async def test_bad_generate_arguments_get_a_message(client: LanguageClient, arguments, fragment):
    result = await command(client, "unitune.generateTests", *arguments)
    assert result["ok"] is False and fragment in result["error"]
    assert fragment in client.messages[-1].message and client.messages[-1].type == types.MessageType.Error


async def test_generating_for_an_unsaved_untitled_buffer_says_to_save_it(client: LanguageClient):
    """An `untitled:` document the editor opened once got a Python traceback (-32603 TypeError)."""
    uri = "untitled:Untitled-1"
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=types.TextDocumentItem(
        uri=uri, language_id="python", version=1, text="def add(a, b):\n    return a + b\n")))
    result = await command(client, "unitune.generateTests", uri, {"line": 1, "character": 4})
    assert result["ok"] is False and "is not a file on disk; save it first" in result["error"]
    assert (await command(client, "unitune.status"))["version"]  # still serving


async def test_no_function_at_position(client: LanguageClient):
    path = client.workspace_root / PY_FOCAL[0]
    uri = open_file(client, path, "python")
    result = await command(client, "unitune.generateTests", uri, {"line": 0, "character": 0})
    assert result["ok"] is False and "no function or method" in result["error"]


async def test_unknown_command_is_an_error_response(client: LanguageClient):
    with pytest.raises(Exception, match="not defined"):
        await command(client, "unitune.doesNotExist")
    assert (await command(client, "unitune.status"))["version"]  # still serving


@pytest.mark.slow
async def test_training_validates_its_options_before_starting(client: LanguageClient):
    """Training is installed with unitune here, so a bad method is refused by name before any run starts."""
    result = await command(client, "unitune.trainAdapter", {"method": "bogus", "name": "x"})
    assert result["ok"] is False
    assert "method 'bogus' is not one of lora, ia3, prompt-tuning, full" in result["error"]
