"""Training `unitune-mini` from scratch: `unitune pretrain`.

    unitune pretrain                                   # the shipped model: 60 + 18 minutes on 2 CPU cores
    unitune pretrain --out /tmp/mini --minutes 1 --tune-minutes 0.5 --data-limit-mb 2

Steps, each written to the work folder (`--work`, default `<data dir>/pretrain/<out name>`):

1. corpus: the `.py` files of the running interpreter's standard library (the `sysconfig` stdlib
   folder, its `test/` package included; `site-packages` and anything outside the folder excluded;
   files that are not UTF-8 skipped and counted). The held-out package (`--held-out`, its code and
   its tests) is left out, so it is code the model has never seen. `--data-limit-mb` takes a seeded
   sample of the files.
2. tokenizer: byte-level BPE with an `<|endoftext|>` token (`tokenizer.json`).
3. tokens: the files, tokenized and joined with `<|endoftext|>`, as `corpus.npy` (uint16) with
   `corpus.json` (tokens, files, bytes). The last files (about 1%) are a validation stream.
4. pre-training: a `LlamaForCausalLM` built from a config (dimensions multiples of 64), AdamW,
   linear warm-up then cosine decay, random contiguous blocks of the token stream, seeded. With
   `--minutes` the decay follows the time used, so it reaches its end as the budget runs out and the
   stage stops there (the first steps are timed and the expected step count logged); `--steps` fixes
   the step count (exactly reproducible). Losses go to `loss.jsonl`; a checkpoint is saved every few
   minutes (`--resume` continues from it).
5. test-shaped training: focal-method/test pairs mined from the standard library (split `train`
   only, the held-out package left out), prompts and completions from `unitune.prompt` via the
   miner, examples longer than the context dropped (and counted), loss on the completion only. The
   standard library tests with unittest only, so each test that can be rewritten faithfully as a
   pytest function (`training/pytest_variants.py`) also gives a pytest-shaped pair: the model learns
   to continue `def test_x(` with plain `assert`s as well as `def test_x(self` with `self.assert*`.
6. the model folder (`--out`, training/model_folder.py): bf16 safetensors, tokenizer, generation
   config, `training.json`, `loss.png` and a model card (`README.md`).

This module runs the steps in order and writes the record. The configuration is
training/pretrain_config.py, steps 1-3 and the pairs of step 5 are training/pretrain_corpus.py, the
model and the training stages are training/pretrain_stages.py (on the fine-tuning loop of
training/trainer.py), and the command line is commands/pretrain.py.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

from unitune.training.model_folder import LOSS_FILE, RECORD_FILE, save_model_folder
from unitune.training.pretrain_config import MODEL_NAME, PretrainConfig, PretrainError, output_folder
from unitune.training.pretrain_corpus import (
    CORPUS_FILE, collect_stdlib, stdlib_dir, stdlib_pairs, tokenize_corpus, train_tokenizer,
)
from unitune.training.pretrain_stages import build_model, pretrain_stage, tune_stage


class LossLog:
    """The loss log: each record a JSON line in `loss.jsonl`, echoed to stderr as the run's progress."""

    def __init__(self, path: Path, echo: bool = True):
        self.path, self.echo = path, echo

    def __call__(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.echo:
            print(json.dumps(record), file=sys.stderr, flush=True)


def reproduce_command(config: PretrainConfig, pretrain_steps: int | None, tune_steps: int | None) -> str:
    parts = ["unitune pretrain", f"--seed {config.seed}", f"--vocab {config.vocab}", f"--hidden {config.hidden}",
             f"--layers {config.layers}", f"--context {config.context}", f"--held-out {config.held_out}"]
    if config.data_limit_mb is not None:
        parts.append(f"--data-limit-mb {config.data_limit_mb:g}")
    if pretrain_steps:
        parts.append(f"--steps {pretrain_steps}")
    if tune_steps:
        parts.append(f"--tune-steps {tune_steps}")
    return " ".join(parts)


def run_pretrain(config: PretrainConfig, resume: bool = False, echo: bool = True) -> dict:
    import numpy as np
    import torch
    import transformers

    import unitune
    from unitune.runtime.loading import quiet_libraries
    from unitune.prompt import PROMPT_FORMAT_VERSION
    from unitune.settings import data_home

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")  # tokenizing the corpus uses every core
    quiet_libraries()
    torch.set_num_threads(max(1, config.threads))
    out = output_folder(config)
    work = Path(config.work).expanduser().resolve() if config.work else data_home() / "pretrain" / out.name
    work.mkdir(parents=True, exist_ok=True)
    loss_file = work / LOSS_FILE
    if not resume and loss_file.exists():
        loss_file.unlink()
    log = LossLog(loss_file, echo)
    started = time.perf_counter()
    random.seed(config.seed)

    root = stdlib_dir(config)
    limit = int(config.data_limit_mb * 2**20) if config.data_limit_mb is not None else None
    files, corpus = collect_stdlib(root, config.held_out, limit, config.seed)
    if len(files) < 2:
        raise PretrainError(f"found {len(files)} usable .py files under {root}; need at least 2")
    log({"stage": "corpus", **{k: v for k, v in corpus.items()}})

    t = time.perf_counter()
    tokenizer = train_tokenizer(files, config.vocab, int(config.tokenizer_sample_mb * 2**20), config.seed)
    tokenizer.model_max_length = config.context
    tokenizer.save_pretrained(work / "tokenizer")
    tokenizer_seconds = time.perf_counter() - t
    t = time.perf_counter()
    stats = tokenize_corpus(files, tokenizer, work)
    stats["tokenizer_seconds"] = round(tokenizer_seconds, 1)
    stats["tokenize_seconds"] = round(time.perf_counter() - t, 1)
    log({"stage": "tokens", **{k: v for k, v in stats.items() if k != "valid_files"}})
    tokens = np.load(work / CORPUS_FILE, mmap_mode="r")

    model = build_model(config, tokenizer)
    parameters = sum(p.numel() for p in model.parameters())
    pre = pretrain_stage(model, tokens, stats, config, work, log, resume=resume)

    pairs_info: dict = {}
    if config.tune_minutes > 0 or config.tune_steps:
        pairs, pairs_info = stdlib_pairs(config, work, log)
        tune = tune_stage(model, tokenizer, pairs, config, log)
    else:
        tune = {"steps": 0, "seconds": 0.0}
    tune["pairs_source"] = pairs_info
    model_record = {
        "architecture": "LlamaForCausalLM", "parameters": parameters,
        "parameters_without_embeddings": parameters - model.model.embed_tokens.weight.numel(),
        "vocab": model.config.vocab_size, "hidden": config.hidden, "layers": config.layers,
        "heads": model.config.num_attention_heads, "intermediate": config.intermediate_size,
        "context": config.context, "tied_embeddings": True, "dtype": "bfloat16",
    }
    record = {
        "name": MODEL_NAME, "prompt_format_version": PROMPT_FORMAT_VERSION, "held_out_package": config.held_out,
        "config": asdict(config), "model": model_record,
        "corpus": {**corpus, **{k: v for k, v in stats.items() if k != "valid_files"}},
        "pretrain": pre, "tune": tune, "threads": config.threads, "torch": torch.__version__,
        "transformers": transformers.__version__, "unitune": unitune.__version__,
        "total_seconds": round(time.perf_counter() - started, 1),
        "reproduce": reproduce_command(config, pre["steps"], tune.get("steps")),
    }
    record["config"]["out"] = out.name
    record["config"]["work"] = None
    (work / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", "utf-8")
    save_model_folder(model, tokenizer, out, record, loss_file)
    return record
