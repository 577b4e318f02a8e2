"""Loading a base model: a built-in name (`unitune.runtime.builtin_models`), the bundled test model, a
local folder, a `.gguf` file or a Hugging Face id; on a device; quantized with bitsandbytes where that
is possible.

Every failure a user can fix (no CUDA, a model missing offline, not enough memory, a missing
bitsandbytes) becomes a `ModelLoadError` with one actionable sentence.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unitune.errors import ModelLoadError
from unitune.logs import get_logger, log_event
from unitune.package_files import BUNDLED_MODELS_DIR
from unitune.runtime.builtin_models import BUILTIN_MODELS, is_gguf_model, resolve_builtin, resolve_gguf
from unitune.runtime.gguf_conversion import Progress
from unitune.settings import DEFAULT_MODEL

log = get_logger("loading")

# Files worth fetching from the Hub: configs, tokenizers and safetensors weights, never pickles.
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "*.tiktoken", "*.jinja"]


@dataclass(frozen=True)
class ModelSpec:
    """Which base model to load and how (the `model`, `device`, `quantization` settings), or where it
    is served (`server_url`)."""

    model: str = DEFAULT_MODEL
    device: str = "auto"
    quantization: str = "auto"
    trust_remote_code: bool = False
    server_url: str | None = None  # the model runs on this inference server (`unitune.runtime.remote`)
    engine: str = "auto"  # what runs it here (`unitune.runtime.engines`)

    @classmethod
    def from_settings(cls, settings) -> "ModelSpec":
        return cls(settings.model, settings.device, settings.quantization, settings.trust_remote_code,
                   settings.server_url, settings.engine)


@dataclass
class LoadedModel:
    """A base model ready to generate, and what it is."""

    model: Any  # transformers PreTrainedModel
    tokenizer: Any
    spec: ModelSpec
    model_id: str  # the name a card records: the Hub id, the bundled name, or the folder's name
    folder: Path  # where its files are on disk
    revision: str | None
    fingerprint: str
    device: str
    quantization: str  # what was actually used: "4bit", "8bit" or "none"
    dtype: str
    load_seconds: float

    @property
    def context_length(self) -> int:
        config = self.model.config
        for key in ("max_position_embeddings", "n_positions", "seq_length", "max_sequence_length"):
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                return value
        return 2048


def bundled_model_folder(name: str) -> Path | None:
    folder = BUNDLED_MODELS_DIR / name
    return folder if (folder / "config.json").is_file() else None


def resolve_model_folder(model: str, progress: Progress | None = None) -> tuple[Path, str, str | None]:
    """(local folder, id for the card, revision) of the `model` setting, downloading from the Hub
    only when the network is allowed; a built-in model or a GGUF file is converted on first use."""
    if model in BUILTIN_MODELS:
        return resolve_builtin(BUILTIN_MODELS[model], progress)
    if model in _bundled_names():
        folder = bundled_model_folder(model)
        if folder is None:
            raise ModelLoadError(
                f"the bundled model {model!r} is not installed in {BUNDLED_MODELS_DIR}; reinstall unitune, "
                "or set `model` to a Hugging Face id or a local model folder"
            )
        return folder, model, None
    path = Path(model).expanduser()
    if path.exists() and is_gguf_model(model):
        return resolve_gguf(path, progress)
    if path.exists() or not _looks_like_hub_id(model):
        if not path.exists():
            raise ModelLoadError(f"model {model!r} is neither a folder nor a Hugging Face id (`org/name`)")
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} is not a model folder (no config.json in it); set `model` to a folder "
                                 "written by save_pretrained, a .gguf file or a Hugging Face id")
        return path.resolve(), path.resolve().name, None
    return hub_snapshot(model)


def _bundled_names() -> set[str]:
    return {p.name for p in BUNDLED_MODELS_DIR.iterdir()} if BUNDLED_MODELS_DIR.is_dir() else set()


def _looks_like_hub_id(model: str) -> bool:
    parts = model.split("/")
    return 1 <= len(parts) <= 2 and all(parts) and not model.startswith((".", "~"))


def hub_snapshot(model_id: str) -> tuple[Path, str, str | None]:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError
    except ImportError:  # pragma: no cover - a dependency of transformers
        raise ModelLoadError("huggingface_hub is missing; reinstall unitune") from None
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    try:
        folder = Path(snapshot_download(model_id, allow_patterns=_HUB_PATTERNS, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError, ValueError):
        if offline:
            raise ModelLoadError(
                f"model {model_id!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set; download "
                f"it once with network (`hf download {model_id}`) or set `model` to a local folder"
            ) from None
        try:
            folder = Path(snapshot_download(model_id, allow_patterns=_HUB_PATTERNS))
        except RepositoryNotFoundError:
            raise ModelLoadError(f"model {model_id!r} was not found on the Hugging Face Hub; check the id") from None
        except Exception as error:  # network errors come in many types
            raise ModelLoadError(
                f"could not download model {model_id!r} ({type(error).__name__}); check the network, or set "
                "`model` to a local folder"
            ) from None
    return folder, model_id, folder.name


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device = cuda but no CUDA GPU is available here; set device = auto or cpu")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelLoadError("device = mps but Apple's Metal backend is not available here; set device = auto or cpu")
    return device


def resolve_quantization(quantization: str, device: str) -> str:
    """The quantization to use: `auto` is 4-bit on CUDA and none elsewhere."""
    if quantization == "auto":
        quantization = "4bit" if device == "cuda" else "none"
    if quantization in ("4bit", "8bit"):
        if device == "mps":
            raise ModelLoadError(f"quantization = {quantization} is not supported on mps; set quantization = none")
        try:
            import bitsandbytes  # noqa: F401
        except Exception:
            raise ModelLoadError(
                f"quantization = {quantization} needs bitsandbytes, which is not usable here; "
                "`pip install bitsandbytes` or set quantization = none"
            ) from None
    return quantization


def quantization_config(quantization: str):
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "4bit":
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return None


def load_model(spec: ModelSpec, folder: Path | None = None, progress: Progress | None = None) -> LoadedModel:
    """Load the base model of `spec` (or the model in `folder`, for a full fine-tune). `progress`
    hears of the slow first use of a built-in model or a GGUF file (checking and converting it)."""
    import torch

    started = time.perf_counter()
    if folder is None:
        folder, model_id, revision = resolve_model_folder(spec.model, progress)
    else:
        model_id, revision = folder.name, None
    device = resolve_device(spec.device)
    quantization = resolve_quantization(spec.quantization, device)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    _refuse_pickle_only(folder)
    kwargs: dict[str, Any] = {
        "dtype": dtype, "trust_remote_code": spec.trust_remote_code, "use_safetensors": True,
    }
    config = quantization_config(quantization)
    if config is not None:
        kwargs["quantization_config"] = config
        kwargs["device_map"] = {"": device if device != "cuda" else 0}
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=spec.trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        if config is None:
            model.to(device)
    except (torch.OutOfMemoryError, MemoryError):
        raise ModelLoadError(
            f"not enough memory to load {model_id} on {device}; try quantization = 4bit, a smaller model, or "
            "closing other programs"
        ) from None
    except ValueError as error:
        if "trust_remote_code" in str(error):
            raise ModelLoadError(
                f"{model_id} needs to run its own code; set trust_remote_code = true only if you trust it"
            ) from None
        raise ModelLoadError(f"cannot load {model_id}: {_first_line(error)}") from None
    except OSError as error:
        raise ModelLoadError(f"cannot load {model_id} from {folder}: {_first_line(error)}") from None
    model.eval()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    from unitune.adapters.card import base_fingerprint

    loaded = LoadedModel(
        model=model, tokenizer=tokenizer, spec=spec, model_id=model_id, folder=Path(folder), revision=revision,
        fingerprint=base_fingerprint(folder), device=device, quantization=quantization,
        dtype=str(dtype).replace("torch.", ""), load_seconds=time.perf_counter() - started,
    )
    log_event(log, "model.loaded", model=model_id, device=device, quantization=quantization,
              seconds=loaded.load_seconds)
    return loaded


def _refuse_pickle_only(folder: Path) -> None:
    if not any(Path(folder).glob("*.safetensors")):
        raise ModelLoadError(
            f"{folder} has no safetensors weights; unitune never loads pickle weights (.bin/.pt). Convert the "
            "model with save_pretrained(safe_serialization=True)"
        )


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def quiet_libraries() -> None:
    """Keep library progress bars and deprecation chatter out of a user's terminal: unitune reports
    its own progress, and these warnings are about the libraries' own internals."""
    import logging
    import warnings

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("transformers", "bitsandbytes", "peft", "accelerate", "huggingface_hub"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\..*")
    warnings.filterwarnings("ignore", message=r".*Position ids are not supported.*")
    warnings.filterwarnings("ignore", message=r".*MatMul8bitLt.*")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
