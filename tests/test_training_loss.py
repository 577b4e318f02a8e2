"""The completion loss computes the vocabulary only where a completion token is predicted, and is the
same number the model's own loss gives, for every training method and for padded batches."""

from __future__ import annotations

import pytest

import tinymodels
from unitune.training.data import IGNORE_INDEX, Example, collate
from unitune.training.loss import completion_loss, count_completion_tokens, virtual_tokens_of


def _batch():
    # two examples of different lengths: long prompts, short completions (the training data's shape)
    first = Example(list(range(5, 45)), [IGNORE_INDEX] * 34 + list(range(39, 45)))
    second = Example(list(range(50, 70)), [IGNORE_INDEX] * 17 + list(range(67, 70)))
    return collate([first, second], pad_id=0)


def _model(method: str, arch: str):
    import torch
    from peft import IA3Config, LoraConfig, PromptTuningConfig, get_peft_model

    base, _ = tinymodels.make_model(seed=3, arch=arch)
    base.eval()  # no dropout: two forward passes must see the same network
    if method == "full":
        return base
    config = {
        "lora": LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"] if arch != "gpt2" else ["c_attn"],
                           task_type="CAUSAL_LM", init_lora_weights=False),
        "ia3": IA3Config(task_type="CAUSAL_LM") if arch == "gpt2" else IA3Config(
            target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"], task_type="CAUSAL_LM"),
        "prompt-tuning": PromptTuningConfig(num_virtual_tokens=5, task_type="CAUSAL_LM"),
    }[method]
    torch.manual_seed(0)
    return get_peft_model(base, config)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
@pytest.mark.parametrize("method", ["lora", "ia3", "prompt-tuning", "full"])
def test_the_completion_loss_is_the_models_own_loss(method, arch):
    import torch

    model = _model(method, arch)
    batch = _batch()
    expected = model(**batch).loss
    got = completion_loss(model, batch, virtual_tokens=virtual_tokens_of(model))
    assert torch.allclose(got, expected, atol=1e-5)
    # and without selecting logits (a model that cannot), the same
    assert torch.allclose(completion_loss(model, batch, virtual_tokens=virtual_tokens_of(model), selective=False),
                          expected, atol=1e-5)


def test_its_gradient_is_the_models_own_gradient():
    import torch

    model = _model("lora", "llama")
    batch = _batch()
    model(**batch).loss.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    completion_loss(model, batch).backward()
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            assert torch.allclose(parameter.grad, expected[name], atol=1e-5), name


def test_only_the_completions_positions_reach_the_vocabulary():
    model = _model("prompt-tuning", "llama")
    batch = _batch()
    shapes = []
    hook = model.get_base_model().lm_head.register_forward_hook(lambda module, args, out: shapes.append(out.shape))
    completion_loss(model, batch, virtual_tokens=virtual_tokens_of(model))
    hook.remove()
    # the positions before a labelled token in either example: 6 + 3 of them, in 9 distinct columns
    assert shapes == [(2, 9, model.get_base_model().config.vocab_size)]
    assert count_completion_tokens(batch) == 9


@pytest.mark.parametrize("selective", [True, False])
def test_a_pretraining_block_without_padding_needs_no_attention_mask(selective):
    """Pretraining feeds raw blocks of tokens, every one a label, with no padding and so no mask."""
    import torch

    model = _model("full", "llama")
    block = torch.arange(5, 37).reshape(2, 16)
    batch = {"input_ids": block, "labels": block}
    assert torch.allclose(completion_loss(model, batch, selective=selective), model(**batch).loss, atol=1e-5)
