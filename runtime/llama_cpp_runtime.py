"""The model on llama.cpp in a server of unitune's own: the shipped GGUF weights as they are, LoRA adapters
chosen per request.

`LlamaCppRuntime` is `RemoteRuntime` (`unitune.runtime.remote`) with the server started, and stopped, by
unitune: on 127.0.0.1, on the base model's GGUF file (`unitune.runtime.llama_cpp.base_gguf`: the built-in
model's parts joined once, no conversion), with every LoRA adapter it has served so far loaded and none
applied. Requests then name their adapter (`lora: [{"id", "scale"}]`), which costs nothing to switch.
An adapter met for the first time is converted to llama.cpp's GGUF adapter format once, into
`$UNITUNE_HOME/gguf/<its hash>/NAME.gguf` (a retrained adapter has another hash, so another file), and
the server is started again with it (a second or two; the base is memory-mapped).

Prompts are built as in this process on a CPU (the same budget of prompt tokens, the tokenizer read
from the GGUF file itself), so both engines get the same prompt.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import time
from collections import OrderedDict
from pathlib import Path

from unitune.adapters.constants import ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, LORA
from unitune.runtime.inference_client import ServerClient
from unitune.runtime.llama_cpp import GGUF_FOLDER, base_gguf, gguf_tokenizer, lora_to_gguf, server_command
from unitune.runtime.llama_server import LlamaServerProcess
from unitune.runtime.remote import RemoteRuntime, ServedModel
from unitune.runtime.served_models import list_models, local_model_id
from unitune.logs import get_logger, log_event

log = get_logger("llama_cpp_runtime")

#: Adapters kept loaded in the server; past this the least recently used is left out at the next start.
MAX_LOADED_ADAPTERS = 8
#: Tokens of context per server slot: a CPU request's prompt budget (2,048) and its answer fit.
SLOT_CONTEXT = 4096
#: Requests the server decodes together (the candidates of a sampled round are sent at once).
SLOTS = 4
#: Threads the server computes with: half the cores. On two cores with one kept busy by other work (an
#: editor's machine is never idle), two threads decode at 0.7 tokens/s against 43 on idle cores, as each
#: step waits for the thread that lost its core; one thread decodes at 28 either way
#: (`python bench/engines.py --busy`, docs/engines.md).
THREADS = max(1, (os.cpu_count() or 2) // 2)
#: What a request's prompt is budgeted as: the same as the model in this process on a CPU.
PROMPT_DEVICE = "cpu"
SERVER_LOG = "llama-server.log"


class LlamaCppRuntime(RemoteRuntime):
    """`spec.model` served by a llama-server this runtime starts (lazily) and stops."""

    engine = "llama.cpp"

    def __init__(self, spec, binary: Path):
        super().__init__(spec, client=ServerClient("http://127.0.0.1:1"))  # the real port comes with the start
        self.binary = binary
        self.process: LlamaServerProcess | None = None
        self.base_file: Path | None = None
        self.adapter_files: OrderedDict[str, Path] = OrderedDict()  # name -> converted file, most recent last
        self._tokenizer = None
        self.starts = 0
        atexit.register(self.close)

    def _connect(self, progress) -> ServedModel:
        self.base_file = base_gguf(self.spec.model, progress)
        if self._tokenizer is None:
            self._tokenizer = gguf_tokenizer(self.spec.model, self.base_file, progress)
        self._start()
        models = list_models(self.client)
        return ServedModel(self._tokenizer, local_model_id(self.spec.model), models, SLOT_CONTEXT,
                           device=PROMPT_DEVICE, quantization=f"{self.base_file.name} as it is (llama.cpp)")

    def _start(self) -> None:
        from unitune.settings import data_home

        self.close()
        command = server_command(str(self.binary), self.base_file, list(self.adapter_files.values()), 0,
                                 context=SLOT_CONTEXT * SLOTS, parallel=SLOTS, threads=THREADS)
        started = time.perf_counter()
        self.process = LlamaServerProcess(command, data_home() / "logs" / SERVER_LOG).start()
        self.client = ServerClient(self.process.url)
        self.starts += 1
        log_event(log, "engine.started", engine=self.engine, url=self.process.url, adapters=len(self.adapter_files),
                  seconds=time.perf_counter() - started)

    def activate(self, adapter) -> float:
        if adapter is not None and adapter.method == LORA:
            with self.lock:
                served = self.load()
                converted = self._converted(adapter)
                if self.adapter_files.get(adapter.name) != converted:
                    self.adapter_files[adapter.name] = converted
                    while len(self.adapter_files) > MAX_LOADED_ADAPTERS:
                        self.adapter_files.popitem(last=False)
                    self._start()
                    served.models = list_models(self.client)
                self.adapter_files.move_to_end(adapter.name)
        return super().activate(adapter)

    def _converted(self, adapter) -> Path:
        """The adapter as llama.cpp's GGUF file, converted once per version of its weights."""
        from unitune.settings import data_home

        digest = adapter_digest(Path(adapter.path))
        target = data_home() / GGUF_FOLDER / digest / f"{adapter.name}.gguf"
        if not target.is_file():
            started = time.perf_counter()
            lora_to_gguf(adapter, target, self.spec.model)
            log_event(log, "adapter.converted", adapter=adapter.name, file=target, seconds=time.perf_counter() - started)
        return target

    def status(self) -> dict:
        return {**super().status(), "engine": self.engine, "server_url": self.process.url if self.process else None,
                "quantization": self._served.quantization if self._served else None}

    def close(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


def adapter_digest(folder: Path) -> str:
    """First 16 hex digits of the SHA-256 of an adapter's config and weights: its version."""
    digest = hashlib.sha256()
    for name in (ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE):
        path = folder / name
        if path.is_file():
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]
