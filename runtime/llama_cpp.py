"""What llama.cpp's server (`llama-server`) needs from unitune: the base model as one GGUF file and each
LoRA adapter converted to a GGUF adapter file, and the command that starts the server with them.

- **The base.** The built-in default model is installed as a GGUF file in parts; `base_gguf` joins and
  checks them once into `$UNITUNE_HOME/models/NAME.gguf` (a `model` that is a `.gguf` file is used as
  it is). The server then runs the very weights unitune runs in this process (which dequantizes them).
- **An adapter.** `lora_to_gguf` writes a PEFT LoRA adapter as the GGUF adapter llama.cpp loads with
  `--lora`: `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha`, and for each
  adapted layer the tensors `<its GGUF name>.weight.lora_a` (rank x in) and `.lora_b` (out x rank),
  named through the `gguf` package's own map from transformers names to GGUF names. llama.cpp scales
  by alpha / rank as PEFT does (rsLoRA's alpha / sqrt(rank) is written as an equivalent alpha). For
  Llama-style models llama.cpp stores the query and key rows in another order, so their `lora_b`
  rows are reordered the same way. The adapter's card and unitune's version go into the file's
  metadata.
- **The command.** `server_command` starts the server with every adapter loaded but not applied
  (`--lora-init-without-apply`), so each request picks its own (`lora: [{"id", "scale"}]`, which
  `unitune.runtime.remote` sends) and a request without one gets the bare base.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from pathlib import Path

from unitune.adapters.constants import ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, LORA
from unitune.adapters.errors import AdapterError
from unitune.files import read_regular_text, require_regular
from unitune.runtime.served_models import local_model_id, same_model
from unitune.errors import ModelLoadError
from unitune.logs import get_logger, log_event

log = get_logger("llama_cpp")

GGUF_SUFFIX = ".gguf"
#: Where adapters converted for llama.cpp go, under unitune's home, unless a `--gguf-dir` says.
GGUF_FOLDER = "gguf"
#: The metadata key holding the adapter's unitune card (JSON) inside its GGUF file.
CARD_KEY = "unitune.adapter.card"
UNITUNE_VERSION_KEY = "unitune.version"
#: transformers `model_type` -> (llama.cpp architecture, whether its q/k rows are reordered).
SUPPORTED_ARCHITECTURES = {
    "qwen2": ("qwen2", False),
    "qwen3": ("qwen3", False),
    "llama": ("llama", True),
    "mistral": ("llama", True),
}
_PEFT_PREFIX = "base_model.model."


def base_gguf(model: str, progress=None) -> Path:
    """The GGUF file llama.cpp's server can load for the `model` setting: a `.gguf` file as it is; the
    built-in model's installed parts joined and checked once. Raises `ModelLoadError` otherwise."""
    from unitune.runtime.builtin_models import models_home, packaged_parts
    from unitune.runtime.gguf_conversion import join_verified

    path = Path(model).expanduser()
    if path.suffix.lower() == GGUF_SUFFIX and path.is_file():
        return path
    builtin = _builtin(model)
    if builtin is None or builtin.packaged is None:
        raise ModelLoadError(
            f"{model} is not a GGUF file nor a built-in model; give llama.cpp's server a GGUF of it (llama.cpp's "
            "convert_hf_to_gguf.py converts a transformers folder) and set `model` to that file")
    target = models_home() / f"{builtin.name}{GGUF_SUFFIX}"
    stamp = target.with_name(target.name + ".sha256")
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == builtin.packaged.sha256 \
            and target.stat().st_size == builtin.packaged.size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    work = target.with_name(f".tmp-{target.name}-{os.getpid()}")
    try:
        join_verified(packaged_parts(builtin.packaged), builtin.packaged.size, builtin.packaged.sha256, work, progress)
        os.replace(work, target)
    finally:
        work.unlink(missing_ok=True)
    stamp.write_text(builtin.packaged.sha256 + "\n")
    log_event(log, "base_gguf.written", model=model, file=target, sha256=builtin.packaged.sha256[:16])
    return target


