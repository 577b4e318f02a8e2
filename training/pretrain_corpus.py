"""The data `unitune pretrain` trains on, all from the standard library: its `.py` files (the held-out
package left out), the tokenizer trained on them, the token stream of the pre-training stage
(`corpus.npy`, its last files the validation stream) and the focal-method/test pairs of the
test-shaped stage (mined, with their pytest rewrites)."""

from __future__ import annotations

import json
import random
import shutil
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from unitune.project_walk import project_files
from unitune.training.pretrain_config import PretrainConfig

EOS = "<|endoftext|>"
CORPUS_FILE = "corpus.npy"
CORPUS_STATS = "corpus.json"
VALID_FRACTION = 0.01


def stdlib_dir(config: PretrainConfig | None = None) -> Path:
    return Path(config.stdlib if config and config.stdlib else sysconfig.get_paths()["stdlib"]).resolve()


def is_held_out(relative: str, package: str | None) -> bool:
    """Whether a stdlib path (relative, posix) belongs to the held-out package: its code
    (`email/...`, or `x.py` for a module) or its tests (`test/test_email/...`, `test/test_email*.py`)."""
    if not package:
        return False
    return relative == f"{package}.py" or relative.startswith((f"{package}/", f"test/test_{package}"))


def collect_stdlib(root: Path, held_out: str | None = None, limit_bytes: int | None = None,
                   seed: int = 0) -> tuple[list[tuple[str, str]], dict]:
    """[(relative path, text)] of the stdlib's .py files (sorted; a seeded sample of about
    `limit_bytes` when given) and what was collected and skipped."""
    files, skipped_encoding, held = [], 0, 0
    for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        relative = path.relative_to(root).as_posix()
        parts = relative.split("/")
        if "site-packages" in parts or "__pycache__" in parts or not path.is_file():
            continue
        try:
            resolved = path.resolve()
            resolved.relative_to(root)  # nothing linked in from outside the stdlib
        except ValueError:
            continue
        if is_held_out(relative, held_out):
            held += 1
            continue
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            skipped_encoding += 1
            continue
        files.append((relative, text))
    total = len(files)
    if limit_bytes is not None:
        order = list(range(len(files)))
        random.Random(seed).shuffle(order)
        chosen, size = [], 0
        for index in order:
            if size >= limit_bytes:
                break
            chosen.append(index)
            size += len(files[index][1].encode("utf-8"))
        files = [files[i] for i in sorted(chosen)]
    stats = {
        "stdlib": str(root), "python": f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}",
        "files": len(files), "files_available": total, "bytes": sum(len(t.encode("utf-8")) for _, t in files),
        "skipped_not_utf8": skipped_encoding, "held_out_package": held_out, "held_out_files": held,
        "test_files": sum(1 for r, _ in files if r.startswith("test/")),
    }
    return files, stats


def train_tokenizer(files: list[tuple[str, str]], vocab: int, sample_bytes: int, seed: int):
    """A byte-level BPE tokenizer trained on a seeded sample of `files` (a PreTrainedTokenizerFast)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    order = list(range(len(files)))
    random.Random(seed + 1).shuffle(order)
    sample, size = [], 0
    for index in order:
        if size >= sample_bytes:
            break
        sample.append(files[index][1])
        size += len(files[index][1])
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(sorted(sample), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=EOS, bos_token=EOS, pad_token=EOS,
                                   unk_token=None)


def tokenize_corpus(files: list[tuple[str, str]], tokenizer, folder: Path) -> dict:
    """Write `corpus.npy` (uint16: every file's tokens followed by <|endoftext|>) and `corpus.json`.
    The last files (about 1% of them) form the validation stream at the end, from `valid_start`."""
    import numpy as np

    eos = tokenizer.eos_token_id
    encoded = tokenizer.backend_tokenizer.encode_batch([text for _, text in files], add_special_tokens=False)
    lengths = [len(e.ids) + 1 for e in encoded]
    tokens = np.empty(sum(lengths), dtype=np.uint16)
    position = 0
    for item in encoded:
        n = len(item.ids)
        tokens[position:position + n] = item.ids
        tokens[position + n] = eos
        position += n + 1
    valid_files = max(1, int(len(files) * VALID_FRACTION)) if len(files) > 1 else 0
    valid_start = int(sum(lengths[: len(files) - valid_files]))
    np.save(folder / CORPUS_FILE, tokens)
    stats = {
        "tokens": int(tokens.size), "files": len(files), "bytes": sum(len(t.encode("utf-8")) for _, t in files),
        "vocab": len(tokenizer), "bytes_per_token": round(sum(len(t.encode("utf-8")) for _, t in files)
                                                         / max(1, tokens.size), 3),
        "train_tokens": valid_start, "valid_tokens": int(tokens.size) - valid_start, "valid_start": valid_start,
        "valid_files": [r for r, _ in files[len(files) - valid_files:]],
    }
    (folder / CORPUS_STATS).write_text(json.dumps(stats, indent=2) + "\n", "utf-8")
    return stats


def stdlib_pairs(config: PretrainConfig, work: Path, log: Callable[[dict], None]) -> tuple[list[dict], dict]:
    """All Python pairs mined from the standard library (dicts as `unitune mine` writes them), with
    their pytest variants when `config.pytest_variants`."""
    from unitune.training.data import read_pairs

    if config.pairs:
        pairs = read_pairs(Path(config.pairs), language="python")
        info = {"source": str(config.pairs), "pairs": len(pairs)}
    else:
        pairs, info = _mine_stdlib(config, work, log)
    if config.pytest_variants:
        from unitune.training.pytest_variants import pytest_variants

        started = time.perf_counter()
        # The pairs' paths are relative to the stdlib (or to its copy, which has the same layout).
        root = work / "stdlib" if (work / "stdlib").is_dir() else stdlib_dir(config)
        variants, counts = pytest_variants(pairs, root)
        pairs = pairs + variants
        info["pytest_variants"] = {**counts, "seconds": round(time.perf_counter() - started, 1)}
        log({"stage": "pytest-variants", **info["pytest_variants"]})
    return pairs, info


def _mine_stdlib(config: PretrainConfig, work: Path, log: Callable[[dict], None]) -> tuple[list[dict], dict]:
    started = time.perf_counter()
    from unitune.training.mining import mine

    # Mined from a plain copy of the stdlib's .py files: the stdlib may sit inside a git work tree
    # that ignores it (pyenv's), where the miner (which lists files with git) would find nothing.
    copy = work / "stdlib"
    if not copy.is_dir():
        root = stdlib_dir(config)
        for path in project_files(root, suffixes=(".py",)):  # the miner's own skip rule (site-packages, venv, ...)
            relative = path.relative_to(root)
            (copy / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy / relative)
    result = mine(copy, language="python")
    pairs = [p.to_json() if hasattr(p, "to_json") else (asdict(p) if hasattr(p, "__dataclass_fields__") else dict(p))
             for p in result.pairs]
    with open(work / "stdlib-pairs.jsonl", "w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(json.dumps(pair, ensure_ascii=False) + "\n")
    log({"stage": "mine", "pairs": len(pairs), "seconds": round(time.perf_counter() - started, 1)})
    return pairs, {"source": "mined", "pairs": len(pairs), "seconds": round(time.perf_counter() - started, 1)}
