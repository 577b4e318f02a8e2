"""The adapter card, `unitune-adapter.json`: what an adapter is for and how it was made.

Owns the card's schema (reading it tolerantly, writing it stably), the fingerprint of a base model's
weights, and the rule deciding whether an adapter fits a base model and the running prompt format.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from unitune.adapters import constants as c
from unitune.adapters.errors import AdapterError, AdapterMismatchError
from unitune.files import UnreadableFileError, read_regular, require_regular

_REQUIRED = (c.CARD_NAME, c.CARD_METHOD, c.CARD_BASE_MODEL, c.CARD_PROMPT_FORMAT)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _unitune_version() -> str:
    from unitune import __version__

    return __version__


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that write and read adapters (read from package metadata,
    so nothing heavy is imported)."""
    from importlib import metadata

    versions = {}
    for library in c.RECORDED_LIBRARIES:
        try:
            versions[library] = metadata.version(library)
        except metadata.PackageNotFoundError:
            continue
    return versions


@dataclass
class BaseModelRef:
    """The base model an adapter was trained on."""

    id: str
    revision: str | None = None
    weights_hash: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {c.BASE_ID: self.id, c.BASE_REVISION: self.revision, c.BASE_WEIGHTS_HASH: self.weights_hash}

    def describe(self) -> str:
        """`id` plus a short hash, for messages and listings."""
        return f"{self.id} (hash {self.weights_hash[:12]}…)" if self.weights_hash else self.id


@dataclass
class AdapterCard:
    """Contents of `unitune-adapter.json`. Unknown keys (from a newer unitune) are kept in `extra`
    and written back unchanged."""

    name: str
    method: str
    base_model: BaseModelRef
    prompt_format_version: int
    unitune_version: str = field(default_factory=_unitune_version)
    library_versions: dict[str, str] = field(default_factory=dict)
    languages: list[str] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=_now)
    extra: dict[str, Any] = field(default_factory=dict)

    def stamped(self, name: str | None = None) -> AdapterCard:
        """A copy carrying the running unitune and library versions (what just wrote the weights),
        under `name` when given."""
        return dataclasses.replace(
            self, name=name or self.name, unitune_version=_unitune_version(), library_versions=library_versions(),
        )

    def to_dict(self) -> dict[str, Any]:
        record = {
            c.CARD_NAME: self.name,
            c.CARD_METHOD: self.method,
            c.CARD_BASE_MODEL: self.base_model.to_dict(),
            c.CARD_PROMPT_FORMAT: self.prompt_format_version,
            c.CARD_UNITUNE_VERSION: self.unitune_version,
            c.CARD_LIBRARY_VERSIONS: dict(self.library_versions),
            c.CARD_LANGUAGES: list(self.languages),
            c.CARD_TRAINING: dict(self.training),
            c.CARD_METRICS: dict(self.metrics),
            c.CARD_CREATED: self.created,
        }
        for key, value in self.extra.items():
            record.setdefault(key, value)
        return record

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_dict(cls, record: Any, source: str = c.CARD_FILE) -> AdapterCard:
        if not isinstance(record, dict):
            raise AdapterError(f"{source} must hold a JSON object; re-save the adapter")
        missing = [key for key in _REQUIRED if key not in record]
        if missing:
            raise AdapterError(f"{source} is missing {', '.join(map(repr, missing))}; re-save the adapter")
        base = record[c.CARD_BASE_MODEL]
        if isinstance(base, str):  # tolerated shorthand: just the id
            base = {c.BASE_ID: base}
        if not isinstance(base, dict) or not _is_text(base.get(c.BASE_ID)):
            raise AdapterError(f"{source}: {c.CARD_BASE_MODEL} needs a non-empty {c.BASE_ID!r}; re-save the adapter")
        _expect(record, c.CARD_NAME, _is_text, "a non-empty string", source)
        _expect(record, c.CARD_METHOD, _is_text, "a non-empty string", source)
        _expect(record, c.CARD_PROMPT_FORMAT, _is_int, "a whole number", source)
        _expect(record, c.CARD_UNITUNE_VERSION, _is_optional_text, "a string", source)
        _expect(record, c.CARD_LIBRARY_VERSIONS, _is_optional_dict, "an object", source)
        _expect(record, c.CARD_LANGUAGES, _is_optional_text_list, "a list of strings", source)
        _expect(record, c.CARD_TRAINING, _is_optional_dict, "an object", source)
        _expect(record, c.CARD_METRICS, _is_optional_dict, "an object", source)
        _expect(record, c.CARD_CREATED, _is_optional_text, "a string", source)
        known = {c.CARD_NAME, c.CARD_METHOD, c.CARD_BASE_MODEL, c.CARD_PROMPT_FORMAT, c.CARD_UNITUNE_VERSION,
                 c.CARD_LIBRARY_VERSIONS, c.CARD_LANGUAGES, c.CARD_TRAINING, c.CARD_METRICS, c.CARD_CREATED}
        return cls(
            name=record[c.CARD_NAME],
            method=record[c.CARD_METHOD],
            base_model=BaseModelRef(
                id=base[c.BASE_ID],
                revision=_optional_text(base.get(c.BASE_REVISION)),
                weights_hash=_optional_text(base.get(c.BASE_WEIGHTS_HASH)),
            ),
            prompt_format_version=record[c.CARD_PROMPT_FORMAT],
            unitune_version=record.get(c.CARD_UNITUNE_VERSION) or "",
            library_versions=dict(record.get(c.CARD_LIBRARY_VERSIONS) or {}),
            languages=list(record.get(c.CARD_LANGUAGES) or []),
            training=dict(record.get(c.CARD_TRAINING) or {}),
            metrics=dict(record.get(c.CARD_METRICS) or {}),
            created=record.get(c.CARD_CREATED) or "",
            extra={key: value for key, value in record.items() if key not in known},
        )

    @classmethod
    def from_json(cls, text: str | bytes, source: str = c.CARD_FILE) -> AdapterCard:
        try:
            record = json.loads(text)
        except (ValueError, UnicodeDecodeError) as error:
            raise AdapterError(f"{source} is not valid JSON ({error}); re-save the adapter") from None
        except RecursionError:
            raise AdapterError(f"{source} is nested too deeply to be a card; re-save the adapter") from None
        return cls.from_dict(record, source)