def base_config(model_id: str):
    """The transformers config of the base an adapter names (a built-in name or id, a folder, or a
    cached Hugging Face id): what the conversion needs to name and shape the tensors."""
    from transformers import AutoConfig

    from unitune.runtime.builtin_models import resolve_builtin

    builtin = _builtin(model_id)
    try:
        source = resolve_builtin(builtin)[0] if builtin else model_id
        path = Path(str(source)).expanduser()
        if path.suffix.lower() == GGUF_SUFFIX and path.is_file():  # its metadata only
            return AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
        return AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as error:
        raise AdapterError(
            f"cannot read the config of base model {model_id}, which the adapter was trained on ({error}); "
            "download it once, or convert on a machine that has it") from None


def gguf_tokenizer(model: str, gguf: Path, progress=None):
    """The tokenizer of `model`, without converting its weights: the one `load_tokenizer` finds when the
    Hugging Face cache or the converted copy holds it, else read from the GGUF file itself (as the
    conversion reads it) and saved once under `$UNITUNE_HOME/models/tokenizers/`."""
    from transformers import AutoTokenizer

    from unitune.runtime.builtin_models import models_home, resolve_builtin_without_converting
    from unitune.runtime.served_models import load_tokenizer

    builtin = _builtin(model)
    if builtin is not None and resolve_builtin_without_converting(builtin) is not None:
        return load_tokenizer(model)
    key = builtin.name if builtin is not None else f"{gguf.stem}-{hashlib.sha256(str(gguf.resolve()).encode()).hexdigest()[:8]}"
    folder = models_home() / "tokenizers" / key
    if not (folder / "tokenizer_config.json").is_file():
        if progress:
            progress("reading the tokenizer of", 0, 1)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        work = folder.with_name(f".tmp-{folder.name}-{os.getpid()}")
        tokenizer.save_pretrained(work)
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(work, folder)  # whole or not there: a reader never sees half a tokenizer
    return AutoTokenizer.from_pretrained(folder)


