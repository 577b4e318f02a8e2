"""From the model's completions to the tests to insert: post-processing (`unitune.assured.postprocess`),
with `validate = "run"` the assured pipeline in the sandbox (`assure`, `assure_java`), and the check
that the test file still parses once the tests are in.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unitune.assured.postprocess import GeneratedTest, postprocess_all
from unitune.request import VALIDATING, GenerationRequest, PreparedRequest, ProgressCallback
from unitune.assured.validity import python_rejects
from unitune.errors import GenerationFailed, UnituneError
from unitune.focal import Function
from unitune.insertion import Insertion, apply, existing_test_names
from unitune.languages import PYTHON, parser_for
from unitune.logs import get_logger, log_event
from unitune.placement import TestLocation
from unitune.project_layout import find_project_root
from unitune.prompt import Prompt, header_for_test_file
from unitune.source import SourceFile

log = get_logger("delivery")


@dataclass
class Delivery:
    """The tests to insert (best first), the ones dropped, the test file's header (with any import
    the tests need), and with `validate = "run"` what the assured pipeline measured."""

    kept: list[GeneratedTest]
    rejected: list[GeneratedTest]
    header: str
    assured: Any = None  # unitune.assured.assure.Assured


def deliver(request: GenerationRequest, prepared: PreparedRequest, prompt: Prompt, completions: list[str], notes: list[str],
            report: ProgressCallback, cancel: threading.Event | None = None,
            previous: list[GeneratedTest] = (), screen: int = 0) -> Delivery:
    """From the model's completions to the tests to insert, for the request `prepare` found;
    `previous` are tests kept by an earlier round, run again beside the new ones; with `screen`, at
    most that many of the new ones that fail their first run go on, those reaching the most that
    the others do not (`unitune.assured.sessions.screened`); notes are appended to `notes`. Raises
    `GenerationFailed` (nothing to insert) with the reasons when no test is left."""
    file, function, location, framework = prepared.file, prepared.function, prepared.location, prepared.framework
    existing = prepared.existing_test
    settings = request.settings
    report(VALIDATING, 0.0, "checking the tests")
    taken = set(existing_test_names(existing, file.language)) | {test.name for test in previous}
    candidates = postprocess_all(prompt, completions, taken, focal_name=function.called_as)
    kept = list(previous) + [test for test in candidates if test.kept]
    rejected = [test for test in candidates if not test.kept]
    if settings.validate == "none":
        kept = [test for test in candidates if test.duplicate_of is None]
        rejected = [test for test in candidates if test.duplicate_of is not None]
    header = header_for_test_file(file.language, framework, function, file, location.module_import, None,
                              test_class=prompt.test_class)
    assured = None
    if settings.validate == "run" and kept:
        kept, failing, run_notes, header, assured = assure_candidates(
            request, file, function, location, framework, existing, prompt, header, kept, report, cancel, screen)
        rejected = failing + rejected
        notes.extend(run_notes)
    if not kept:
        reasons = list(dict.fromkeys(test.problems[-1] for test in rejected if test.problems)) or ["no test"]
        log_event(log, "generate.failed", request_id=request.request_id, reasons="; ".join(reasons))
        if assured is not None:
            raise NothingDelivered(
                f"none of the {len(candidates)} test(s) written for {function.qualified_name} survived running "
                f"and repair ({'; '.join(reasons)}); nothing was inserted", reasons, rejected, len(candidates))
        raise NothingDelivered(
            f"the model wrote {len(candidates)} candidate(s) for {function.qualified_name} but none is a valid "
            f"test ({'; '.join(reasons)}); nothing was inserted", reasons, rejected, len(candidates))
    return Delivery(kept, rejected, header, assured)


class NothingDelivered(GenerationFailed):
    """No candidate of a round survived: why each was dropped (its last problem), and the candidates."""

    def __init__(self, message: str, reasons: list[str], rejected: list[GeneratedTest], candidates: int):
        super().__init__(message)
        self.reasons = reasons
        self.rejected = rejected
        self.candidates = candidates


def failure_hint(reasons: list[str], focal_name: str) -> str:
    """What the model is told about the round before, when none of its tests survived: the most telling
    of the reasons they were dropped, short."""
    def pick(*needles: str) -> str | None:
        return next((reason for reason in reasons if any(needle in reason for needle in needles)), None)

    if pick(f"does not call {focal_name}"):
        return f"the test did not call {focal_name}: the next one calls it and checks what it returns"
    if pick("cut off before its end"):
        return "the test was too long and was cut off: the next one is short, a few direct assertions"
    if pick("asserts nothing", "nothing that asserts"):
        return f"the test checked nothing: the next one asserts what {focal_name} returns"
    if pick("runs none of the function's lines"):
        return f"the test never ran {focal_name}'s code: the next one calls {focal_name} with arguments it accepts"
    reason = pick("undefined name")
    if reason:
        return f"the test {reason[reason.index('uses'):] if 'uses' in reason else reason}: the next one uses only names the code defines"
    reason = pick("when run")
    if reason:
        return "the test " + " ".join(reason.split())[:160]
    return " ".join((reasons[0] if reasons else "no valid test").split())[:160]


def delivery_notes(tests: list[GeneratedTest]) -> list[str]:
    """One line per test that went through `validate = "run"`: what it adds, and what was repaired."""
    from unitune.assured.assure import RUNS

    notes = []
    for test in tests:
        if test.adds:
            repaired = " (repaired: " + "; ".join(test.repaired) + ")" if test.repaired else ""
            notes.append(f"{test.name} passed {RUNS} runs in the sandbox; {test.adds}{repaired}")
    return notes


def check_whole_file(existing: str | None, insertion: Insertion, language: str) -> None:
    """Refuse an insertion after which the test file no longer parses (when it parsed before):
    `GenerationFailed`, nothing written."""
    def problems(text: str) -> list[str]:
        if language == PYTHON:
            return python_rejects(text)
        root = parser_for(language).parse(text.encode("utf-8")).root_node
        return [f"line {root.start_point.row + 1}: syntax error"] if root.has_error else []

    after = problems(apply(existing, insertion))
    if after and (existing is None or not problems(existing)):
        raise GenerationFailed(f"inserting the tests would leave {insertion.path} unparsable ({after[0]}); "
                               "nothing was inserted")


# -- validate = "run" ----------------------------------------------------------------------------

#: (project root, interpreter, language) whose tests could not be run at all, with why: said once.
_UNRUNNABLE: dict[tuple[str, str | None, str], str] = {}


def assure_candidates(request: GenerationRequest, file: SourceFile, function: Function, location: TestLocation,
                      framework: str, existing: str | None, prompt: Prompt, header: str, tests: list[GeneratedTest],
                      report: ProgressCallback, cancel: threading.Event | None, screen: int = 0,
                      ) -> tuple[list[GeneratedTest], list[GeneratedTest], list[str], str, Any]:
    """`validate = "run"`: (delivered tests, rejected ones, notes, the header with any import added,
    what `assure` measured, None when the tests were not run).

    The candidates go through `unitune.assured.assure` (checks, a run, repair, three more runs,
    coverage and mutants, selection) in the sandbox, with the editor's unsaved focal file. When
    the tests cannot be run here (Java, no pytest, a test file outside the project, no sandbox),
    they are kept as checked for syntax, with a note that says so."""
    from unitune.assured import sandbox
    from unitune.assured.assure import Job, assure

    root = (Path(request.project_root) if request.project_root else find_project_root(request.path)).resolve()
    try:
        test_rel = location.path.resolve().relative_to(root).as_posix()
        focal_rel = Path(request.path).resolve().relative_to(root).as_posix()
    except ValueError:
        return tests, [], [(f"validate = run: {location.path} is outside the project {root}; the tests were "
                            "checked for syntax only")], header, None
    settings = request.settings
    job = Job(root=root, test_rel=test_rel, focal_rel=focal_rel, focal_source=file.text, function=function,
              location=location, existing=existing, header=header, framework=framework, language=file.language,
              test_class=prompt.test_class, unsaved={focal_rel: file.text} if request.text is not None else {},
              module_import=location.module_import, repair_mode=settings.repair,
              python=sandbox.project_python(root, settings.python), report=report, cancel=cancel, screen=screen)
    unrunnable_key = (str(root), job.python, file.language)
    if unrunnable_key in _UNRUNNABLE:  # said once; not tried again by this process
        return tests, [], [], header, None
    try:
        if file.language != PYTHON:
            return _assure_java(job, tests, report, request)
        outcome = assure(job, tests, VALIDATING)
    except sandbox.SandboxError as error:
        _UNRUNNABLE[unrunnable_key] = str(error)
        return tests, [], [f"validate = run: the tests cannot be run here ({error}); until unitune restarts, tests "
                           "are checked for syntax only (`unitune doctor` says what is missing)"], header, None
    except UnituneError:
        raise
    notes: list[str] = []
    for test in outcome.kept:
        test.adds = outcome.values[test.name].adds
    counts = ", ".join(f"{value} {key}" for key, value in outcome.stage_counts.items())
    log_event(log, "generate.assured", request_id=request.request_id, stages=counts)
    report(VALIDATING, 1.0, f"{len(outcome.kept)} of {len(tests)} delivered ({counts})")
    return outcome.kept, outcome.rejected, notes, job.header, outcome


def _assure_java(job, tests, report, request) -> tuple[list[GeneratedTest], list[GeneratedTest], list[str], str, Any]:
    from unitune.assured.assure_java import test_file_text, assure_java
    from unitune.assured.java_runner import java_available, java_test_class
    from unitune.assured import sandbox

    reason = java_available()
    if reason:
        raise sandbox.SandboxError(reason)
    class_name = java_test_class(job.test_rel, test_file_text(job, tests))
    outcome = assure_java(job, tests, VALIDATING, class_name)
    report(VALIDATING, 1.0, f"{len(outcome.kept)} of {len(tests)} delivered")
    log_event(log, "generate.assured", request_id=request.request_id, kept=len(outcome.kept), language="java")
    return outcome.kept, outcome.rejected, outcome.notes, job.header, outcome
