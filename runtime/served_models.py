"""What an inference server serves, and how it maps onto unitune's models and adapters.

- `list_models`: the server's base model and LoRA adapters from `GET /v1/models`. vLLM lists the base
  (`parent` null; `id` is its served name, `root` what `vllm serve` was given) and every LoRA adapter
  (`parent` = the base's name, `root` = the adapter's folder); llama.cpp's server lists its one model
  (`id` = the GGUF path or `--alias`, `owned_by` = "llamacpp").
- `same_model`: whether two names mean one model (the last path part, without `.gguf` or a
  quantization tag, case-insensitive), since a server names a model by what it was started with.
- `llama_cpp_lora_id`: the position llama.cpp's `GET /lora-adapters` gives the adapter `NAME.gguf`,
  which a request names in its `lora` field.
- `load_tokenizer`: the tokenizer of the `model` setting, which builds the prompts; only its files
  are read (and, for a Hugging Face id, downloaded), never the weights.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from unitune.adapters.errors import InferenceServerError
from unitune.errors import ModelLoadError

VLLM, LLAMA_CPP = "vllm", "llamacpp"
# Files a tokenizer is made of (and the config naming its window); no weights.
TOKENIZER_FILES = ["tokenizer*", "vocab*", "merges.txt", "*.model", "*.tiktoken", "*.jinja", "special_tokens_map.json",
                   "added_tokens.json", "config.json", "generation_config.json"]
_QUANTIZATION_TAG = re.compile(r"[-._](?:i?q\d\w*|f16|f32|bf16)$", re.IGNORECASE)


@dataclass
class ServerModels:
    """The models one server serves."""

    kind: str  # VLLM or LLAMA_CPP
    base_id: str  # what requests name the bare base model with
    base_names: tuple[str, ...]  # every name the server gives the base (id, root)
    context_length: int | None
    loras: dict[str, str] = field(default_factory=dict)  # served LoRA name -> its folder on the server

    def serves(self, model_id: str) -> bool:
        """Whether the base model is `model_id` (see `same_model`)."""
        return any(same_model(model_id, name) for name in self.base_names)


def list_models(client, request_id: str | None = None) -> ServerModels:
    """What the server at `client.base_url` serves (`GET /v1/models`)."""
    body = client.get("/v1/models", request_id=request_id).body
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not data or not all(isinstance(entry, dict) and entry.get("id") for entry in data):
        raise InferenceServerError(
            f"{client.base_url}/v1/models lists no model; is server_url the address of an OpenAI-compatible "
            "server (vLLM's `vllm serve`, llama.cpp's `llama-server`)?")
    base = next((entry for entry in data if not entry.get("parent")), data[0])
    names = tuple(dict.fromkeys(str(base[key]) for key in ("id", "root") if isinstance(base.get(key), str) and base[key]))
    meta = base.get("meta") if isinstance(base.get("meta"), dict) else {}
    context = base.get("max_model_len") or meta.get("n_ctx_train")
    return ServerModels(
        kind=LLAMA_CPP if base.get("owned_by") == "llamacpp" else VLLM,
        base_id=str(base["id"]),
        base_names=names,
        context_length=context if isinstance(context, int) and context > 0 else None,
        loras={str(entry["id"]): str(entry.get("root") or "") for entry in data if entry.get("parent")},
    )


def same_model(first: str, second: str) -> bool:
    """`Qwen/Qwen2.5-Coder-0.5B-Instruct`, `/models/qwen2.5-coder-0.5b-instruct/` and
    `qwen2.5-coder-0.5b-instruct-q4_k_m.gguf` are one model; names are all a server gives."""
    return _model_key(first) == _model_key(second)


def _model_key(name: str) -> str:
    last = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].lower().removesuffix(".gguf")
    return _QUANTIZATION_TAG.sub("", last)


def llama_cpp_lora_id(client, name: str, request_id: str | None = None) -> int:
    """The id llama.cpp's server gives the LoRA adapter file `NAME.gguf` it was started with."""
    listed = client.get("/lora-adapters", request_id=request_id).body
    entries = [entry for entry in listed if isinstance(entry, dict)] if isinstance(listed, list) else []
    for entry in entries:
        if Path(str(entry.get("path", ""))).name in (f"{name}.gguf", name) and isinstance(entry.get("id"), int):
            return entry["id"]
    loaded = ", ".join(Path(str(entry.get("path", ""))).name for entry in entries) or "none"
    raise InferenceServerError(
        f"the llama.cpp server at {client.base_url} has no LoRA adapter file {name}.gguf (it has: {loaded}); "
        f"start it with `--lora {name}.gguf --lora-init-without-apply`, the adapter converted to GGUF "
        "(llama.cpp's convert_lora_to_gguf.py)")


def local_model_id(model: str) -> str:
    """The name the `model` setting gives its model, as an adapter's card records it."""
    from unitune.runtime.builtin_models import BUILTIN_MODELS

    if model in BUILTIN_MODELS:
        return BUILTIN_MODELS[model].hub_id
    path = Path(model).expanduser()
    return path.resolve().name if path.exists() else model


def load_tokenizer(model: str, trust_remote_code: bool = False, progress=None) -> Any:
    """The tokenizer of the `model` setting: from the Hugging Face cache (or the Hub, tokenizer files
    only) for a Hub id or a built-in model, else from the model's folder as the local path finds it
    (converting a GGUF file once, with `progress`)."""
    from transformers import AutoTokenizer

    from unitune.runtime.builtin_models import BUILTIN_MODELS, resolve_builtin
    from unitune.runtime.loading import bundled_model_folder, resolve_model_folder

    folder = None
    if model in BUILTIN_MODELS:
        folder = _hub_tokenizer(BUILTIN_MODELS[model].hub_id) or resolve_builtin(BUILTIN_MODELS[model], progress)[0]
    elif Path(model).expanduser().exists() or bundled_model_folder(model) is not None or model.count("/") != 1:
        folder = resolve_model_folder(model, progress)[0]
    else:
        folder = _hub_tokenizer(model)
        if folder is None:
            raise ModelLoadError(
                f"the tokenizer of {model!r} is not in the local Hugging Face cache and cannot be downloaded here; "
                f"download it once with network (`hf download {model} --include 'tokenizer*'`) or set `model` to "
                "a local folder holding it")
    try:
        return AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"cannot read the tokenizer of {model} in {folder}: {str(error).splitlines()[0]}") from None


def _hub_tokenizer(hub_id: str) -> Path | None:
    """The cached snapshot of `hub_id` when it holds a tokenizer, else its tokenizer files
    downloaded when the network is allowed; None when neither."""
    from huggingface_hub import snapshot_download

    for local_only in (True, False):
        if not local_only and os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
            return None
        try:
            folder = Path(snapshot_download(hub_id, allow_patterns=TOKENIZER_FILES, local_files_only=local_only))
        except Exception:  # noqa: BLE001 - not cached, or no network: the hub library raises many types
            continue
        if (folder / "tokenizer_config.json").is_file() or (folder / "tokenizer.json").is_file():
            return folder
    return None
