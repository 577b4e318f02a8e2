"""Benchmark of the language server, driven over stdio like an editor would.

    python bench/server.py [--lines 5000] [--requests 30] [--tokens 120]

Prints, measured side by side in this one run (medians):
- code-action latency on a generated 5,000-line Python file, idle and while a generation runs on the
  server's model thread (ratio busy / idle);
- the time from `unitune.generateTests` to the applied edit, vs. a bare generation of the same
  number of tokens with the same model in this process (ratio), i.e. what the server adds around
  the model: parsing, prompt, post-processing, progress, the workspace edit.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


async def code_action_latency(client: LanguageClient, uri: str, lines: list[int], requests: int) -> list[float]:
    samples = []
    for index in range(requests):
        line = lines[index % len(lines)]
        position = types.Position(line=line, character=8)
        started = time.perf_counter()
        await client.text_document_code_action_async(types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri), range=types.Range(start=position, end=position),
            context=types.CodeActionContext(diagnostics=[])))
        samples.append(time.perf_counter() - started)
    return samples


async def run(args) -> None:
    import tinymodels
    from focal import python_source

    work = Path(tempfile.mkdtemp(prefix="unitune-bench-server-"))
    model = tinymodels.save_model(work / "model", hidden=args.hidden, layers=4)
    project = work / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "pyproject.toml").write_text('[project]\nname = "pkg"\n')
    (project / "unitune.toml").write_text(
        f'model = "{model}"\nmax_new_tokens = {args.tokens}\nvalidate = "none"\n')
    big = project / "pkg" / "big.py"
    text = python_source(args.lines)
    big.write_text(text)
    function_lines = [i for i, line in enumerate(text.split("\n")) if line.strip().startswith("return")][:200]

    client = LanguageClient("bench", "1")
    applied: list[float] = []

    @client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply_edit(params):
        applied.append(time.perf_counter())
        return types.ApplyWorkspaceEditResult(applied=True)

    @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
    def create_progress(params):
        return None

    @client.feature(types.PROGRESS)
    def progress(params):
        return None

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def message(params):
        return None

    env = {**os.environ, "UNITUNE_HOME": str(work / "home"), "UNITUNE_CONFIG": str(work / "config.toml")}
    await client.start_io(sys.executable, "-m", "unitune.server", env=env)
    capabilities = types.ClientCapabilities(
        window=types.WindowClientCapabilities(work_done_progress=True),
        workspace=types.WorkspaceClientCapabilities(workspace_edit=types.WorkspaceEditClientCapabilities(
            document_changes=True, resource_operations=[types.ResourceOperationKind.Create])))
    await client.initialize_async(types.InitializeParams(
        capabilities=capabilities, workspace_folders=[types.WorkspaceFolder(uri=project.as_uri(), name="project")]))
    client.initialized(types.InitializedParams())
    uri = big.as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=text)))

    def generate():
        return client.workspace_execute_command_async(types.ExecuteCommandParams(
            command="unitune.generateTests", arguments=[uri, {"line": function_lines[0], "character": 8}]))

    await code_action_latency(client, uri, function_lines, 5)  # warm up
    idle = await code_action_latency(client, uri, function_lines, args.requests)
    first = await generate()  # loads the model
    # busy: code actions while a generation runs on the model thread
    running = asyncio.ensure_future(generate())
    await asyncio.sleep(0.3)
    busy = await code_action_latency(client, uri, function_lines, args.requests)
    busy_overlapped = not running.done()
    await running
    # command -> applied edit, interleaved with the bare generation so machine noise hits both alike
    from unitune.runtime.generation import SamplingOptions, generate_completions
    from unitune.runtime.loading import ModelSpec, load_model, quiet_libraries
    from unitune.request import GenerationRequest, fit_prompt, prepare
    from unitune.settings import load_settings
    from unitune.source import SourceFile
    from unitune.stopping import StopScanner

    quiet_libraries()
    settings = load_settings(project).settings
    loaded = load_model(ModelSpec(model=str(model), quantization="none"))
    file = SourceFile.from_path(big)
    offset = file.offset(function_lines[0], 8)
    prepared = prepare(GenerationRequest(big, offset, settings, project_root=project))
    prompt, _ = fit_prompt(dataclasses.replace(prepared, existing_test=None), loaded.tokenizer,
                           loaded.context_length - settings.max_new_tokens, settings.context)
    end_to_end, bare = [], []
    for _ in range(args.repeats):
        applied.clear()
        started = time.perf_counter()
        await generate()
        if applied:
            end_to_end.append(applied[-1] - started)
        started = time.perf_counter()
        generate_completions(loaded.model, loaded.tokenizer, prompt.text, SamplingOptions(max_new_tokens=args.tokens),
                             lambda: StopScanner("java", 0), context_length=loaded.context_length)
        bare.append(time.perf_counter() - started)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()

    ms = lambda values: statistics.median(values) * 1000  # noqa: E731
    print(f"file: {args.lines} lines of Python; model: Llama-style hidden {args.hidden}, 4 layers, CPU; "
          f"{args.requests} code actions per phase; first generation ok={first.ok if hasattr(first, 'ok') else first['ok']}\n")
    print(f"{'code action latency':<44}{'median ms':>12}{'ratio':>10}")
    print(f"{'idle':<44}{ms(idle):>12.2f}{1.0:>10.2f}")
    print(f"{'while a generation runs' + ('' if busy_overlapped else ' (generation ended early)'):<44}"
          f"{ms(busy):>12.2f}{ms(busy) / ms(idle):>10.2f}\n")
    if end_to_end:
        print(f"{'generation, up to ' + str(args.tokens) + ' tokens':<44}{'median ms':>12}{'ratio':>10}")
        print(f"{'bare generate_completions in-process':<44}{ms(bare):>12.1f}{1.0:>10.2f}")
        print(f"{'unitune.generateTests -> applied edit':<44}{ms(end_to_end):>12.1f}{ms(end_to_end) / ms(bare):>10.2f}")
    else:
        print("no edit was applied (the model wrote nothing usable); end-to-end time not measured")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--tokens", type=int, default=120)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
