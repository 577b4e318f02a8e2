"""The model runtime: one resident base model, several resident adapters, switched without reloading
the base weights.

PEFT holds adapters of one type per model (LoRA, (IA)³ and prompt tuning cannot be mixed), so the
runtime keeps one *injected group*: a PeftModel around the base holding adapters of one method.
Switching within the group is `set_adapter` (milliseconds). Switching to another method ejects the
group (`unload()` restores the base's own modules, nothing merged) and injects the other method;
adapter weights stay in memory as state dicts, so no file is read again. The bare base is the injected
group with its adapters disabled. A full fine-tune is a model of its own, kept beside the base.
Resident adapters are bounded by an LRU; the least recently used is dropped (and deleted from the
group) when the bound is passed.
"""

from __future__ import annotations

import contextlib
import copy
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any, Iterator, Protocol

from unitune.adapters.constants import ADAPTER_WEIGHTS_FILE, FULL, IA3, LORA
from unitune.runtime.adapter_fit import check_lora_fits
from unitune.runtime.engines import TORCH as TORCH_ENGINE, EngineChoice
from unitune.runtime.generation import GenerationStats, SamplingOptions, generate_completions
from unitune.runtime.loading import LoadedModel, ModelSpec, load_model
from unitune.errors import ModelLoadError, UnituneError
from unitune.files import require_regular
from unitune.logs import get_logger, log_event
from unitune.prompt import SUPPORTED_PROMPT_FORMATS

log = get_logger("runtime")

# Runtime states, as `unitune.status` reports them.
IDLE, LOADING, READY, FAILED = "idle", "loading", "ready", "failed"
DEFAULT_MAX_RESIDENT = 4
# Full fine-tunes are whole models: keep at most this many beside the base.
MAX_RESIDENT_FULL = 1
# What `adapter_names=` calls the bare base in a mixed LoRA batch.
PEFT_BASE_NAME = "__base__"


def runtime_for(spec: ModelSpec) -> Any:
    """The runtime for `spec`: on the inference server at `spec.server_url`
    (`unitune.runtime.remote.RemoteRuntime`), else on the engine `spec.engine` chooses: llama.cpp
    with torch beside it for what llama.cpp cannot run (`unitune.runtime.engines.EngineRuntime`), or
    torch alone."""
    if spec.server_url:
        from unitune.runtime.remote import RemoteRuntime

        return RemoteRuntime(spec)
    from unitune.runtime.engines import TORCH, EngineRuntime, choose_and_build

    choice = choose_and_build(spec)
    log_event(log, "engine.chosen", engine=choice.engine, reason=choice.reason, model=spec.model)
    if choice.engine == TORCH:
        runtime = ModelRuntime(spec)
        runtime.served_by = choice
        return runtime
    return EngineRuntime(spec, choice)


def peft_adapter_name(name: str) -> str:
    """The name an adapter gets inside PEFT: never `lora`, `ia3` or `prompt`, which clash with PEFT's
    own module prefixes, and a valid module name (registry names may hold `.` and `-`)."""
    return "u_" + re.sub(r"[^0-9a-zA-Z_]", "_", name)


@dataclass
class ResidentAdapter:
    """An adapter held in memory: its PEFT config and weights, or (full fine-tune) its model."""

    name: str
    method: str
    path: Path
    card: Any
    config: Any = None
    weights: dict | None = None
    model: LoadedModel | None = None
    loaded_at: float = field(default_factory=time.time)

    @property
    def peft_name(self) -> str:
        return peft_adapter_name(self.name)


class Runtime(Protocol):
    """What generation asks of the model, wherever it runs: in this process (`ModelRuntime`), on an
    inference server (`unitune.runtime.remote.RemoteRuntime`, `LlamaCppRuntime`), or on the engine each
    adapter needs (`unitune.runtime.engines.EngineRuntime`)."""

    #: Several requests' first samples may be decoded here in one mixed-adapter batch
    #: (`unitune.generation.batching`); a server batches what it is sent by itself.
    batches_here: bool

    @property
    def loaded(self) -> bool: ...

    def load(self, progress=None) -> Any:
        """The base model (its tokenizer and window build every prompt), loaded or connected once."""

    def activate(self, adapter) -> float:
        """Make `adapter` (a registry entry, or None for the bare base) the one the next call uses."""

    def complete(self, text: str, options: SamplingOptions, make_scanner: Callable[[], Any], *, context_length: int,
                 cancel: threading.Event | None = None, on_token: Callable[[int], None] | None = None,
                 request_id: str | None = None, timeout: float | None = None) -> GenerationStats:
        """`options.candidates` completions of the model input `text` with the active adapter, each cut
        where its test ended."""

    def resident_adapters(self) -> list[str]: ...

    def status(self) -> dict: ...


