"""What a generation is asked for, and the work before the model writes: the request, the stages its
progress reports name, the focal method and test file (`prepare`), the prompt's format and project
block as the request's settings and adapter want them (`prompt_options`) and the prompt fitted to the
model's budget (`fit_prompt`). Nothing here loads a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unitune.context import CONTEXT_LEVELS
from unitune.focal import Function, require_focal_at
from unitune.frameworks import parse_framework
from unitune.logs import new_request_id
from unitune.placement import TestLocation, locate_test_file
from unitune.project_layout import find_project_root
from unitune.project_context import ProjectContext, gather_project_context
from unitune.prompt import (
    PROJECT_BLOCK_FORMAT, PROMPT_FORMAT_VERSION, SUPPORTED_PROMPT_FORMATS, Prompt, build_prompt, model_input,
)
from unitune.settings import Settings
from unitune.source import SourceFile, decode_source, read_source_bytes

# Stages of a generation, in order, as progress reports name them.
LOADING, GENERATING, VALIDATING = "loading model", "generating", "validating"
ProgressCallback = Callable[[str, float, str], None]


@dataclass
class GenerationRequest:
    """What to write tests for: a file (with its unsaved text, from an editor) and a position."""

    path: Path
    offset: int  # byte offset in the file's UTF-8 text
    settings: Settings
    text: str | None = None  # the editor's buffer; None reads the file
    project_root: Path | None = None
    adapter: Any = None  # a registry entry; None: the bare base model
    open_text: Callable[[Path], str | None] | None = None  # an editor's unsaved text of a file, if open
    request_id: str = field(default_factory=lambda: new_request_id("gen"))
    # Tests as soon as they are ready: called (on the generating thread) with a `GenerationOutcome` of the
    # tests not handed over before, after the first round that delivers and after each later round that
    # adds some; the caller then inserts them itself, each test exactly once. None: all at the end.
    on_delivered: Callable[[Any], None] | None = None
    # The file already parsed and its focal function already found by the caller (the language server
    # finds it to name it in its progress): `prepare` takes them instead of parsing and searching again
    # when the file is the one at `path`.
    file: SourceFile | None = None
    function: Function | None = None


@dataclass(frozen=True)
class PreparedRequest:
    """What a request is about, found once before the model writes (`prepare`): every later stage, from
    the prompt to the delivery and the rounds after it, reads these instead of looking them up again."""

    file: SourceFile
    function: Function  # the focal function at the request's position
    location: TestLocation  # the test file its tests go into
    framework: str
    existing_test: str | None  # that test file's text (an editor's unsaved one first), None when it is new


def prepare(request: GenerationRequest) -> PreparedRequest:
    """The cheap part (no model): focal method, test location, framework and the test file's text."""
    path = Path(request.path)
    given = request.file if request.file is not None and request.file.path == path else None
    if given is not None:
        file = given
    elif request.text is not None:
        from unitune.languages import language_for_path

        file = SourceFile(request.text, language_for_path(path), path)
    else:
        file = SourceFile.from_path(path)
    function = request.function if given is not None and request.function else require_focal_at(file, request.offset)
    root = Path(request.project_root) if request.project_root else find_project_root(path)
    location = locate_test_file(path, root, test_dir=request.settings.test_dir)
    framework = parse_framework(request.settings.framework, file.language) if request.settings.framework else location.framework
    existing = request.open_text(location.path) if request.open_text else None
    if existing is None and location.exists:
        existing = decode_source(read_source_bytes(location.path), str(location.path))
    return PreparedRequest(file, function, location, framework, existing)


#: Most prompt tokens a request reads, per device: the model's window is larger (32k for the default),
#: but a CPU prefills about a few hundred tokens a second, so a longer prompt costs more than it helps
#: (the project block shrinks, then the context is reduced level by level to fit; see `fit_prompt`).
#: An inference server (`server_url`, `unitune.runtime.remote`) gets CUDA's budget: vLLM needs a GPU.
PROMPT_TOKENS = {"cpu": 2048, "mps": 4096, "cuda": 8192, "server": 8192}


def prompt_budget(base, max_new_tokens: int) -> int:
    """Prompt tokens a request may use on `base`: the device's budget, within the model's window."""
    return max(64, min(PROMPT_TOKENS.get(base.device, 2048), base.context_length - max_new_tokens))


@dataclass(frozen=True)
class PromptOptions:
    """How a request's prompt is built: its format (an adapter's own, 2 or 3), whether it shows the
    project block (the `project_context` setting), and the project it is read from (None: found from
    the focal file)."""

    format_version: int = PROMPT_FORMAT_VERSION
    project_context: bool = True
    project_root: Path | None = None


def prompt_options(request: GenerationRequest) -> PromptOptions:
    """The prompt a request's adapter was trained on and its settings ask for: an adapter trained with
    prompt format 2 gets format 2 (no project block, the older instruction), so it keeps working."""
    card = getattr(request.adapter, "card", None)
    trained = getattr(card, "prompt_format_version", None)
    version = trained if trained in SUPPORTED_PROMPT_FORMATS else PROMPT_FORMAT_VERSION
    root = Path(request.project_root) if request.project_root else None
    return PromptOptions(version, request.settings.project_context, root)


def fit_prompt(prepared: PreparedRequest, tokenizer, budget: int, level: str, *,
               options: PromptOptions | None = None, failure: str | None = None) -> tuple[Prompt, list[str]]:
    """The richest prompt at or below `level` that fits `budget` tokens: over budget, the project
    block shrinks first (its example test, then definitions, then all of it), and only then is the
    context reduced level by level (the generation keeps the prompt's end if even the focal method
    alone is too long)."""
    options = options or PromptOptions()
    notes: list[str] = []
    file, function, location = prepared.file, prepared.function, prepared.location
    project = _project_block(prepared, options)
    blocks = [project, *project.shrunk()] if project is not None and not project.empty else [None]
    levels = CONTEXT_LEVELS[: CONTEXT_LEVELS.index(level) + 1][::-1] if level in CONTEXT_LEVELS else [level]
    prompt = None
    for candidate in levels:
        for block in blocks if candidate == level else [blocks[-1]]:
            prompt = build_prompt(file, function, framework=prepared.framework, module_import=location.module_import,
                                  existing_test_source=prepared.existing_test, level=candidate, project=block, format_version=options.format_version, failure=failure)
            text = model_input(tokenizer, prompt.text, prompt.language, format_version=prompt.format_version)
            if len(tokenizer(text, add_special_tokens=False)["input_ids"]) > budget:
                continue
            if block is not project and project is not None and not project.empty:
                shown = "left out" if block is None or block.empty else f"cut to {block.describe()}"
                notes.append(f"the project block ({project.describe()}) was {shown} to fit the model's "
                             f"{budget}-token prompt budget")
            if candidate != level:
                notes.append(f"context reduced to {candidate} to fit the model's {budget}-token prompt budget")
            return prompt, notes
    notes.append("the focal method alone is longer than the model's context; its beginning was cut")
    return prompt, notes


def _project_block(prepared: PreparedRequest, options: PromptOptions) -> ProjectContext | None:
    """The project block a prompt may show, or None (turned off, format 2, or no file on disk)."""
    file = prepared.file
    if not options.project_context or options.format_version < PROJECT_BLOCK_FORMAT or file.path is None:
        return None
    root = options.project_root or find_project_root(Path(file.path))
    return gather_project_context(file, prepared.function, root, location=prepared.location,
                                  location_text=prepared.existing_test)
