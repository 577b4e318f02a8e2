"""The training loss: cross-entropy on the completion's tokens, with the vocabulary projection computed
only where a completion token is predicted.

A pair's prompt (the focal code, its context, an existing test) is ten or more times longer than its
completion, and the loss is on the completion only. Projecting every position onto the vocabulary
(151,936 entries for the default model) spent about a quarter of a training step's arithmetic and a
gigabyte of logits on positions whose loss is thrown away; `logits_to_keep` asks the model for the
logits at the positions that predict a labelled token and nothing else.
"""

from __future__ import annotations

import inspect

from unitune.training.data import IGNORE_INDEX


def virtual_tokens_of(model) -> int:
    """How many virtual tokens a prompt-tuned model puts before the input (0 for every other model):
    the positions of the logits it returns are shifted by them."""
    config = getattr(model, "active_peft_config", None)
    if config is None or not getattr(config, "is_prompt_learning", False):
        return 0
    return int(config.num_virtual_tokens)


def keeps_logits_selectively(model) -> bool:
    """Whether the causal language model inside `model` (a PEFT model or a bare one) takes
    `logits_to_keep` (transformers' decoder models do)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(inner.forward).parameters


def completion_loss(forward, batch: dict, *, virtual_tokens: int = 0, selective: bool = True):
    """Mean cross-entropy per completion token of a collated batch (`training.data.collate`), as the
    model's own loss with `labels` would give it. `forward` is the module to call (a DDP wrapper in a
    multi-process run, so that its gradient hooks fire). Position t predicts token t+1, so the logits
    kept are those of positions whose next label is not ignored. A pretraining block has no padding and
    so no `attention_mask`."""
    import torch.nn.functional as F

    labels = batch["labels"]
    targets = labels[:, 1:]
    if not selective:
        logits = forward(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask")).logits
        logits = logits[:, virtual_tokens:-1]
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                               ignore_index=IGNORE_INDEX)
    columns = (targets != IGNORE_INDEX).any(dim=0).nonzero().squeeze(1)
    logits = forward(input_ids=batch["input_ids"], attention_mask=batch.get("attention_mask"),
                     logits_to_keep=columns + virtual_tokens).logits
    kept = targets.index_select(1, columns)
    if not len(columns):  # nothing to predict (a completion cut to nothing): a zero that still has a graph
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), kept.reshape(-1), ignore_index=IGNORE_INDEX)


def count_completion_tokens(batch: dict) -> int:
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())

