"""Tiny models for tests: a byte-level BPE tokenizer trained on the fly and small random decoders.

Dimensions are multiples of 64 so the 4-bit bitsandbytes path works on the CPU. Nothing is
downloaded; everything is built in-process and saved to local folders.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

EOS = "<|endoftext|>"

# Some Python and Java for the tokenizer to learn merges from (about a second to train).
_CORPUS = [
    "def test_add():\n    assert add(1, 2) == 3\n\n\ndef add(a, b):\n    return a + b\n",
    "import pytest\nfrom bank.account import Account\n\n\ndef test_deposit():\n    account = Account('x')\n"
    "    assert account.deposit(5) == 5\n    with pytest.raises(ValueError):\n        account.deposit(-1)\n",
    "class Account:\n    def __init__(self, owner, balance=0):\n        self.owner = owner\n"
    "        self.balance = balance\n\n    def deposit(self, amount):\n        self.balance += amount\n"
    "        return self.balance\n",
    "package com.example;\n\nimport org.junit.jupiter.api.Test;\nimport static org.junit.jupiter.api.Assertions.*;\n\n"
    "class AccountTest {\n    @Test\n    public void testDeposit() throws Exception {\n"
    "        Account account = new Account(\"x\", 0);\n        assertEquals(5, account.deposit(5));\n    }\n}\n",
    "public class Account {\n    private int balance;\n    public int deposit(int amount) {\n"
    "        balance += amount;\n        return balance;\n    }\n}\n",
]


@functools.cache
def tokenizer_object():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=448, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 20, trainer)
    return tokenizer


def make_tokenizer():
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tokenizer_object(), eos_token=EOS, pad_token=EOS)


def make_model(seed: int = 0, hidden: int = 64, layers: int = 2, arch: str = "llama", positions: int = 2048):
    """A random decoder. `arch` is "llama" (q/k/v/o + gate/up/down projections), "qwen2" (the same with
    biased q/k/v, as the default model is built) or "gpt2"."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    tokenizer = make_tokenizer()
    torch.manual_seed(seed)
    if arch == "gpt2":
        config = GPT2Config(
            vocab_size=len(tokenizer), n_embd=hidden, n_layer=layers, n_head=4, n_positions=1024,
            bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        )
        return GPT2LMHeadModel(config), tokenizer
    # the two Llama-shaped decoders differ in grouped query heads and tied embeddings only
    decoder = dict(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=4, max_position_embeddings=positions, bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.eos_token_id,
    )
    if arch == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(**decoder, num_key_value_heads=2, tie_word_embeddings=True)), tokenizer
    return LlamaForCausalLM(LlamaConfig(**decoder, num_key_value_heads=4, tie_word_embeddings=False)), tokenizer


def save_model(folder: Path, seed: int = 0, hidden: int = 64, layers: int = 2, arch: str = "llama") -> Path:
    """Save a tiny random model and its tokenizer to `folder` (a local model folder)."""
    model, tokenizer = make_model(seed, hidden, layers, arch)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_endless_model(folder: Path, piece: str = "\u0120", seed: int = 0) -> Path:
    """Save a tiny model that writes `piece` (one token; by default a space, in the byte-level
    alphabet) forever, whatever the CPU's rounding: a test that never starts, so never ends, for tests
    of cancellation and of answering during a generation. Every token embeds alike, so every position
    has the same final hidden state, and the output row of `piece` is set to point along it. Its
    context holds 16,384 tokens, so a generation of the most tokens a setting allows (8,192) fits."""
    import torch

    model, tokenizer = make_model(seed, positions=16384)
    token = tokenizer.convert_tokens_to_ids(piece)
    seen = []
    hook = model.get_output_embeddings().register_forward_hook(lambda module, args, out: seen.append(args[0]))
    with torch.no_grad():
        embeddings = model.get_input_embeddings().weight
        embeddings.copy_(embeddings[token].expand_as(embeddings).clone())
        model(input_ids=torch.tensor([[token, token]]))
        state = seen[-1][0, -1]
        # its logit is 50; the others are a random row's product with the state, about +-1
        model.get_output_embeddings().weight[token] = state * 50 / state.dot(state)
    hook.remove()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_peft_adapter(base_folder: Path, out: Path, method: str, seed: int = 1) -> Path:
    """Save an adapter of `method` ("lora", "ia3", "prompt-tuning") with plain PEFT, with non-trivial
    weights so that it changes what the model generates."""
    import torch
    from peft import IA3Config, LoraConfig, PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_folder)
    torch.manual_seed(seed)
    if method == "lora":
        config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM",
                            init_lora_weights=False)
    elif method == "ia3":
        config = IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"],
                           task_type="CAUSAL_LM")
    elif method == "prompt-tuning":
        config = PromptTuningConfig(num_virtual_tokens=8, task_type="CAUSAL_LM")
    else:
        raise ValueError(method)
    model = get_peft_model(base, config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.requires_grad:  # only the adapter's own parameters
                parameter.add_(torch.randn_like(parameter) * (0.5 if method != "ia3" else 2.0))
    model.save_pretrained(out)
    return out


def overfit_model(folder: Path, pairs: list[tuple[str, str]], steps: int = 400, seed: int = 0, hidden: int = 64) -> Path:
    """Save a tiny model trained to continue each prompt with its completion: a real model with
    known behaviour, for end-to-end tests of generation, stopping and post-processing. Prompt and
    completion are tokenized separately, as training and inference do. Training takes a minute or
    two on a CPU, so the result is cached on disk (`UNITUNE_TEST_CACHE`, default
    `~/.cache/unitune-tests/`), keyed by everything it depends on: this code, the pairs (so a change
    of the prompt format trains anew), the settings and the versions of torch and transformers."""
    import hashlib
    import inspect
    import shutil

    import torch
    import transformers

    key = hashlib.sha256(json.dumps([
        inspect.getsource(_train_overfit), inspect.getsource(make_model), inspect.getsource(tokenizer_object),
        _CORPUS, pairs, steps, seed, hidden, torch.__version__, transformers.__version__,
    ]).encode()).hexdigest()[:20]
    cache = Path(os.environ.get("UNITUNE_TEST_CACHE") or Path.home() / ".cache" / "unitune-tests")
    cached = cache / f"overfit-{key}"
    if not (cached / "config.json").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        staging = cache / f".overfit-{key}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        _train_overfit(staging, pairs, steps, seed, hidden)
        try:
            os.rename(staging, cached)
        except OSError:  # another test process cached it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(cached, folder)
    return folder


def _train_overfit(folder: Path, pairs: list[tuple[str, str]], steps: int, seed: int, hidden: int) -> Path:
    import torch

    model, tokenizer = make_model(seed, hidden)
    torch.manual_seed(seed)
    rows = [tokenizer(p, add_special_tokens=False)["input_ids"] + tokenizer(c, add_special_tokens=False)["input_ids"]
            for p, c in pairs]
    width = max(map(len, rows))
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for index, row in enumerate(rows):
        input_ids[index, : len(row)] = torch.tensor(row)
        attention_mask[index, : len(row)] = 1
    labels = input_ids.masked_fill(attention_mask == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if loss.item() < 0.01:
            break
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