def lora_to_gguf(entry, out: Path, model: str | None = None) -> Path:
    """Write the registry LoRA adapter `entry` as the GGUF adapter file `out` (atomically). `model` (the
    `model` setting) is where the base's config is read when it is the base the card names (a card
    records a local folder by its name only)."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    if entry.method != LORA:
        raise AdapterError(f"adapter {entry.name!r} is {entry.method}; llama.cpp's server takes LoRA adapters only "
                           f"(train one with `--method lora`)")
    folder = Path(entry.path)
    config = json.loads(read_regular_text(folder / ADAPTER_CONFIG_FILE))
    card = entry.card
    base_id = card.base_model.id if card else config.get("base_model_name_or_path")
    base = base_config(model if model and same_model(local_model_id(model), base_id) else base_id)
    architecture, reordered = _architecture(base.model_type, entry.name)
    _check_convertible(entry.name, config)
    rank = int(config["r"])
    alpha = float(config["lora_alpha"]) * (math.sqrt(rank) if config.get("use_rslora") else 1.0)
    names = gguf.get_tensor_name_map(_arch_enum(gguf, architecture), base.num_hidden_layers)
    weights = load_file(str(require_regular(folder / ADAPTER_WEIGHTS_FILE)))
    tensors: dict[str, np.ndarray] = {}
    for key, value in sorted(weights.items()):
        module, part = _split_key(key, entry.name)
        target = names.get_name(module)
        if target is None:
            raise AdapterError(f"adapter {entry.name!r} adapts {module}, which llama.cpp's {architecture} model has "
                               "no tensor for; retrain it with the default target modules")
        value = value.astype(np.float32)
        if part == "lora_b" and reordered and module.endswith(("q_proj", "k_proj")):
            heads = base.num_attention_heads if module.endswith("q_proj") else base.num_key_value_heads
            value = _reorder_rows(value, heads)
        tensors[f"{target}.weight.{part}"] = value
    out.parent.mkdir(parents=True, exist_ok=True)
    work = out.with_name(f".tmp-{out.name}-{os.getpid()}")
    try:
        writer = gguf.GGUFWriter(str(work), architecture)
        writer.add_type(gguf.GGUFType.ADAPTER)
        writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
        writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
        writer.add_name(entry.name)
        writer.add_string(UNITUNE_VERSION_KEY, _unitune_version())
        if card is not None:
            writer.add_string(CARD_KEY, card.to_json())
        for name, value in tensors.items():
            writer.add_tensor(name, value)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(work, out)
    finally:
        work.unlink(missing_ok=True)
    log_event(log, "adapter.gguf_written", adapter=entry.name, file=out, tensors=len(tensors), rank=rank)
    return out


def server_command(binary: str, model: Path, adapters: list[Path], port: int, host: str = "127.0.0.1",
                   context: int = 4096, parallel: int = 1, threads: int | None = None) -> list[str]:
    """The command line that starts llama.cpp's server on `model` with `adapters` loaded, none applied
    until a request asks for one."""
    command = [binary, "--model", str(model), "--host", host, "--port", str(port), "--ctx-size", str(context),
               "--parallel", str(parallel)]
    if threads:
        command += ["--threads", str(threads)]
    for adapter in adapters:
        command += ["--lora", str(adapter)]
    if adapters:
        command.append("--lora-init-without-apply")
    return command


def gguf_folder(chosen: Path | None = None) -> Path:
    """Where converted adapters are written: `chosen`, else `$UNITUNE_HOME/gguf`."""
    from unitune.settings import data_home

    return Path(chosen) if chosen else data_home() / GGUF_FOLDER


# -- helpers -------------------------------------------------------------------------------------

def _builtin(model: str):
    """The built-in model named by `model` (its name or its Hugging Face id), or None."""
    from unitune.runtime.builtin_models import BUILTIN_MODELS

    return BUILTIN_MODELS.get(model) or next((entry for entry in BUILTIN_MODELS.values() if entry.hub_id == model), None)


def unsupported_lora_parts(config: dict) -> list[str]:
    """What a PEFT LoRA config (`adapter_config.json`) uses that llama.cpp's LoRA files cannot hold."""
    return [what for what, present in (
        ("DoRA", config.get("use_dora")), ("per-layer ranks", config.get("rank_pattern")),
        ("per-layer alphas", config.get("alpha_pattern")), ("fully trained modules", config.get("modules_to_save")),
        ("fan-in/fan-out weights", config.get("fan_in_fan_out")),
    ) if present]


def _check_convertible(name: str, config: dict) -> None:
    unsupported = unsupported_lora_parts(config)
    if unsupported:
        raise AdapterError(f"adapter {name!r} uses {', '.join(unsupported)}, which llama.cpp's LoRA files cannot hold; "
                           "retrain it with unitune's LoRA defaults")


def _architecture(model_type: str, name: str) -> tuple[str, bool]:
    if model_type not in SUPPORTED_ARCHITECTURES:
        raise AdapterError(
            f"adapter {name!r} is for a {model_type} model, which unitune does not convert for llama.cpp (it converts "
            f"{', '.join(sorted(SUPPORTED_ARCHITECTURES))}); use llama.cpp's convert_lora_to_gguf.py")
    return SUPPORTED_ARCHITECTURES[model_type]


def _arch_enum(gguf, architecture: str):
    return next(arch for arch, arch_name in gguf.MODEL_ARCH_NAMES.items() if arch_name == architecture)


def _split_key(key: str, name: str) -> tuple[str, str]:
    """`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight` -> (`model.layers.0.self_attn.q_proj`,
    `lora_a`)."""
    stem = key.removeprefix(_PEFT_PREFIX)
    for marker, part in ((".lora_A.weight", "lora_a"), (".lora_B.weight", "lora_b")):
        if stem.endswith(marker):
            return stem[: -len(marker)], part
    raise AdapterError(f"adapter {name!r} holds {key}, which is not a LoRA A or B matrix; it cannot go to llama.cpp")


def _reorder_rows(weights, heads: int):
    """llama.cpp's order of a Llama query/key projection's rows (each head's rotary halves interleaved)."""
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _unitune_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("unitune")
    except metadata.PackageNotFoundError:
        return "unknown"
