"""Which engine runs the model (the `engine` setting), and the runtime that sends each request to it.

- `torch`: the model in this process (`unitune.runtime.runtime.ModelRuntime`): every adapter type,
  4-bit NF4 on CUDA; on a CPU the shipped GGUF dequantized to fp32.
- `llama.cpp`: the shipped GGUF weights as they are, in a llama.cpp server unitune starts
  (`unitune.runtime.llama_cpp_runtime`); LoRA adapters per request. On two CPU cores it decodes
  several times faster than torch (`python bench/engines.py`).
- `auto` (the default): llama.cpp on a CPU when its server is built and the model is a GGUF file or
  the built-in model; torch otherwise (CUDA, a transformers model, llama.cpp not built yet).

Whatever the engine, an adapter llama.cpp cannot run ((IA)³, prompt tuning, a full fine-tune, a LoRA
it cannot hold) runs on torch, in the same process, per request. `EngineChoice` says which engine and
why; `unitune doctor`, `-v` and the language server's status show it.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unitune.adapters.constants import LORA
from unitune.errors import UnituneError
from unitune.logs import get_logger, log_event
from unitune.settings import ENGINES

log = get_logger("engines")

AUTO, TORCH, LLAMA_CPP = ENGINES


class EngineUnavailable(UnituneError):
    """The engine the settings name cannot run here; the message says what to do."""


@dataclass(frozen=True)
class EngineChoice:
    engine: str  # TORCH or LLAMA_CPP
    reason: str
    notice: bool = False  # the user is told even without `-v` (a build started for them)
    needs_build: bool = False  # llama.cpp would serve once its server is built


def choose_engine(spec) -> EngineChoice:
    """The engine for `spec`'s base model (adapters may still send a request to torch: `for_adapter`).
    Raises `EngineUnavailable` when `engine = "llama.cpp"` cannot be honoured."""
    from unitune.runtime.llama_server import find_server_binary

    wanted = getattr(spec, "engine", AUTO)
    if wanted == TORCH:
        return EngineChoice(TORCH, "engine = torch")
    if wanted == AUTO:
        if spec.device in ("cuda", "mps") or (spec.device == "auto" and _has_gpu()):
            return EngineChoice(TORCH, "a GPU is here: torch runs the model on it")
        if not sys.platform.startswith("linux"):
            return EngineChoice(TORCH, "llama.cpp is built by unitune on Linux only")
    problem = _not_gguf(spec.model)
    if problem:
        if wanted == LLAMA_CPP:
            raise EngineUnavailable(f"engine = llama.cpp, but {problem}")
        return EngineChoice(TORCH, problem)
    if find_server_binary() is None:
        if wanted == LLAMA_CPP:
            raise EngineUnavailable("engine = llama.cpp, but llama.cpp's server is not built here: run "
                                    "`unitune engine install` (minutes, once), or set engine = \"torch\"")
        return EngineChoice(TORCH, "llama.cpp's server is not built (`unitune engine install` builds it, once)",
                            needs_build=True)
    if wanted == LLAMA_CPP:
        return EngineChoice(LLAMA_CPP, "engine = llama.cpp")
    return EngineChoice(LLAMA_CPP, "on a CPU llama.cpp runs the GGUF weights as shipped, faster than torch")


def choose_and_build(spec) -> EngineChoice:
    """`choose_engine`, and when llama.cpp only waits for its server to be built, the build started in
    the background (`unitune.runtime.llama_server.start_background_build`); torch serves meanwhile."""
    choice = choose_engine(spec)
    if choice.needs_build:
        from unitune.runtime.llama_server import start_background_build

        started = start_background_build()
        if started:
            return EngineChoice(TORCH, started, notice=True)
    return choice


def for_adapter(choice: EngineChoice, adapter) -> EngineChoice:
    """The engine for a request with `adapter` (a registry entry, or None for the bare base)."""
    if choice.engine != LLAMA_CPP or adapter is None:
        return choice
    if adapter.method != LORA:
        return EngineChoice(TORCH, f"adapter {adapter.name!r} is {adapter.method}; llama.cpp runs LoRA adapters only")
    problem = _lora_problem(adapter)
    return EngineChoice(TORCH, problem) if problem else choice


def _has_gpu() -> bool:
    """An NVIDIA driver is loaded (without importing torch, which the llama.cpp path does not need)."""
    return Path("/proc/driver/nvidia/version").exists()


def _not_gguf(model: str) -> str | None:
    from unitune.runtime.builtin_models import BUILTIN_MODELS
    from unitune.runtime.llama_cpp import GGUF_SUFFIX

    builtin = BUILTIN_MODELS.get(model)
    if builtin is not None:
        return None if builtin.packaged is not None else f"the built-in {model} has no GGUF file"
    if Path(model).expanduser().suffix.lower() == GGUF_SUFFIX and Path(model).expanduser().is_file():
        return None
    return f"model = {model} is not a GGUF file, which llama.cpp needs"


def _lora_problem(adapter) -> str | None:
    """Why llama.cpp cannot hold this LoRA adapter, or None."""
    import json

    from unitune.adapters.constants import ADAPTER_CONFIG_FILE
    from unitune.files import UnreadableFileError, read_regular_text
    from unitune.runtime.llama_cpp import unsupported_lora_parts

    try:
        config = json.loads(read_regular_text(Path(adapter.path) / ADAPTER_CONFIG_FILE))
    except (OSError, ValueError, UnreadableFileError):
        return f"adapter {adapter.name!r} has no readable {ADAPTER_CONFIG_FILE}"
    unsupported = unsupported_lora_parts(config)
    return f"adapter {adapter.name!r} uses {', '.join(unsupported)}, which llama.cpp cannot hold" if unsupported else None


class EngineRuntime:
    """The runtime `TestGenerator` is given: llama.cpp for the base and LoRA adapters, torch in this
    process for the rest, each started only when a request needs it. `route` is the engine of the
    request being served (set by `activate`); the caller serialises requests, as with one runtime."""

    def __init__(self, spec, choice: EngineChoice):
        from unitune.runtime.runtime import ModelRuntime

        self.spec, self.choice = spec, choice
        self.torch = ModelRuntime(spec)
        self.fast = None
        if choice.engine == LLAMA_CPP:
            from unitune.runtime.llama_cpp_runtime import LlamaCppRuntime
            from unitune.runtime.llama_server import find_server_binary

            self.fast = LlamaCppRuntime(spec, find_server_binary())
        self.route: Any = self.fast or self.torch
        self.served_by = choice  # the engine of the latest request, and why

    @property
    def batches_here(self) -> bool:
        return self.route.batches_here

    @property
    def loaded(self) -> bool:
        return (self.fast or self.torch).loaded

    @property
    def state(self) -> str:
        return self.route.state

    @property
    def base(self):
        return self.load()

    def load(self, progress=None):
        """The base of the preferred engine: its tokenizer and window build every request's prompt (the
        same model on both engines, so the same prompt)."""
        return (self.fast or self.torch).load(progress)

    def activate(self, adapter) -> float:
        chosen = for_adapter(self.choice, adapter)
        self.route = self.fast if chosen.engine == LLAMA_CPP else self.torch
        if chosen != self.served_by:
            log_event(log, "engine.chosen", engine=chosen.engine, reason=chosen.reason,
                      adapter=adapter.name if adapter else "(base)")
        self.served_by = chosen
        return self.route.activate(adapter)

    def complete(self, *args, **kwargs):
        return self.route.complete(*args, **kwargs)

    @contextmanager
    def active_model(self):
        with self.torch.active_model() as pair:
            yield pair

    @contextmanager
    def mixed_lora_model(self, adapters: list):
        with self.torch.mixed_lora_model(adapters) as triple:
            yield triple

    def resident_adapters(self) -> list[str]:
        return self.route.resident_adapters()

    def status(self) -> dict:
        return {**self.route.status(), "engine": self.served_by.engine, "engine_reason": self.served_by.reason}

    def close(self) -> None:
        if self.fast is not None:
            self.fast.close()

