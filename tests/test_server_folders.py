"""The language server with two project folders: per-folder settings and adapters switched without
reloading the base model, cancellation (request and progress token), staying responsive during a
generation, settings changes, and model failures reported to the user."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
import pytest_lsp
from conftest import EXAMPLES
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

HOME = Path(tempfile.mkdtemp(prefix="unitune-lsp-folders-"))
CONFIG = ClientServerConfig(
    server_command=[sys.executable, "-m", "unitune.server"],
    server_env={**os.environ, "HF_HUB_OFFLINE": "1", "UNITUNE_HOME": str(HOME / "home"),
                "UNITUNE_CONFIG": str(HOME / "config.toml")},
)
pytestmark = pytest.mark.asyncio(loop_scope="module")
FOCAL_LINE = 16  # 0-based: inside Account.deposit


def make_project(name: str, settings: str) -> Path:
    project = HOME / name
    shutil.copytree(EXAMPLES / "python", project, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    (project / "unitune.toml").write_text(settings)
    return project


@pytest.fixture(scope="module")
def projects(tiny_base, endless_base, peft_adapters) -> dict[str, Path]:
    """Two projects on the same base, each with its own adapter from the user store; one whose
    generations run until cancelled; one with bad settings."""
    from unitune.adapters.card import AdapterCard, BaseModelRef, base_fingerprint
    from unitune.adapters.registry import AdapterRegistry
    from unitune.prompt import PROMPT_FORMAT_VERSION

    previous = os.environ.get("UNITUNE_HOME")
    os.environ["UNITUNE_HOME"] = str(HOME / "home")
    try:
        base = BaseModelRef("tiny-base", None, base_fingerprint(tiny_base))
        for name, method in (("lora", "lora"), ("ia3", "ia3")):
            card = AdapterCard(name=f"team-{name}", method=method, base_model=base,
                               prompt_format_version=PROMPT_FORMAT_VERSION)
            AdapterRegistry(None).save(peft_adapters[name], f"team-{name}", card)
    finally:
        if previous is None:
            os.environ.pop("UNITUNE_HOME")
        else:
            os.environ["UNITUNE_HOME"] = previous
    common = f'model = "{tiny_base}"\nmax_new_tokens = 8\n'
    return {
        "a": make_project("project-a", common + 'adapter = "team-lora"\n'),
        "b": make_project("project-b", common + 'adapter = "team-ia3"\n'),
        "slow": make_project("project-slow", f'model = "{endless_base}"\nmax_new_tokens = 8192\n'),
        "broken": make_project("project-broken", f'model = "{HOME / "no-such-model"}"\ncandidates = 0\n'),
    }


@pytest_lsp.fixture(config=CONFIG, scope="module")
async def client(lsp_client: LanguageClient, projects):
    lsp_client.applied = []
    lsp_client.feature(types.WORKSPACE_APPLY_EDIT)(
        lambda params: lsp_client.applied.append(params) or types.ApplyWorkspaceEditResult(applied=True))
    params = types.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"),
        workspace_folders=[types.WorkspaceFolder(uri=p.as_uri(), name=k) for k, p in projects.items()],
        root_uri=projects["a"].as_uri(),
    )
    lsp_client.projects = projects
    await lsp_client.initialize_session(params)
    yield
    await lsp_client.shutdown_session()


def uri_of(client, project: str) -> str:
    path = client.projects[project] / "bank/account.py"
    uri = path.as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=path.read_text())))
    return uri


def generate(client, project: str):
    return client.workspace_execute_command_async(types.ExecuteCommandParams(
        command="unitune.generateTests", arguments=[uri_of(client, project), {"line": FOCAL_LINE, "character": 8}]))


async def status(client):
    return await client.workspace_execute_command_async(types.ExecuteCommandParams(command="unitune.status"))


@pytest.mark.slow
async def test_bad_settings_are_reported_and_defaults_used(client: LanguageClient):
    await asyncio.sleep(0.5)  # settings are read after `initialized`
    problems = [m.message for m in client.messages if "candidates = 0" in m.message]
    assert problems and "using 1" in problems[0]
    folders = {f["uri"]: f for f in (await status(client))["folders"]}
    assert folders[client.projects["broken"].as_uri()]["candidates"] == 1


@pytest.mark.slow
async def test_folders_switch_adapters_without_reloading_the_base(client: LanguageClient):
    seen = []
    for project in ("a", "b", "a"):
        await generate(client, project)  # a random model: the tests may be invalid, the switch is what counts
        runtime = (await status(client))["runtime"]
        seen.append(runtime["active_adapter"])
    assert seen == ["team-lora", "team-ia3", "team-lora"]
    assert runtime["base_loads"] == 1 and runtime["state"] == "ready"
    assert set(runtime["resident_adapters"]) == {"team-lora", "team-ia3"}


async def test_code_actions_answer_while_a_generation_runs(client: LanguageClient):
    running = asyncio.ensure_future(generate(client, "slow"))
    await asyncio.sleep(1.0)
    uri = uri_of(client, "a")
    started = time.perf_counter()
    actions = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(line=FOCAL_LINE, character=8), end=types.Position(line=FOCAL_LINE, character=8)),
        context=types.CodeActionContext(diagnostics=[])))
    answered = time.perf_counter() - started
    assert actions and not running.done(), "the code action must be answered before the generation ends"
    jobs = (await status(client))["jobs"]
    assert [job["kind"] for job in jobs] == ["generate"]
    # cancel through the progress bar's token
    tokens = [t for t, reports in client.progress_reports.items()
              if reports and isinstance(reports[-1], types.WorkDoneProgressBegin | types.WorkDoneProgressReport)]
    assert tokens
    client.protocol.notify(types.WINDOW_WORK_DONE_PROGRESS_CANCEL, types.WorkDoneProgressCancelParams(token=tokens[-1]))
    result = await asyncio.wait_for(running, 60)
    assert result == {"ok": False, "cancelled": True}
    assert any("cancelled; nothing was changed" in m.message for m in client.messages)
    assert answered < 5  # generous: the point is that it did not wait for the generation


@pytest.mark.slow
async def test_cancel_request_stops_the_generation(client: LanguageClient):
    applied = len(client.applied)
    msg_id = "cancel-me"
    future = client.protocol.send_request(types.WORKSPACE_EXECUTE_COMMAND, types.ExecuteCommandParams(
        command="unitune.generateTests", arguments=[uri_of(client, "slow"), {"line": FOCAL_LINE, "character": 8}]),
        msg_id=msg_id)
    await asyncio.sleep(1.5)
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    with pytest.raises(JsonRpcRequestCancelled):  # the request ends as cancelled (LSP's -32800)
        await asyncio.wait_for(asyncio.wrap_future(future) if not asyncio.isfuture(future) else future, 30)
    deadline = time.monotonic() + 30
    while (await status(client))["jobs"] and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    assert (await status(client))["jobs"] == []  # the worker stopped, it did not run to the end
    assert len(client.applied) == applied  # nothing was changed


async def test_model_failure_reaches_the_user(client: LanguageClient):
    result = await generate(client, "broken")
    assert result["ok"] is False and "no-such-model" in result["error"]
    assert "neither a folder nor" in client.messages[-1].message
    assert (await status(client))["version"]  # still serving


@pytest.mark.slow
async def test_changed_configuration_applies(client: LanguageClient):
    client.set_configuration({"unitune": {"candidates": 3}})
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings={}))
    await asyncio.sleep(1.0)
    folders = (await status(client))["folders"]
    assert len(folders) == len(client.projects)
    assert [folder["candidates"] for folder in folders] == [3] * len(folders)