class ModelRuntime:
    """Owns the base model and the resident adapters; every model call goes through it.

    Thread-safe: one lock serialises switching and generating, so the language server can call it
    from a worker thread while the event loop keeps answering."""

    batches_here = True

    def __init__(self, spec: ModelSpec, max_resident: int = DEFAULT_MAX_RESIDENT):
        self.spec = spec
        self.max_resident = max(1, max_resident)
        self.state = IDLE
        self.error: str | None = None
        self.lock = threading.RLock()
        self._base: LoadedModel | None = None
        self._group: Any = None  # the PeftModel of the injected group
        self._group_method: str | None = None
        self._resident: OrderedDict[str, ResidentAdapter] = OrderedDict()
        self.active: str | None = None
        self.base_loads = 0  # how often base weights were read from disk (switching must not add any)
        self.served_by = EngineChoice(TORCH_ENGINE, "engine = torch")  # `runtime_for` says why torch

    # -- the base -----------------------------------------------------------------------------
    @property
    def loaded(self) -> bool:
        return self._base is not None

    @property
    def base(self) -> LoadedModel:
        return self.load()

    def load(self, progress=None) -> LoadedModel:
        """Load the base model once (lazily); later calls return it. `progress(stage, done, total)`
        hears of a first use that converts the model."""
        with self.lock:
            if self._base is None:
                self.state = LOADING
                try:
                    self._base = load_model(self.spec, progress=progress)
                    self.base_loads += 1
                except UnituneError as error:
                    self.state, self.error = FAILED, str(error)
                    raise
                except Exception as error:  # an unexpected library error: still one sentence for the user
                    self.state, self.error = FAILED, f"{type(error).__name__}: {error}"
                    raise ModelLoadError(f"cannot load {self.spec.model}: {type(error).__name__}: {error}") from error
                self.state, self.error = READY, None
            return self._base

    # -- adapters -----------------------------------------------------------------------------
    def resident_adapters(self) -> list[str]:
        return list(self._resident)

    def activate(self, adapter) -> float:
        """Make `adapter` (a registry entry with `.name`, `.path`, `.method`, `.card`; or None for the
        bare base) the one generation uses. Returns the seconds it took."""
        started = time.perf_counter()
        with self.lock:
            self.load()
            if adapter is None:
                self.active = None
            else:
                resident = self._resident_for(adapter)
                if resident.method != FULL:
                    self._inject(resident)
                self.active = resident.name
        elapsed = time.perf_counter() - started
        log_event(log, "adapter.activated", adapter=self.active or "(base)", seconds=elapsed)
        return elapsed

    def _resident_for(self, adapter) -> ResidentAdapter:
        resident = self._resident.get(adapter.name)
        if resident is not None and Path(resident.path) == Path(adapter.path):
            self._resident.move_to_end(adapter.name)
            return resident
        self._check_card(adapter)
        resident = self._read(adapter)
        self._resident[adapter.name] = resident
        self._resident.move_to_end(adapter.name)
        self._evict()
        return resident

    def _check_card(self, adapter) -> None:
        card = getattr(adapter, "card", None)
        if card is None:
            return
        from unitune.adapters.card import check_compatible

        if adapter.method == FULL:
            # A full fine-tune is a model of its own: only its prompt format has to be one unitune builds.
            check_compatible(card, card.base_model.id, card.base_model.weights_hash, SUPPORTED_PROMPT_FORMATS)
            return
        base = self._base
        check_compatible(card, base.model_id, base.fingerprint, SUPPORTED_PROMPT_FORMATS)

    def _read(self, adapter) -> ResidentAdapter:
        path = Path(adapter.path)
        if adapter.method == FULL:
            full = [r for r in self._resident.values() if r.method == FULL]
            for old in full[: max(0, len(full) - MAX_RESIDENT_FULL + 1)]:
                self._drop(old.name)
            model = load_model(self.spec, folder=path)
            return ResidentAdapter(adapter.name, FULL, path, adapter.card, model=model)
        from peft import PeftConfig
        from safetensors.torch import load_file

        config = PeftConfig.from_pretrained(str(path))
        config.inference_mode = True
        weights = load_file(str(require_regular(path / ADAPTER_WEIGHTS_FILE)), device="cpu")
        if adapter.method == LORA:
            check_lora_fits(path, config, weights, self._base.model)
        return ResidentAdapter(adapter.name, adapter.method, path, adapter.card, config=config, weights=weights)

    def _evict(self) -> None:
        while len(self._resident) > self.max_resident:
            oldest = next(iter(self._resident))
            if oldest == self.active and len(self._resident) > 1:
                self._resident.move_to_end(oldest)
                continue
            self._drop(oldest)

    def _drop(self, name: str) -> None:
        resident = self._resident.pop(name, None)
        if resident is None:
            return
        if self._group is not None and resident.peft_name in self._group.peft_config:
            if len(self._group.peft_config) == 1:
                self._eject()
            else:
                if self._group.active_adapter == resident.peft_name:
                    self._group.set_adapter(next(n for n in self._group.peft_config if n != resident.peft_name))
                self._group.delete_adapter(resident.peft_name)
        if self.active == name:
            self.active = None
        log_event(log, "adapter.evicted", adapter=name)

    def _inject(self, resident: ResidentAdapter) -> None:
        from peft import get_peft_model, set_peft_model_state_dict

        if self._group is not None and self._group_method == resident.method:
            if resident.peft_name not in self._group.peft_config:
                self._group.add_adapter(resident.peft_name, copy.deepcopy(resident.config))
                set_peft_model_state_dict(self._group, resident.weights, adapter_name=resident.peft_name)
            self._group.set_adapter(resident.peft_name)
            return
        self._eject()
        self._group = get_peft_model(self._base.model, copy.deepcopy(resident.config), adapter_name=resident.peft_name)
        set_peft_model_state_dict(self._group, resident.weights, adapter_name=resident.peft_name)
        self._group.eval()
        self._group_method = resident.method

    def _eject(self) -> None:
        """Take the injected group out of the base, restoring the base's own modules (nothing merged)."""
        if self._group is None:
            return
        if self._group_method in (LORA, IA3):
            self._base.model = self._group.unload()
        else:  # prompt tuning wraps the base without changing its modules
            self._base.model = self._group.get_base_model()
        self._group, self._group_method = None, None

    # -- what generation calls --------------------------------------------------------------
    def complete(self, text: str, options: SamplingOptions, make_scanner: Callable[[], Any], *, context_length: int,
                 cancel: threading.Event | None = None, on_token: Callable[[int], None] | None = None,
                 request_id: str | None = None, timeout: float | None = None) -> GenerationStats:
        """The model's completions of `text` with the active adapter, generated in this process. There is
        no connection to time out here: the request's `cancel` ends a generation that runs too long."""
        with self.active_model() as (model, tokenizer):
            return generate_completions(model, tokenizer, text, options, make_scanner, context_length=context_length,
                                        cancel=cancel, on_token=on_token, request_id=request_id)

    @contextlib.contextmanager
    def active_model(self) -> Iterator[tuple[Any, Any]]:
        """(model, tokenizer) for the active adapter, held under the lock for the whole call."""
        with self.lock:
            base = self.load()
            if self.active is None:
                if self._group is not None:
                    with self._group.disable_adapter():
                        yield self._group, base.tokenizer
                else:
                    yield base.model, base.tokenizer
                return
            resident = self._resident[self.active]
            if resident.method == FULL:
                yield resident.model.model, resident.model.tokenizer
                return
            if self._group_method != resident.method or self._group.active_adapter != resident.peft_name:
                self._inject(resident)
            yield self._group, base.tokenizer

    @contextlib.contextmanager
    def mixed_lora_model(self, adapters: list) -> Iterator[tuple[Any, Any, list[str]]]:
        """(model, tokenizer, adapter_names) to generate one batch whose rows use different LoRA
        adapters (None = the bare base), through PEFT's `adapter_names=`."""
        with self.lock:
            base = self.load()
            names = []
            for adapter in adapters:
                if adapter is None:
                    names.append(PEFT_BASE_NAME)
                    continue
                resident = self._resident_for(adapter)
                if resident.method != LORA:
                    raise UnituneError(f"adapter {adapter.name} is {resident.method}; a mixed batch takes LoRA adapters only")
                self._inject(resident)
                names.append(resident.peft_name)
            if self._group is None:
                raise UnituneError("a mixed batch needs at least one LoRA adapter")
            yield self._group, base.tokenizer, names

    def status(self) -> dict:
        base = self._base
        return {
            "state": self.state,
            "error": self.error,
            "model": base.model_id if base else self.spec.model,
            "device": base.device if base else self.spec.device,
            "quantization": base.quantization if base else self.spec.quantization,
            "active_adapter": self.active,
            "resident_adapters": self.resident_adapters(),
            "injected_method": self._group_method,
            "base_loads": self.base_loads,
            "engine": self.served_by.engine,
            "engine_reason": self.served_by.reason,
        }
