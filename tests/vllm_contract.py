"""A CONTRACT of vLLM's documented OpenAI-compatible API, served over real HTTP from a thread: what
unitune's remote backend (`unitune.runtime.remote`, `unitune.runtime.publish`) is tested against,
since vLLM itself needs a GPU. It is not vLLM; it answers in the shapes vLLM documents, and records
every request so tests can check what unitune sent.

Where each shape comes from:
- https://docs.vllm.ai/en/latest/features/lora/ , "Dynamically serving LoRA Adapters":
  `POST /v1/load_lora_adapter` with `{"lora_name", "lora_path"}` answers 200 and the text
  `Success: LoRA adapter '<name>' added successfully.`; `POST /v1/unload_lora_adapter` with
  `{"lora_name"}`; both exist only when the server runs with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True;
  `GET /v1/models` lists the base model (`parent` null, `root` = what `vllm serve` was given) and each
  LoRA adapter (`parent` = the base's name, `root` = its folder); a request names a LoRA in `model`.
- vLLM's `vllm/entrypoints/openai/protocol.py` (`CompletionRequest`, `CompletionResponse`,
  `CompletionResponseChoice`, `ModelCard`, `ErrorResponse`): a completion choice carries `index`,
  `text`, `logprobs`, `finish_reason` ("stop" or "length") and `stop_reason` (the stop string that
  ended it, None for the end-of-text token); the stop string is left out of `text`
  (`include_stop_str_in_output` false); `usage` has `prompt_tokens`, `completion_tokens`,
  `total_tokens`; an unknown `model` is a 404 `NotFoundError`; errors are `{"error": {"message",
  "type", "param", "code"}}`.

What the "model" writes is given by the test (`model_output`), cut at the request's stop strings as
vLLM cuts it. Token counts are whitespace-separated words: this server has no tokenizer.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class VllmContractServer:
    """`with VllmContractServer(base="/models/chat-coder") as server: server.url ...`"""

    def __init__(self, base: str, model_output: str = "", max_model_len: int = 32768,
                 runtime_lora_updating: bool = True):
        self.base = base  # `vllm serve BASE`: the served name and the root
        self.model_output = model_output
        self.max_model_len = max_model_len
        self.runtime_lora_updating = runtime_lora_updating
        self.loras: dict[str, str] = {}  # name -> path
        self.requests: list[tuple[str, str, object]] = []  # (method, path, JSON body or None)
        self.completion_statuses: list[int] = []  # answered (one each, in order) before any completion
        self.completion_delay = 0.0
        self.disconnected = threading.Event()  # a client left while its answer was being "generated"
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def bodies(self, path: str) -> list:
        return [body for method, where, body in self.requests if where == path]

    def __enter__(self) -> "VllmContractServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- the API ------------------------------------------------------------------------------
    def get_routes(self) -> dict:
        return {"/v1/models": self.models}

    def models(self) -> dict:
        now = int(time.time())
        cards = [{"id": self.base, "object": "model", "created": now, "owned_by": "vllm", "root": self.base,
                  "parent": None, "max_model_len": self.max_model_len, "permission": [_permission(now)]}]
        cards += [{"id": name, "object": "model", "created": now, "owned_by": "vllm", "root": path,
                   "parent": self.base, "max_model_len": None, "permission": [_permission(now)]}
                  for name, path in self.loras.items()]
        return {"object": "list", "data": cards}

    def completion(self, request: dict) -> tuple[int, object]:
        if self.completion_statuses:
            status = self.completion_statuses.pop(0)
            return status, _error(f"answered with {status} by the test", "ServiceUnavailableError", status)
        model = request.get("model")
        if model not in (self.base, *self.loras):
            return 404, _error(f"The model `{model}` does not exist.", "NotFoundError", 404)
        if not isinstance(request.get("prompt"), str) or not isinstance(request.get("max_tokens", 16), int):
            return 400, _error("prompt must be a string and max_tokens an integer", "BadRequestError", 400)
        stops = request.get("stop") or []
        stops = [stops] if isinstance(stops, str) else stops
        cut = min(((self.model_output.find(stop), stop) for stop in stops if stop in self.model_output),
                  default=None)
        text, stop_reason = (self.model_output[: cut[0]], cut[1]) if cut else (self.model_output, None)
        words = len(text.split())
        finish = "length" if words > request.get("max_tokens", 16) else "stop"
        choices = [{"index": index, "text": text, "logprobs": None, "finish_reason": finish,
                    "stop_reason": stop_reason if finish == "stop" else None, "prompt_logprobs": None}
                   for index in range(request.get("n", 1))]
        prompt_words = len(request["prompt"].split())
        return 200, {"id": f"cmpl-{len(self.requests)}", "object": "text_completion", "created": int(time.time()),
                     "model": model, "choices": choices,
                     "usage": {"prompt_tokens": prompt_words, "total_tokens": prompt_words + words * len(choices),
                               "completion_tokens": words * len(choices), "prompt_tokens_details": None}}

    def load_lora(self, request: dict) -> tuple[int, object]:
        name, path = request.get("lora_name"), request.get("lora_path")
        if not name or not path:
            return 400, _error("Both 'lora_name' and 'lora_path' must be provided.", "InvalidUserInput", 400)
        if name in self.loras:
            return 400, _error(f"The lora adapter '{name}' has already been loaded.", "InvalidUserInput", 400)
        if not (Path(path) / "adapter_config.json").is_file():
            return 404, _error(f"Loading lora {name} failed: No adapter found for {path}", "NotFoundError", 404)
        self.loras[name] = path
        return 200, f"Success: LoRA adapter '{name}' added successfully."

    def unload_lora(self, request: dict) -> tuple[int, object]:
        name = request.get("lora_name")
        if name not in self.loras:
            return 404, _error(f"The lora adapter '{name}' cannot be found.", "NotFoundError", 404)
        del self.loras[name]
        return 200, f"Success: LoRA adapter '{name}' removed successfully."

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format, *args):  # keep pytest's output clean
                pass

            def do_GET(self):
                server.requests.append(("GET", self.path, None))
                routes = server.get_routes()
                if self.path in routes:
                    return self._answer(200, routes[self.path]())
                return self._answer(404, {"detail": "Not Found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"null")
                server.requests.append(("POST", self.path, body))
                routes = {"/v1/completions": server.completion}
                if server.runtime_lora_updating:
                    routes.update({"/v1/load_lora_adapter": server.load_lora, "/v1/unload_lora_adapter": server.unload_lora})
                if self.path not in routes:
                    return self._answer(404, {"detail": "Not Found"})
                if self.path == "/v1/completions" and server.completion_delay and not self._client_stays():
                    return None
                self._answer(*routes[self.path](body))

            def _client_stays(self) -> bool:
                """Wait `completion_delay` seconds, as a slow generation does; False when the client
                goes away meanwhile (its socket reads as closed)."""
                deadline = time.monotonic() + server.completion_delay
                while time.monotonic() < deadline and not server._stopping.is_set():
                    readable, _, _ = select.select([self.connection], [], [], 0.02)
                    if readable and not self.connection.recv(1, socket.MSG_PEEK):
                        server.disconnected.set()
                        return False
                return not server._stopping.is_set()

            def _answer(self, status: int, body: object) -> None:
                text = body if isinstance(body, str) else json.dumps(body)
                data = text.encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    server.disconnected.set()

        return Handler


def _error(message: str, kind: str, code: int) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _permission(now: int) -> dict:
    return {"id": f"modelperm-{now}", "object": "model_permission", "created": now, "allow_create_engine": False,
            "allow_sampling": True, "allow_logprobs": True, "allow_search_indices": False, "allow_view": True,
            "allow_fine_tuning": False, "organization": "*", "group": None, "is_blocking": False}


class LlamaCppContractServer(VllmContractServer):
    """The same, in the shapes llama.cpp's server documents in its README (tools/server/README.md,
    https://github.com/ggml-org/llama.cpp/blob/master/tools/server/README.md): `GET /v1/models` lists its
    one model (`id` = the `-m` path or `--alias`, `owned_by` "llamacpp", `meta.n_ctx_train`);
    `GET /lora-adapters` lists the `--lora` files as `[{"id", "path", "scale"}]`; `GET /props` names the
    `model_path`; a request's `lora`
    field `[{"id", "scale"}]` sets the adapters' scales for that request (those not named get 0).
    It has no runtime LoRA loading, and ignores the `model` a request names."""

    def __init__(self, base: str, model_output: str = "", lora_files: tuple[str, ...] = ()):
        super().__init__(base, model_output, runtime_lora_updating=False)
        self.lora_files = lora_files

    def get_routes(self) -> dict:
        return {"/v1/models": self.models, "/lora-adapters": self.lora_adapters, "/props": self.props}

    def props(self) -> dict:
        return {"model_path": self.base, "total_slots": 1, "default_generation_settings": {"n_ctx": self.max_model_len}}

    def models(self) -> dict:
        return {"object": "list", "data": [{
            "id": self.base, "object": "model", "created": int(time.time()), "owned_by": "llamacpp",
            "meta": {"vocab_type": 2, "n_vocab": 448, "n_ctx_train": self.max_model_len, "n_embd": 64}}]}

    def lora_adapters(self) -> list:
        return [{"id": index, "path": path, "scale": 0.0} for index, path in enumerate(self.lora_files)]

    def completion(self, request: dict) -> tuple[int, object]:
        status, body = super().completion({**request, "model": self.base})
        for choice in body.get("choices", []) if status == 200 else []:
            del choice["stop_reason"], choice["prompt_logprobs"]  # vLLM's own fields
        return status, body
