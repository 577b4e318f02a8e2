"""The folder `unitune pretrain` writes: bf16 weights, tokenizer, generation config,
`training.json`, the loss curves (`loss.png`) and the model card (`README.md`), all from the
training record, written to a temporary folder and renamed into place so a failed run never leaves a
half-written model where the old one was."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

LOSS_FILE = "loss.jsonl"
RECORD_FILE = "training.json"
CURVES_FILE = "loss.png"
CARD_FILE = "README.md"


def save_model_folder(model, tokenizer, out: Path, record: dict, loss_file: Path) -> None:
    import torch
    from transformers import GenerationConfig

    temp = out.with_name(out.name + ".tmp")
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir(parents=True)
    model = model.to(torch.bfloat16)
    model.config.torch_dtype = torch.bfloat16
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
        max_new_tokens=256,
    )
    model.save_pretrained(temp, safe_serialization=True)
    tokenizer.model_max_length = record["model"]["context"]
    tokenizer.save_pretrained(temp)
    shutil.copyfile(loss_file, temp / LOSS_FILE)
    weights = sum(p.stat().st_size for p in temp.glob("*.safetensors"))
    record["model"]["weights_bytes"] = weights
    (temp / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", "utf-8")
    plot_losses(loss_file, temp / CURVES_FILE)
    (temp / CARD_FILE).write_text(model_card(record), "utf-8")
    if out.exists():
        shutil.rmtree(out)
    os.rename(temp, out)


def plot_losses(loss_file: Path, png: Path) -> None:
    """Both stages' curves as a PNG; skipped (never failing the run) where matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return

    records = [json.loads(line) for line in loss_file.read_text("utf-8").splitlines() if line.strip()]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for axis, stage, title in ((axes[0], "pretrain", "pre-training (stdlib code)"),
                               (axes[1], "tune", "test-shaped training (completion loss)")):
        train = [(r["step"], r["loss"]) for r in records if r.get("stage") == stage and "loss" in r]
        valid = [(r["step"], r["valid_loss"]) for r in records
                 if r.get("stage") == stage and r.get("valid_loss") is not None]
        if train:
            axis.plot(*zip(*train), label="train", linewidth=0.8)
        if valid:
            axis.plot(*zip(*valid), "o-", label="validation", markersize=3)
        axis.set_title(title)
        axis.set_xlabel("optimizer step")
        axis.set_ylabel("cross-entropy (nats/token)")
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(png, dpi=80)
    plt.close(figure)


def _pairs_line(record: dict) -> str:
    t = record["tune"]
    source = t.get("pairs_source") or {}
    variants = (source.get("pytest_variants") or {}).get("variants")
    mined = source.get("pairs", t.get("pairs_mined", 0))
    rewrites = (f", plus {variants:,} pytest rewrites of their unittest tests (training/pytest_variants.py)"
                if variants else "")
    return (f"{mined:,} focal-method/test pairs mined from the standard library with `unitune mine`'s miner"
            f"{rewrites}; of split `train`, the held-out package left out: {t.get('train_pairs', 0):,}, of which "
            f"{t.get('train_examples', 0):,} fit the context ({t.get('dropped_longer_than_context', 0):,} longer "
            f"dropped); prompts from `unitune/prompt.py` (format {record.get('prompt_format_version')})")


def model_card(record: dict) -> str:
    m, c, p, t = record["model"], record["corpus"], record["pretrain"], record["tune"]
    mb = m.get("weights_bytes", 0) / 2**20
    timed = p.get("schedule") == "time budget" or t.get("schedule") == "time budget"
    schedule_note = ("This model was trained with time budgets (`--minutes`), so its cosine decay followed "
                     "the wall clock; the learning rate of every step is in `loss.jsonl`, and the command "
                     "below repeats the same number of steps with a step-based decay" if timed else
                     "This model was trained with fixed step counts")
    return f"""# unitune-mini

A small decoder (Llama architecture) trained from scratch by unitune's own `training/` code on the
Python standard library, then on focal-method/test pairs mined from it, so that it continues a
unitune prompt with a pytest-style test. It is not the default `model` (that is
Qwen2.5-Coder-0.5B-Instruct, see the README's "Models and adapters"): it stays in the package as the
small, fast model unitune's own test suite runs on (`model = "unitune-mini"` selects it).

**It is small, and its tests are weak.** {m['parameters'] / 1e6:.1f}M parameters trained for about
{(p['seconds'] + t.get('seconds', 0)) / 60:.0f} minutes on two CPU cores cannot understand code the way a
real code model does. Its tests have the right shape (a `def test_...` for the function under the
cursor; unitune drops candidates that do not parse, and `--candidates` gives it several chances), but
they usually call things that do not exist or assert nothing about the function. For real tests use
the default model or a larger code model, and train a project adapter on it.

| | |
|---|---|
| architecture | LlamaForCausalLM: {m['layers']} layers, hidden {m['hidden']}, {m['heads']} heads of 64, MLP {m['intermediate']}, tied embeddings, RoPE, context {m['context']} tokens |
| parameters | {m['parameters']:,} |
| weights | {mb:.1f} MiB (bf16 safetensors) |
| tokenizer | byte-level BPE, {m['vocab']:,} tokens, `<|endoftext|>` ends a document and a test |
| pre-training data | the `.py` files of the Python {c['python']} standard library (its `test/` package included): {c['files']:,} files, {c['bytes'] / 2**20:.1f} MiB, {c['tokens']:,} tokens |
| pre-training | {p['steps']} steps x {p['batch']} blocks of {p['block']} tokens = {p['tokens_seen']:,} tokens seen, {p['seconds'] / 60:.1f} min; final train loss {p['final_loss']}, validation loss {p['final_valid_loss']} |
| test-shaped data | {_pairs_line(record)} |
| test-shaped training | {t.get('steps', 0)} steps x {t.get('batch', 0)} pairs ({t.get('epochs', 0)} epochs), {t.get('seconds', 0) / 60:.1f} min, loss on the completion only; final train loss {t.get('final_loss')}, validation loss {t.get('valid_loss_before')} -> {t.get('valid_loss_after')} |
| held-out package | `{record['held_out_package']}` (its code and its tests): in neither stage, so it can serve as an unseen project |
| license | the data is the Python standard library, under the PSF License Agreement (Python Software Foundation License Version 2); the weights are distributed with unitune under its MIT license |
| seed | {record['config']['seed']} |

![loss curves]({CURVES_FILE})

## Good for
- unitune's own tests of the editor integration, generation and training, which need a model that loads
  in a fraction of a second;
- a base for trying `unitune train` quickly on a CPU (every adapter method trains in minutes);
- seeing the shape of what unitune does end to end.

## Not good for
- real tests of real code: it has seen only the standard library, knows no third-party library, and is
  far too small to reason about what a function does;
- Java (it has never seen any);
- anything where correctness matters: unitune's post-processing drops candidates that do not parse, but
  what is left is often wrong.

## How it was made
Reproduce (same seed and step counts give the same tokenizer, the same initial weights and the same
batches; with `--steps`/`--tune-steps` the learning-rate schedule is step-based and the losses repeat
on the same machine. {schedule_note}):

```bash
{record['reproduce']}
```

`unitune pretrain` (training/pretrain.py) collects the stdlib files, trains the tokenizer, tokenizes the
corpus, pre-trains on random {m['context']}-token blocks (AdamW, warm-up then cosine decay), mines the
stdlib's tests for pairs and continues on them, then writes this folder. `training.json` has every number
above; `loss.jsonl` every logged step.
"""
