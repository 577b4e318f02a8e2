"""The real default model, Qwen2.5-Coder-0.5B-Instruct, offline: found in the packages unitune
installs, verified and converted once; loaded in 8-bit and 4-bit with bitsandbytes on the CPU; every
training method's adapter trains on it and is switched in without reloading it. Marked `slow`
(minutes on two CPU cores); the conversion is shared by the session (`real_model_home`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import PY_FOCAL, example_prompt

from unitune.prompt import model_input
from unitune.settings import DEFAULT_MODEL

pytestmark = pytest.mark.slow


@pytest.fixture
def home(real_model_home, monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("UNITUNE_HOME", str(real_model_home))
    monkeypatch.setenv("UNITUNE_CONFIG", str(tmp_path / "no-user-config.toml"))
    return real_model_home


def test_the_default_model_comes_verified_from_the_packages_and_converts_once(home, monkeypatch):
    from unitune.runtime import builtin_models
    from unitune.runtime.gguf_conversion import CONVERSION_RECORD
    from unitune.runtime.loading import resolve_model_folder

    folder, model_id, _ = resolve_model_folder(DEFAULT_MODEL)
    assert folder == home / "models" / DEFAULT_MODEL
    assert model_id == "Qwen/Qwen2.5-Coder-0.5B-Instruct"
    record = json.loads((folder / CONVERSION_RECORD).read_text())
    assert record["gguf_sha256"] == builtin_models.QWEN_CODER_05B.packaged.sha256
    assert record["gguf_bytes"] == 491_400_064
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "qwen2" and config["num_hidden_layers"] == 24 and config["hidden_size"] == 896
    assert "quantization_config" not in config  # a plain model, loadable by any transformers

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(builtin_models, "convert_gguf", no_second_conversion)
    assert resolve_model_folder(DEFAULT_MODEL)[0] == folder


def test_a_changed_part_is_refused_before_anything_reads_it(home, tmp_path, monkeypatch):
    from unitune.runtime import builtin_models
    from unitune.runtime.gguf_conversion import convert_gguf
    from unitune.errors import ModelLoadError

    parts = builtin_models.packaged_parts(builtin_models.QWEN_CODER_05B.packaged)
    tampered = tmp_path / "part06.bin"
    data = bytearray(parts[-1].read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    target = tmp_path / "models" / "qwen"
    with pytest.raises(ModelLoadError, match="refused"):
        convert_gguf([*parts[:-1], tampered], builtin_models.QWEN_CODER_05B.packaged.size,
                     builtin_models.QWEN_CODER_05B.packaged.sha256, target, None, "qwen")
    assert not target.exists()


@pytest.mark.parametrize("quantization", ["8bit", "4bit"])
def test_bitsandbytes_loads_the_default_model_on_the_cpu(home, quantization):
    from unitune.runtime.generation import SamplingOptions, generate_completions
    from unitune.runtime.loading import ModelSpec, load_model

    loaded = load_model(ModelSpec(DEFAULT_MODEL, device="cpu", quantization=quantization))
    assert loaded.quantization == quantization
    layer = loaded.model.model.layers[0].self_attn.q_proj
    assert type(layer).__module__.startswith("bitsandbytes")
    prompt = example_prompt(*PY_FOCAL)
    text = model_input(loaded.tokenizer, prompt.text, prompt.language)
    stats = generate_completions(loaded.model, loaded.tokenizer, text, SamplingOptions(max_new_tokens=32),
                                 prompt.stop_scanner, context_length=loaded.context_length)
    test = prompt.test_source(stats.completions[0].text)
    assert "deposit(" in test, test  # still a model that writes a test of the function it is shown


def test_every_method_trains_on_the_default_model_and_switches_without_a_reload(home, tmp_path):
    """One optimizer step of each method on the real model, through `unitune train`; then one runtime
    switches between the three PEFT adapters and the bare model, reading the base weights once."""
    from unitune.runtime.generation import SamplingOptions, generate_completions
    from unitune.runtime.loading import ModelSpec
    from unitune.adapters.registry import AdapterRegistry
    from unitune.runtime.runtime import ModelRuntime
    from unitune.cli import main

    prompt = example_prompt(*PY_FOCAL)
    rows = []
    for i in range(4):
        completion = f'    account = Account("u{i}")\n    assert account.deposit({i + 1}) == {i + 1}\n'
        rows.append({"language": "python", "test_file": "tests/test_account.py", "test_name": f"test_deposit_{i}",
                     "focal_file": "bank/account.py", "focal_name": "deposit", "focal_qualified_name": "Account.deposit",
                     "test_code": "", "focal_code": "", "prompt": prompt.text, "completion": completion,
                     "split": "train" if i < 3 else "valid"})
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(row) + "\n" for row in rows))
    methods = {"lora": "real-lora", "ia3": "real-ia3", "prompt-tuning": "real-pt", "full": "real-full"}
    for method, name in methods.items():
        code = main(["train", str(pairs), "--method", method, "--name", name, "--max-steps", "1", "--batch-size", "1",
                     "--progress", "none", "--project", str(tmp_path)])
        assert code == 0, method

    registry = AdapterRegistry(tmp_path)
    runtime = ModelRuntime(ModelSpec(DEFAULT_MODEL, device="cpu", quantization="none"), max_resident=8)
    outputs = {}
    for method, name in [*methods.items(), ("lora", "real-lora")]:
        entry = registry.find_verified(name)
        assert entry.card.base_model.id == "Qwen/Qwen2.5-Coder-0.5B-Instruct"
        runtime.activate(entry)
        with runtime.active_model() as (model, tokenizer):
            stats = generate_completions(model, tokenizer, prompt.text, SamplingOptions(max_new_tokens=24),
                                         prompt.stop_scanner, context_length=runtime.base.context_length)
        outputs[method] = stats.completions[0].text
    runtime.activate(None)
    assert runtime.base_loads == 1  # the PEFT adapters switched in and out of the one base model
    assert all(isinstance(text, str) and text for text in outputs.values())
