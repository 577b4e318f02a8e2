"""What a generation is asked for, and the work before the model writes: the request, the stages its
progress reports name, the focal method and test file (`prepare`) and the prompt fitted to the
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
from unitune.prompt import Prompt, build_prompt, model_input
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


def prepare(request: GenerationRequest) -> tuple[SourceFile, Function, TestLocation, str, str | None]:
    """The cheap part (no model): focal method, test location, framework and the test file's text."""
    path = Path(request.path)
    if request.text is not None:
        from unitune.languages import language_for_path

        file = SourceFile(request.text, language_for_path(path), path)
    else:
        file = SourceFile.from_path(path)
    function = require_focal_at(file, request.offset)
    root = Path(request.project_root) if request.project_root else find_project_root(path)
    location = locate_test_file(path, root, test_dir=request.settings.test_dir)
    framework = parse_framework(request.settings.framework, file.language) if request.settings.framework else location.framework
    existing = request.open_text(location.path) if request.open_text else None
    if existing is None and location.exists:
        existing = decode_source(read_source_bytes(location.path), str(location.path))
    return file, function, location, framework, existing


#: Most prompt tokens a request reads, per device: the model's window is larger (32k for the default),
#: but a CPU prefills about a few hundred tokens a second, so a longer prompt costs more than it helps
#: (the context is reduced level by level to fit; see `fit_prompt`).
#: An inference server (`server_url`, `unitune.adapters.remote`) gets CUDA's budget: vLLM needs a GPU.
PROMPT_TOKENS = {"cpu": 2048, "mps": 4096, "cuda": 8192, "server": 8192}


def prompt_budget(base, max_new_tokens: int) -> int:
    """Prompt tokens a request may use on `base`: the device's budget, within the model's window."""
    return max(64, min(PROMPT_TOKENS.get(base.device, 2048), base.context_length - max_new_tokens))


def fit_prompt(file, function, location, framework, existing, tokenizer, budget: int, level: str,
               uncovered: list[str] | None = None) -> tuple[Prompt, list[str]]:
    """The richest prompt at or below `level` that fits `budget` tokens (then the generation keeps
    the prompt's end if even the focal method alone is too long)."""
    notes: list[str] = []
    levels = CONTEXT_LEVELS[: CONTEXT_LEVELS.index(level) + 1][::-1] if level in CONTEXT_LEVELS else [level]
    prompt = None
    for candidate in levels:
        prompt = build_prompt(file, function, framework=framework, module_import=location.module_import,
                              existing_test_source=existing, level=candidate, uncovered=uncovered)
        if len(tokenizer(model_input(tokenizer, prompt.text, prompt.language), add_special_tokens=False)["input_ids"]) <= budget:
            if candidate != level:
                notes.append(f"context reduced to {candidate} to fit the model's {budget}-token prompt budget")
            return prompt, notes
    notes.append("the focal method alone is longer than the model's context; its beginning was cut")
    return prompt, notes
