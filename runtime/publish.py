"""`unitune adapters publish NAME --server URL`: put a registry adapter on an inference server, so that
requests made with `server_url` can name it.

vLLM loads LoRA adapters while it runs: `POST /v1/load_lora_adapter` with `lora_name` and `lora_path`
(the server must run with `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True` and `--enable-lora`). It reads the
adapter from a folder *it* can see: the adapter's folder here, or where the same files are on the
server's machine (`server_path`, e.g. a shared mount). Before loading, the server's base model
(`GET /v1/models`) must be the one the adapter's card names; an adapter already loaded under the name
is unloaded first (`POST /v1/unload_lora_adapter`), so a retrained adapter replaces the old one.

llama.cpp's server takes LoRA adapters only as GGUF files given when it starts (`--lora FILE`): the
adapter is converted (`unitune.runtime.llama_cpp`) to `NAME.gguf` in a folder the server reads
(`gguf_dir`), and when the server does not hold that file yet the result says how to restart it with
it; requests then find it by that file name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from unitune.adapters.constants import LORA
from unitune.adapters.errors import (
    AdapterError, AdapterMismatchError, InferenceRequestRefused, InferenceServerError,
)
from unitune.runtime.inference_client import ServerClient
from unitune.runtime.served_models import LLAMA_CPP, VLLM, list_models
from unitune.logs import get_logger, log_event, new_request_id

log = get_logger("publish")

LOAD_PATH = "/v1/load_lora_adapter"
UNLOAD_PATH = "/v1/unload_lora_adapter"


@dataclass
class Published:
    name: str
    server_url: str
    lora_path: str
    replaced: bool  # an adapter of that name was loaded before
    kind: str = VLLM
    #: llama.cpp only: the server does not hold the file yet; this command (re)starts it with it.
    restart_command: list[str] | None = None


def publish_adapter(entry, server_url: str, kind: str | None = None, server_path: str | None = None,
                    client: ServerClient | None = None, gguf_dir: Path | None = None,
                    model: str | None = None) -> Published:
    """Load the registry adapter `entry` into the server at `server_url` under its name."""
    client = client or ServerClient(server_url)
    request_id = new_request_id("publish")
    if entry.method != LORA:
        raise AdapterError(
            f"adapter {entry.name!r} is {entry.method}; an inference server serves LoRA adapters only: train one "
            f"with `unitune train REPO --method lora --name {entry.name}`, or use this one without server_url")
    card = entry.card
    if card is None:
        raise AdapterError(
            f"{entry.path} has no unitune card naming its base model, so it cannot be checked against the server's; "
            "publish an adapter from the registry (`unitune adapters import` or `unitune train`)")
    models = list_models(client, request_id)
    kind = kind or models.kind
    if not models.serves(card.base_model.id):
        raise AdapterMismatchError(
            f"adapter {entry.name!r} was trained on base {card.base_model.id} but the server at {client.base_url} "
            f"serves {models.base_id}; publish it to a server of that base (`vllm serve {card.base_model.id} "
            "--enable-lora`)")
    if kind == LLAMA_CPP:
        return _publish_llama_cpp(entry, client, gguf_dir, server_path, model, request_id)
    lora_path = server_path or str(Path(entry.path).resolve())
    replaced = entry.name in models.loras
    if replaced:  # vLLM refuses a name it already has: take the old one out
        _call(client, UNLOAD_PATH, {"lora_name": entry.name}, entry.name, lora_path, request_id)
    _call(client, LOAD_PATH, {"lora_name": entry.name, "lora_path": lora_path}, entry.name, lora_path, request_id)
    if entry.name not in list_models(client, request_id).loras:
        raise InferenceServerError(
            f"the server at {client.base_url} accepted adapter {entry.name!r} but does not list it in /v1/models; "
            "see the server's log")
    log_event(log, "adapter.published", request_id=request_id, adapter=entry.name, server=client.base_url,
              kind=VLLM, lora_path=lora_path, replaced=replaced or None)
    return Published(entry.name, client.base_url, lora_path, replaced)


def _publish_llama_cpp(entry, client: ServerClient, gguf_dir: Path | None, server_path: str | None,
                       model: str | None, request_id: str) -> Published:
    """Convert the adapter to `NAME.gguf` in `gguf_dir` and see whether the server holds it already."""
    from unitune.runtime.llama_cpp import gguf_folder, lora_to_gguf, server_command

    written = lora_to_gguf(entry, gguf_folder(gguf_dir) / f"{entry.name}.gguf", model)
    seen_as = str(Path(server_path) / written.name) if server_path else str(written)
    loaded = client.get("/lora-adapters", request_id=request_id).body
    files = [str(item.get("path", "")) for item in loaded if isinstance(item, dict)] if isinstance(loaded, list) else []
    held = any(Path(file).name == written.name for file in files)  # as requests find it (`llama_cpp_lora_id`)
    log_event(log, "adapter.published", request_id=request_id, adapter=entry.name, server=client.base_url,
              kind=LLAMA_CPP, lora_path=seen_as, held=held)
    if held:
        return Published(entry.name, client.base_url, seen_as, True, LLAMA_CPP)
    props = client.get("/props", request_id=request_id).body
    model_path = props.get("model_path") if isinstance(props, dict) else None
    others = [file for file in files if Path(file).name != written.name]
    port, host = _listening(client.base_url)
    command = server_command("llama-server", Path(model_path or "BASE.gguf"), [Path(f) for f in others + [seen_as]],
                             port, host)
    return Published(entry.name, client.base_url, seen_as, False, LLAMA_CPP, command)


def _listening(url: str) -> tuple[int, str]:
    """The port the server listens on, and the address to bind: this machine only for a local URL."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    return parts.port or (443 if parts.scheme == "https" else 80), "127.0.0.1" if local else "0.0.0.0"


def _call(client: ServerClient, path: str, body: dict, name: str, lora_path: str, request_id: str) -> None:
    """POST a LoRA management request; a refusal becomes a message saying what to change."""
    try:
        client.post(path, body, request_id=request_id)
    except InferenceRequestRefused as refused:
        if refused.status in (404, 405):
            raise InferenceServerError(
                f"the server at {client.base_url} does not load adapters while it runs ({path}: HTTP "
                f"{refused.status}); start vLLM with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True and --enable-lora") from None
        if path == UNLOAD_PATH:
            raise
        raise InferenceServerError(
            f"the server at {client.base_url} could not load adapter {name!r} from {lora_path} (HTTP {refused.status}: "
            f"{refused.detail}); the "
            "folder must be readable on the server's machine (--server-path names it as the server sees it), and "
            "the adapter's rank at most the server's --max-lora-rank") from None

