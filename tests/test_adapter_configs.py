"""Adapters that list and import cleanly but would crash or run away when loaded: a rank that is not a
rank (`r: -5`), one that would allocate hundreds of GB (`r: 1000000000`), an initialisation that needs
more than the saved weights (`"loftq"`), a matrix of the wrong shape, a layer the base does not have.
Each is refused with a message when it is imported or listed, or when it is put into the base."""

from __future__ import annotations

import json
import shutil

import pytest

from unitune.adapters.card import AdapterCard, BaseModelRef, base_fingerprint
from unitune.adapters.errors import CorruptAdapterError
from unitune.adapters.registry import AdapterRegistry
from unitune.adapters.verification import verify_adapter
from unitune.prompt import PROMPT_FORMAT_VERSION


@pytest.fixture
def lora_copy(peft_adapters, tiny_base, tmp_path):
    """A copy of a LoRA adapter for `tiny_base` with a card, its config edited by the test."""
    folder = shutil.copytree(peft_adapters["lora"], tmp_path / "lora")
    card = AdapterCard(name="edited", method="lora", prompt_format_version=PROMPT_FORMAT_VERSION,
                       base_model=BaseModelRef(tiny_base.name, None, base_fingerprint(tiny_base)))
    (folder / "unitune-adapter.json").write_text(card.to_json())

    def edit(**changes):
        config = json.loads((folder / "adapter_config.json").read_text())
        (folder / "adapter_config.json").write_text(json.dumps({**config, **changes}))
        return folder
    return edit


@pytest.mark.parametrize("changes, problem", [
    ({"r": -5}, "r is -5; a LoRA rank is a whole number from 1 to 4096"),
    ({"r": 1_000_000_000}, "r is 1000000000; a LoRA rank"),
    ({"r": "sixteen"}, "r is 'sixteen'"),
    ({"rank_pattern": {"q_proj": 0}}, "rank_pattern['q_proj'] is 0"),
    ({"lora_alpha": "big"}, "lora_alpha is 'big', not a number"),
    ({"init_lora_weights": "loftq"}, "init_lora_weights is 'loftq', which changes the base model's weights"),
])
def test_a_lora_config_that_cannot_load_is_refused_when_checked(lora_copy, changes, problem):
    folder = lora_copy(**changes)
    with pytest.raises(CorruptAdapterError, match=problem.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        verify_adapter(folder)


@pytest.mark.slow
def test_a_matrix_that_does_not_fit_the_base_is_refused_when_put_into_it(lora_copy, tiny_base, tmp_path, monkeypatch):
    import torch
    from safetensors.torch import load_file, save_file

    from unitune.runtime.loading import ModelSpec
    from unitune.runtime.runtime import ModelRuntime

    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "home"))
    folder = lora_copy()
    weights = load_file(str(folder / "adapter_model.safetensors"))
    name = next(key for key in weights if key.endswith("lora_A.weight"))
    weights[name] = torch.zeros(weights[name].shape[0], weights[name].shape[1] + 3)
    save_file(weights, str(folder / "adapter_model.safetensors"))
    entry = AdapterRegistry(None).find_verified(str(folder))
    runtime = ModelRuntime(ModelSpec(model=str(tiny_base), quantization="none"))
    with pytest.raises(CorruptAdapterError, match=r"has shape \[\d+, \d+\], but .* takes \d+ inputs"):
        runtime.activate(entry)
    runtime.activate(None)  # the base still serves
