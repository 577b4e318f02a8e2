"""`unitune.generateTests(uri, position)`: progress, cancellation, and the tests inserted as they come.

The first test that passes the assured pipeline is inserted the moment it is ready (an edit of its own,
undoable, with a message, the test shown); the rounds after it go on within `time_budget` and each adds
what it delivers as another edit. A cancel stops the rounds and keeps what was inserted; a generation
that fails before its first test changes nothing."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from lsprotocol import types

from unitune.server.documents import ENCODING_UNITS
from unitune.server.edits import new_test_range, workspace_edit
from unitune.server.engine import Job
from unitune.server.features.code_actions import GENERATE_COMMAND
from unitune.server.features.progress import Progress, cancel_on_request_cancel
from unitune.server.server import UnituneServer, uri_to_path
from unitune.errors import GenerationCancelled, UnituneError
from unitune.focal import focal_at
from unitune.logs import get_logger, log_event, new_request_id
from unitune.source import SourceFile

log = get_logger("server.generate")


class BadArguments(UnituneError):
    """A command was called with arguments of the wrong shape."""


def parse_position_arguments(args: tuple) -> tuple[str, int, int]:
    if len(args) != 2 or not isinstance(args[0], str) or not isinstance(args[1], dict):
        raise BadArguments(f"{GENERATE_COMMAND} takes (uri, position) where position is {{line, character}}; got {list(args)!r}")
    line, character = args[1].get("line"), args[1].get("character")
    if not isinstance(line, int) or not isinstance(character, int) or isinstance(line, bool) or line < 0 or character < 0:
        raise BadArguments(f"{GENERATE_COMMAND}: position needs whole numbers line and character >= 0; got {args[1]!r}")
    return args[0], line, character


def _source_for(ls: UnituneServer, uri: str) -> tuple[SourceFile, int | None]:
    document = ls.documents.get(uri)
    if document is not None:
        return document.file, document.version
    path = uri_to_path(uri)
    if path is None:
        raise BadArguments(f"{uri} is not a file on disk; save it first")
    return SourceFile.from_path(path), None  # a file the client never opened: read it from disk


def _open_text(ls: UnituneServer):
    def read(path: Path) -> str | None:
        document = ls.documents.get(path.resolve().as_uri())
        return document.file.text if document is not None else None
    return read


@dataclass
class _Inserter:
    """`request.on_delivered` for the editor: each group of tests placed in the test file as it is now and
    sent as a workspace edit, from the model thread through the event loop (the model thread waits, so
    the next group is placed in the text this one left)."""

    ls: UnituneServer
    loop: asyncio.AbstractEventLoop
    request_id: str
    inserted: list[str] = field(default_factory=list)  # the names of the tests inserted so far
    failure: str | None = None  # why an edit was not applied; nothing more is sent after one
    _before: str | None = None  # the test file's text before our last edit, and after it
    _after: str | None = None

    def __call__(self, partial) -> None:
        if self.failure is None:
            asyncio.run_coroutine_threadsafe(self.insert(partial), self.loop).result()

    async def insert(self, partial) -> None:
        from unitune.insertion import apply

        ls = self.ls
        test_uri = partial.insertion.path.resolve().as_uri()
        open_test = ls.documents.get(test_uri)
        version = open_test.version if open_test else None
        if open_test is not None and self._after is not None and open_test.file.text == self._before:
            current, version = self._after, None  # our last edit's change has not reached us yet
        elif open_test is not None:
            current = open_test.file.text
        else:
            current = self._after if self._after is not None else partial.insertion.original_text
        insertion = partial.insertion
        if current != (insertion.original_text or ""):  # the file changed since the plan: place them again
            try:
                insertion = partial.replan(current)
            except UnituneError as error:
                self.failure = (f"{partial.insertion.path.name} changed while the tests were written and they cannot be "
                                f"placed in it now ({error})")
                return
            log_event(log, "generate.replanned", request_id=self.request_id, test_file=test_uri, version=version)
        edit = workspace_edit(insertion, test_uri, ls.client_capabilities, ENCODING_UNITS.get(ls.position_encoding),
                              version)
        result = await ls.workspace_apply_edit_async(types.ApplyWorkspaceEditParams(edit=edit, label="unitune: add tests"))
        if not result.applied:
            self.failure = f"the editor did not apply the tests to {insertion.path} ({result.failure_reason or 'no reason given'})"
            return
        self._before, self._after = current, apply(current, insertion)
        first = not self.inserted
        inserted = [name for name, _ in insertion.test_lines] or [test.name for test in partial.tests]
        self.inserted += inserted
        names = ", ".join(inserted)
        log_event(log, "generate.inserted", request_id=self.request_id, tests=names, first=first)
        if first:
            ls.notify_user(f"unitune: {names} inserted; more rounds go on while time_budget allows", types.MessageType.Info)
            await self._show(test_uri, insertion, inserted[0])

    async def _show(self, test_uri: str, insertion, name: str) -> None:
        window = self.ls.client_capabilities.window
        if window and window.show_document and window.show_document.support:
            try:
                await self.ls.window_show_document_async(types.ShowDocumentParams(
                    uri=test_uri, take_focus=True, selection=new_test_range(insertion, name)))
            except Exception as error:  # showing is a courtesy; the tests are in
                log_event(log, "show_document.failed", request_id=self.request_id, error=str(error))


@dataclass
class _Work:
    spec: object  # unitune.runtime.loading.ModelSpec: the base model (works of one spec share a batch)
    folder: object  # the workspace folder (its settings and path)
    request: object  # unitune.request.GenerationRequest
    report: object
    cancel: object


def _generate_group(ls: UnituneServer, works: list[_Work]) -> list:
    """On the model thread: requests for one base model, each with its folder's adapter, generated
    together (`unitune.generation.batching`). One result or exception per request."""
    from unitune.generation.batching import BatchJob, generate_together
    from unitune.runtime.loading import quiet_libraries
    from unitune.adapters.registry import selected_adapter
    from unitune.generation.service import TestGenerator

    quiet_libraries()
    runtime = ls.engine.runtime_for(works[0].spec)
    results: list = [None] * len(works)
    jobs, indices = [], []
    for index, work in enumerate(works):
        try:
            work.request.adapter = selected_adapter(work.folder.settings.adapter, work.folder.path)
        except Exception as error:  # noqa: BLE001 - this request fails alone
            results[index] = error
            continue
        jobs.append(BatchJob(work.request, work.report, work.cancel))
        indices.append(index)
    for index, outcome in zip(indices, generate_together(TestGenerator(runtime), jobs)):
        results[index] = outcome
        if not isinstance(outcome, BaseException):
            ls.engine.generations += 1
    return results


async def generate_tests(ls: UnituneServer, *args):
    request_id = new_request_id("lsp")
    try:
        uri, line, character = parse_position_arguments(args)
        if ls.documents.get(uri) is not None:
            file, _version = _source_for(ls, uri)
        else:  # read from disk off the event loop (regular files only, size-capped: never a hang)
            file, _version = await asyncio.get_running_loop().run_in_executor(None, _source_for, ls, uri)
        if file.path is None and uri_to_path(uri) is None:  # an editor's unsaved buffer (untitled:)
            raise BadArguments(f"{uri} is not a file on disk; save it first, so its tests have a place to go")
        offset = file.offset(line, character, ENCODING_UNITS.get(ls.position_encoding))
        function = focal_at(file, offset)
        if function is None:
            raise UnituneError(f"no function or method at line {line + 1}; put the cursor inside one")
    except UnituneError as error:
        ls.notify_user(f"unitune: {error}")
        return {"ok": False, "error": str(error)}

    from unitune.request import GenerationRequest  # light: no torch at import

    folder = ls.folder_for_uri(uri)
    job = ls.engine.start_job(Job(request_id, "generate", function.qualified_name))
    cancel_on_request_cancel(ls, job.cancel)
    progress = Progress(ls, f"unitune: tests for {function.qualified_name}", job.cancel)
    await progress.begin("loading model")
    inserter = _Inserter(ls, asyncio.get_running_loop(), request_id)
    request = GenerationRequest(file.path or Path(uri_to_path(uri)), offset, folder.settings, text=file.text,
                                project_root=folder.path, open_text=_open_text(ls), request_id=request_id,
                                on_delivered=inserter, file=file, function=function)

    def report(stage: str, fraction: float, message: str) -> None:
        job.stage = stage
        progress.report(stage, fraction, message)

    log_event(log, "generate.request", request_id=request_id, function=function.qualified_name, folder=folder.path)
    try:
        from unitune.runtime.loading import ModelSpec

        spec = ModelSpec.from_settings(folder.settings)
        outcome = await ls.engine.run_batched(spec, _Work(spec, folder, request, report, job.cancel),
                                              lambda works: _generate_group(ls, works))
    except GenerationCancelled:
        progress.end("cancelled")
        if inserter.inserted:
            ls.notify_user(f"unitune: generation cancelled; the {len(inserter.inserted)} test(s) inserted before stay",
                           types.MessageType.Info)
            return {"ok": False, "cancelled": True, "tests": inserter.inserted}
        ls.notify_user("unitune: generation cancelled; nothing was changed", types.MessageType.Info)
        return {"ok": False, "cancelled": True}
    except UnituneError as error:
        progress.end("failed")
        ls.notify_user(f"unitune: {error}")
        return {"ok": False, "error": str(error)}
    except Exception as error:  # a library failure: report it, keep serving
        log.exception("generation failed request_id=%s", request_id)
        progress.end("failed")
        message = f"unitune: generation failed ({type(error).__name__}: {error}); see the server log"
        ls.notify_user(message)
        return {"ok": False, "error": message}
    finally:
        ls.engine.end_job(job)

    if inserter.failure is not None:
        progress.end("failed")
        kept = f"; the {len(inserter.inserted)} test(s) inserted before stay" if inserter.inserted else "; nothing was inserted"
        ls.notify_user(f"unitune: {inserter.failure}{kept}")
        return {"ok": False, "error": inserter.failure, "tests": inserter.inserted}
    progress.end(f"{len(inserter.inserted)} test(s) written")
    for note in outcome.notes:
        ls.notify_user(f"unitune: {note}", types.MessageType.Info)
    ls.notify_user(f"unitune: {summary(outcome)}", types.MessageType.Info)
    return {
        "ok": True, "request_id": request_id, "function": function.qualified_name,
        "test_file": outcome.insertion.path.resolve().as_uri(), "tests": inserter.inserted,
        "created": outcome.insertion.creates_file, "adds": {test.name: test.adds for test in outcome.tests if test.adds},
    }


def summary(outcome) -> str:
    """The result message: how many tests went where, and what each one adds when they were run."""
    tests = outcome.tests
    where = outcome.insertion.path.name
    if not any(test.adds for test in tests):
        return f"{len(tests)} test(s) added to {where} (checked for syntax, not run)"
    parts = []
    for test in tests:
        repaired = ", expected values observed" if any("observed" in note or "raised" in note for note in test.repaired) else ""
        parts.append(f"{test.name} ({test.adds}{repaired})")
    return f"{len(tests)} test(s) added to {where}, each passed 3 runs: " + "; ".join(parts)


def register(ls: UnituneServer) -> None:
    ls.command(GENERATE_COMMAND)(generate_tests)
