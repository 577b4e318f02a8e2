"""Generating through an inference server (`server_url`): vLLM or llama.cpp's server, over the
OpenAI-compatible `POST /v1/completions`, behind what `TestGenerator` asks of a runtime (`load`,
`activate`, `complete`, `status`).

Only the model's part moves. The prompt is built here, by `unitune.prompt` with the `model` setting's
own tokenizer, and sent as text; the completions come back cut by the same stop rule into the same
`Completion`s, so post-processing and the assured pipeline do not know where the model ran.

- The server's base model must be the `model` setting's (`same_model`), or the prompts would be built
  with another model's tokenizer and chat template; an adapter's card must name that base too.
- The adapter is chosen per request. vLLM serves a LoRA adapter under its name in `model` (put there
  by `unitune adapters publish`); llama.cpp's server takes `lora: [{"id": N, "scale": 1.0}]` for its
  adapter file `NAME.gguf`, and `lora: [{"id": 0, "scale": 0.0}]` for the bare base (every adapter
  at 0; not `[]`, see `_request_body`). Only LoRA adapters can be served this way.
- One candidate is greedy (temperature 0); several are sampled as `SamplingOptions` says (`n`; llama.cpp's
  server is asked once per candidate, since its `/v1/completions` writes one, all at once so that its
  slots decode them in one batch).
- The server stops at `unitune.stopping.stop_strings`; the stop string it reports (vLLM's
  `stop_reason`) is fed back to the scanner, so it cuts where it would in this process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from unitune.adapters.constants import LORA
from unitune.runtime.engines import EngineChoice
from unitune.adapters.errors import AdapterError, AdapterMismatchError, InferenceServerError
from unitune.runtime.generation import Completion, GenerationStats, SamplingOptions
from unitune.runtime.inference_client import ServerClient
from unitune.runtime.runtime import FAILED, IDLE, LOADING, READY
from unitune.runtime.served_models import (
    LLAMA_CPP, VLLM, ServerModels, list_models, llama_cpp_lora_id, load_tokenizer, local_model_id,
)
from unitune.errors import GenerationCancelled, UnituneError
from unitune.logs import get_logger, log_event, new_request_id
from unitune.prompt import SUPPORTED_PROMPT_FORMATS
from unitune.stopping import StopScanner, stop_strings

log = get_logger("remote")

#: What `unitune.request.PROMPT_TOKENS` budgets a server's prompts as.
SERVER_DEVICE = "server"
#: The engine `status` names for a model served at `server_url`.
SERVER_ENGINE = "server"
#: Seconds a completion request may take when the caller gives no time budget.
COMPLETION_TIMEOUT_SECONDS = 300.0
#: The window assumed when neither the server nor the model's config names one.
FALLBACK_CONTEXT_LENGTH = 2048


@dataclass
class ServedModel:
    """The server's base model, as `TestGenerator` sees a loaded model: the tokenizer that builds the
    prompts, where the model runs, and its window."""

    tokenizer: Any
    model_id: str  # the `model` setting's id (what adapters' cards name)
    models: ServerModels
    context_length: int
    device: str = SERVER_DEVICE
    quantization: str = "chosen by the server"


@dataclass
class _ActiveAdapter:
    name: str
    llama_cpp_id: int | None = None  # llama.cpp: the adapter's id in `GET /lora-adapters`
    entry: Any = field(default=None, repr=False)


class RemoteRuntime:
    """The model of `spec.model`, served at `spec.server_url`. Thread-safe like `ModelRuntime`."""

    #: The server batches the requests it is sent by itself (`unitune.runtime.runtime.Runtime`).
    batches_here = False

    def __init__(self, spec, client: ServerClient | None = None):
        self.spec = spec
        self.client = client or ServerClient(spec.server_url)
        self.lock = threading.RLock()
        self.state = IDLE
        self.error: str | None = None
        self.active: _ActiveAdapter | None = None
        self._served: ServedModel | None = None
        self.base_loads = 0  # nothing is loaded here; kept for `status`
        self.served_by = EngineChoice(SERVER_ENGINE, f"server_url = {self.client.base_url}")

    @property
    def loaded(self) -> bool:
        return self._served is not None

    @property
    def base(self) -> ServedModel:
        return self.load()

    def load(self, progress=None) -> ServedModel:
        """Ask the server what it serves and read the tokenizer, once. `progress(stage, done, total)`
        hears of a first use that converts the model (for its tokenizer)."""
        with self.lock:
            if self._served is None:
                self.state = LOADING
                try:
                    self._served = self._connect(progress)
                except UnituneError as error:
                    self.state, self.error = FAILED, str(error)
                    raise
                self.state, self.error = READY, None
            return self._served

    def _connect(self, progress) -> ServedModel:
        models = list_models(self.client)
        model_id = local_model_id(self.spec.model)
        if not models.serves(model_id):
            raise InferenceServerError(
                f"the inference server at {self.client.base_url} serves {models.base_id}, but model = "
                f"{self.spec.model}: set model to the model the server serves (its Hugging Face id or folder), "
                "whose tokenizer builds the prompts")
        tokenizer = load_tokenizer(self.spec.model, self.spec.trust_remote_code, progress)
        context = models.context_length or _configured_window(tokenizer) or FALLBACK_CONTEXT_LENGTH
        log_event(log, "server.connected", url=self.client.base_url, kind=models.kind, model=models.base_id,
                  context_length=context, loras=len(models.loras))
        return ServedModel(tokenizer, model_id, models, context)

    # -- adapters -----------------------------------------------------------------------------
    def resident_adapters(self) -> list[str]:
        return sorted(self._served.models.loras) if self._served else []

    def activate(self, adapter) -> float:
        """Make `adapter` (a registry entry, or None for the bare base) the one requests name."""
        started = time.perf_counter()
        with self.lock:
            served = self.load()
            self.active = None if adapter is None else self._resolve(adapter, served)
        elapsed = time.perf_counter() - started
        log_event(log, "adapter.activated", adapter=adapter.name if adapter else "(base)", server=self.client.base_url,
                  seconds=elapsed)
        return elapsed

    def _resolve(self, adapter, served: ServedModel) -> _ActiveAdapter:
        url = self.client.base_url
        if adapter.method != LORA:
            raise AdapterError(
                f"adapter {adapter.name!r} is {adapter.method}; an inference server serves LoRA adapters only: "
                "unset server_url to use it on this machine, or train a LoRA adapter (`--method lora`)")
        card = getattr(adapter, "card", None)
        if card is not None:
            if not served.models.serves(card.base_model.id):
                raise AdapterMismatchError(
                    f"adapter {adapter.name!r} was trained on base {card.base_model.id} but the inference server at "
                    f"{url} serves {served.models.base_id}; point server_url at a server of that base")
            if card.prompt_format_version not in SUPPORTED_PROMPT_FORMATS:
                raise AdapterMismatchError(
                    f"adapter {adapter.name!r} was trained with prompt format {card.prompt_format_version} but this "
                    f"unitune builds prompt format {' or '.join(map(str, SUPPORTED_PROMPT_FORMATS))}; retrain the "
                    "adapter with `unitune train`")
        if served.models.kind == LLAMA_CPP:
            return _ActiveAdapter(adapter.name, llama_cpp_lora_id(self.client, adapter.name), adapter)
        if adapter.name not in served.models.loras:  # published since we last asked?
            served.models.loras = list_models(self.client).loras
        if adapter.name not in served.models.loras:
            raise InferenceServerError(
                f"adapter {adapter.name!r} is not loaded on the inference server at {url}; publish it: "
                f"`unitune adapters publish {adapter.name} --server {url}`")
        return _ActiveAdapter(adapter.name, None, adapter)

    # -- what generation calls ----------------------------------------------------------------
    def complete(self, text: str, options: SamplingOptions, make_scanner: Callable[[], StopScanner], *,
                 context_length: int, cancel: threading.Event | None = None,
                 on_token: Callable[[int], None] | None = None, request_id: str | None = None,
                 timeout: float | None = None) -> GenerationStats:
        """`options.candidates` completions of the model input `text` with the active adapter, each cut
        where its test ended: what `generate_completions` gives in this process. A prompt longer than
        `context_length` less the new tokens keeps its end. Raises `GenerationCancelled` when `cancel`
        is set before the answer."""
        served = self.load()
        request_id = request_id or new_request_id("gen")
        started = time.perf_counter()
        tokenizer = served.tokenizer
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        room = max(16, context_length - options.max_new_tokens)
        truncated = len(ids) > room
        prompt = tokenizer.decode(ids[-room:]) if truncated else text
        scanner = make_scanner()
        body = self._request_body(served, prompt, options, stop_strings(scanner.language, scanner.def_indent))
        asks = 1 if served.models.kind == VLLM else options.candidates
        log_event(log, "generate.start", request_id=request_id, server=self.client.base_url, model=body["model"],
                  prompt_tokens=min(len(ids), room), candidates=options.candidates,
                  max_new_tokens=options.max_new_tokens, truncated=truncated or None)
        choices: list[dict] = []
        prompt_tokens = new_tokens = 0
        bodies = [{**body, "seed": options.seed + ask} if asks > 1 and options.seed is not None else body
                  for ask in range(asks)]

        def ask(one: dict):
            return self.client.post("/v1/completions", one, timeout=timeout or COMPLETION_TIMEOUT_SECONDS,
                                    cancel=cancel, request_id=request_id)

        try:
            if asks > 1:  # together: the server decodes its slots in one batch
                with ThreadPoolExecutor(asks, thread_name_prefix="unitune-ask") as pool:
                    answers = list(pool.map(ask, bodies))
            else:
                answers = [ask(bodies[0])]
            for answer in answers:
                got, usage = _choices(answer.body, self.client.base_url)
                choices += got
                prompt_tokens = usage.get("prompt_tokens") or prompt_tokens
                new_tokens += usage.get("completion_tokens") or 0
        except GenerationCancelled:
            log_event(log, "generate.cancelled", request_id=request_id, seconds=time.perf_counter() - started)
            raise
        completions = [_completion(choice, make_scanner, tokenizer) for choice in choices]
        if on_token is not None:
            on_token(max((c.tokens for c in completions), default=0))
        seconds = time.perf_counter() - started
        stats = GenerationStats(request_id, prompt_tokens or min(len(ids), room),
                                new_tokens or sum(c.tokens for c in completions), seconds, truncated, completions)
        log_event(log, "generate.done", request_id=request_id, server=self.client.base_url, new_tokens=stats.new_tokens,
                  seconds=seconds, ended=sum(c.ended for c in completions))
        return stats

    def _request_body(self, served: ServedModel, prompt: str, options: SamplingOptions, stop: list[str]) -> dict:
        greedy = options.candidates == 1
        active = self.active
        body: dict[str, Any] = {
            "model": active.name if active and served.models.kind == VLLM else served.models.base_id,
            "prompt": prompt,
            "max_tokens": options.max_new_tokens,
            "temperature": 0.0 if greedy else options.temperature,
            "top_p": 1.0 if greedy else options.top_p,
            "n": options.candidates if served.models.kind == VLLM else 1,
            "stop": stop,
            # vLLM would otherwise add the tokenizer's special tokens (a BOS) to a prompt that is given
            # whole, as this process gives it to the model.
            "add_special_tokens": False,
        }
        if options.seed is not None:
            body["seed"] = options.seed
        if served.models.kind == LLAMA_CPP:
            # Not an empty list for the bare base: llama.cpp's server then keeps the slot's prompt cache,
            # computed with the previous request's adapter, and answers as if that adapter still applied.
            # A list naming an adapter at scale 0 (the others get 0 too) makes it see the change.
            body["lora"] = [{"id": active.llama_cpp_id, "scale": 1.0}] if active else [{"id": 0, "scale": 0.0}]
        return body

    def status(self) -> dict:
        served = self._served
        return {
            "state": self.state,
            "error": self.error,
            "model": served.models.base_id if served else self.spec.model,
            "server_url": self.client.base_url,
            "server_kind": served.models.kind if served else None,
            "device": SERVER_DEVICE,
            "quantization": None,
            "active_adapter": self.active.name if self.active else None,
            "resident_adapters": self.resident_adapters(),
            "injected_method": None,
            "base_loads": self.base_loads,
        }


def _choices(body: Any, url: str) -> tuple[list[dict], dict]:
    """The completions of an answer, in order, and its token usage."""
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not all(
            isinstance(choice, dict) and isinstance(choice.get("text"), str) for choice in choices):
        raise InferenceServerError(
            f"the inference server at {url} answered /v1/completions without completions; is it an "
            "OpenAI-compatible server (vLLM, llama.cpp's llama-server)?")
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    return sorted(choices, key=lambda choice: choice.get("index") or 0), usage


def _completion(choice: dict, make_scanner: Callable[[], StopScanner], tokenizer) -> Completion:
    """A server's completion, cut where the stop rule says its test ended (as in this process)."""
    text = choice["text"]
    scanner = make_scanner()
    end = scanner.feed(text)
    ended = end is not None
    if end is None and choice.get("finish_reason") == "stop":
        # The server stopped at a stop string (left out of `text`; vLLM names it) or at the end of
        # text: either way the test ended there.
        if isinstance(choice.get("stop_reason"), str):
            end = scanner.feed(choice["stop_reason"])
        end = end if end is not None else scanner.finish()
        end, ended = min(end if end is not None else len(text), len(text)), True
    tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return Completion(text[:end] if end is not None else text, tokens, ended)


def _configured_window(tokenizer) -> int | None:
    length = getattr(tokenizer, "model_max_length", None)
    return length if isinstance(length, int) and 0 < length < 10**7 else None