def read_card(folder: Path) -> AdapterCard:
    """The card of the adapter in `folder` (AdapterError when it is missing or unreadable)."""
    path = Path(folder) / c.CARD_FILE
    try:
        data = read_regular(path)
    except FileNotFoundError:
        raise AdapterError(f"{path} is missing; this folder is not a unitune adapter") from None
    except UnreadableFileError as error:
        raise AdapterError(str(error)) from None
    return AdapterCard.from_json(data, str(path))


def write_card(folder: Path, card: AdapterCard) -> Path:
    path = Path(folder) / c.CARD_FILE
    path.write_text(card.to_json(), "utf-8")
    return path


def base_fingerprint(model_folder: str | Path) -> str:
    """A sha256 identifying a local model's weights: over `config.json` and, for every `*.safetensors`
    (sorted by name), its name, size, first and last `FINGERPRINT_CHUNK_BYTES` bytes."""
    folder = Path(model_folder)
    config = folder / c.MODEL_CONFIG_FILE
    if not config.is_file():
        raise AdapterError(f"{folder} has no {c.MODEL_CONFIG_FILE}; give the folder of a saved model")
    digest = hashlib.sha256()
    digest.update(read_regular(config))
    chunk = c.FINGERPRINT_CHUNK_BYTES
    for weights in sorted(folder.glob(f"*{c.MODEL_WEIGHTS_SUFFIX}"), key=lambda p: p.name):
        size = weights.stat().st_size
        # Name and size delimit each file's bytes so different splits cannot hash the same.
        digest.update(b"\0" + weights.name.encode("utf-8") + b"\0" + str(size).encode() + b"\0")
        with require_regular(weights).open("rb") as handle:
            digest.update(handle.read(chunk))
            if size > chunk:  # the tail, without reading any byte twice in a small file
                handle.seek(max(chunk, size - chunk))
                digest.update(handle.read(chunk))
    return digest.hexdigest()


def check_compatible(card: AdapterCard, base_id: str, base_hash: str | None,
                     prompt_format_version: int | Collection[int]) -> None:
    """Refuse an adapter made for another base model or for a prompt format not among
    `prompt_format_version` (one, or those this unitune builds) (AdapterMismatchError).

    Bases are compared by weights hash when both sides know one, else by id, since the same id can
    name different weights (a local folder retrained in place) and different ids the same weights."""
    trained_on = card.base_model
    if trained_on.weights_hash and base_hash:
        same_base = trained_on.weights_hash == base_hash
    else:
        same_base = _normal_id(trained_on.id) == _normal_id(base_id)
    if not same_base:
        model = f"{base_id} (hash {base_hash[:12]}…)" if base_hash else base_id
        raise AdapterMismatchError(
            f"adapter {card.name!r} was trained on base {trained_on.describe()} but the model is {model}; "
            f"use --model {trained_on.id} or train an adapter for this model"
        )
    formats = (prompt_format_version,) if isinstance(prompt_format_version, int) else tuple(prompt_format_version)
    if card.prompt_format_version not in formats:
        raise AdapterMismatchError(
            f"adapter {card.name!r} was trained with prompt format {card.prompt_format_version} but this "
            f"unitune builds prompt format {' or '.join(map(str, formats))}; retrain the adapter with `unitune train`"
        )


def _normal_id(model_id: str) -> str:
    return model_id.rstrip("/\\")


def _expect(record: dict, key: str, check, expected: str, source: str) -> None:
    if key in record and not check(record[key]):
        raise AdapterError(f"{source}: {key} = {record[key]!r} must be {expected}; re-save the adapter")


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_optional_text(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _is_optional_dict(value: Any) -> bool:
    return value is None or isinstance(value, dict)


def _is_optional_text_list(value: Any) -> bool:
    return value is None or (isinstance(value, list) and all(isinstance(item, str) for item in value))


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
