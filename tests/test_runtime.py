"""The model runtime on tiny local models: loading, switching every adapter type without reloading
the base, the bare base, wrong-base refusal, LRU bound, mixed LoRA batches, quantized CPU paths."""

from __future__ import annotations

import threading

import pytest

from unitune.adapters.card import AdapterCard, BaseModelRef, base_fingerprint
from unitune.adapters.errors import AdapterMismatchError
from unitune.runtime.generation import SamplingOptions, generate_batch, generate_completions
from unitune.runtime.loading import ModelSpec, load_model
from unitune.adapters.registry import AdapterRegistry
from unitune.runtime.runtime import ModelRuntime, peft_adapter_name
from unitune.errors import GenerationCancelled, ModelLoadError
from unitune.prompt import PROMPT_FORMAT_VERSION
from unitune.stopping import StopScanner

PROMPT = "def test_add("
TOKENS = 12


def never_stops():
    return StopScanner("java", 0)  # a Java scanner never sees its brace closed in this text


def greedy(runtime: ModelRuntime, prompt: str = PROMPT) -> str:
    with runtime.active_model() as (model, tokenizer):
        stats = generate_completions(model, tokenizer, prompt, SamplingOptions(max_new_tokens=TOKENS), never_stops)
    return stats.completions[0].text


@pytest.fixture(scope="module")
def registry(tiny_base, peft_adapters, tmp_path_factory) -> AdapterRegistry:
    """A user store holding every PEFT adapter, each with a card naming `tiny_base`."""
    import os

    home = tmp_path_factory.mktemp("home")
    os.environ["UNITUNE_HOME"] = str(home)
    registry = AdapterRegistry(None)
    base = BaseModelRef(tiny_base.name, None, base_fingerprint(tiny_base))
    methods = {"lora": "lora", "lora2": "lora", "ia3": "ia3", "prompt-tuning": "prompt-tuning"}
    for key, folder in peft_adapters.items():
        card = AdapterCard(name=key, method=methods[key], base_model=base, prompt_format_version=PROMPT_FORMAT_VERSION)
        registry.save(folder, key, card)
    return registry


@pytest.fixture(scope="module")
def runtime(tiny_base) -> ModelRuntime:
    return ModelRuntime(ModelSpec(model=str(tiny_base), quantization="none"), max_resident=8)


@pytest.fixture(scope="module")
def bare_output(tiny_base) -> str:
    """What the base model generates, loaded on its own, without unitune's runtime."""
    loaded = load_model(ModelSpec(model=str(tiny_base), quantization="none"))
    stats = generate_completions(loaded.model, loaded.tokenizer, PROMPT, SamplingOptions(max_new_tokens=TOKENS), never_stops)
    return stats.completions[0].text


@pytest.mark.slow
def test_every_adapter_type_loads_generates_and_switches(runtime, registry, bare_output):
    outputs = {}
    for name in ("lora", "ia3", "prompt-tuning", "lora2"):
        runtime.activate(registry.find_verified(name))
        outputs[name] = greedy(runtime)
        assert outputs[name] != bare_output, f"{name} should change what the model writes"
    assert len(set(outputs.values())) == 4
    # back and forth across types: same outputs, and the base weights were read from disk once
    for name in ("ia3", "lora", "prompt-tuning", "lora2", "lora"):
        runtime.activate(registry.find_verified(name))
        assert greedy(runtime) == outputs[name]
    assert runtime.base_loads == 1


def test_bare_base_equals_the_model_without_unitune(runtime, registry, bare_output):
    for name in ("lora", "ia3", "prompt-tuning"):
        runtime.activate(registry.find_verified(name))
        runtime.activate(None)
        assert greedy(runtime) == bare_output


def test_plain_peft_folder_without_card_loads(runtime, registry, peft_adapters):
    entry = registry.find_verified(str(peft_adapters["ia3"]))
    assert entry.card is None and entry.method == "ia3"
    runtime.activate(entry)
    with_folder = greedy(runtime)
    runtime.activate(registry.find_verified("ia3"))
    assert greedy(runtime) == with_folder


def test_wrong_base_adapter_is_refused_and_runtime_keeps_working(runtime, registry, other_base, peft_adapters, tmp_path):
    card = AdapterCard(
        name="elsewhere", method="lora", prompt_format_version=PROMPT_FORMAT_VERSION,
        base_model=BaseModelRef("other-base", None, base_fingerprint(other_base)),
    )
    entry = registry.save(peft_adapters["lora"], "elsewhere", card)
    runtime.activate(registry.find_verified("lora"))
    before = greedy(runtime)
    with pytest.raises(AdapterMismatchError) as refused:
        runtime.activate(entry)
    assert "other-base" in str(refused.value) and "tiny-base" in str(refused.value)
    assert runtime.active == "lora" and greedy(runtime) == before


def test_other_prompt_format_is_refused(runtime, registry, tiny_base, peft_adapters):
    card = AdapterCard(
        name="old-format", method="lora", prompt_format_version=PROMPT_FORMAT_VERSION + 1,
        base_model=BaseModelRef("tiny-base", None, base_fingerprint(tiny_base)),
    )
    entry = registry.save(peft_adapters["lora"], "old-format", card)
    with pytest.raises(AdapterMismatchError, match="prompt format"):
        runtime.activate(entry)


def test_lru_bound_drops_the_least_recently_used(tiny_base, registry):
    small = ModelRuntime(ModelSpec(model=str(tiny_base), quantization="none"), max_resident=2)
    small.activate(registry.find_verified("lora"))
    first = greedy(small)
    small.activate(registry.find_verified("lora2"))
    small.activate(registry.find_verified("ia3"))
    assert small.resident_adapters() == ["lora2", "ia3"]
    small.activate(registry.find_verified("lora"))  # read again, same behaviour
    assert greedy(small) == first
    assert small.resident_adapters() == ["ia3", "lora"]
    assert small.base_loads == 1


def test_mixed_lora_batch_matches_single_calls(runtime, registry):
    singles = []
    for name in ("lora", "lora2", None):
        runtime.activate(registry.find_verified(name) if name else None)
        singles.append(greedy(runtime))
    adapters = [registry.find_verified("lora"), registry.find_verified("lora2"), None]
    with runtime.mixed_lora_model(adapters) as (model, tokenizer, names):
        assert names == [peft_adapter_name("lora"), peft_adapter_name("lora2"), "__base__"]
        batch = generate_batch(model, tokenizer, [PROMPT] * 3, SamplingOptions(max_new_tokens=TOKENS),
                               never_stops, adapter_names=names)
    assert [completion.text for completion in batch] == singles


def test_cancel_between_tokens(runtime):
    runtime.activate(None)
    cancel = threading.Event()
    seen = []

    def on_token(step):
        seen.append(step)
        if step == 3:
            cancel.set()

    with runtime.active_model() as (model, tokenizer):
        with pytest.raises(GenerationCancelled):
            generate_completions(model, tokenizer, PROMPT, SamplingOptions(max_new_tokens=50), never_stops,
                                 cancel=cancel, on_token=on_token)
    assert seen == [1, 2, 3]


def test_candidates_are_sampled(runtime):
    runtime.activate(None)
    with runtime.active_model() as (model, tokenizer):
        stats = generate_completions(model, tokenizer, PROMPT, SamplingOptions(max_new_tokens=8, candidates=3, seed=1),
                                     never_stops)
    assert len(stats.completions) == 3 and len({c.text for c in stats.completions}) > 1


@pytest.mark.slow
@pytest.mark.parametrize("quantization, layer", [("8bit", "Linear8bitLt"), ("4bit", "Linear4bit")])
def test_quantized_cpu_paths_load_and_generate(tiny_base, registry, quantization, layer):
    runtime = ModelRuntime(ModelSpec(model=str(tiny_base), device="cpu", quantization=quantization))
    loaded = runtime.load()
    assert loaded.quantization == quantization
    assert type(loaded.model.model.layers[0].self_attn.q_proj).__name__ == layer
    assert greedy(runtime)
    runtime.activate(registry.find_verified("lora"))
    assert greedy(runtime)


def test_auto_quantization_is_4bit_on_cuda_and_none_on_cpu(runtime):
    from unitune.runtime.loading import resolve_quantization

    assert resolve_quantization("auto", "cpu") == "none"
    assert resolve_quantization("auto", "cuda") == "4bit"
    assert runtime.load().quantization == "none"  # the runtime above asked for none on the CPU


@pytest.mark.parametrize(
    "spec, message",
    [
        (ModelSpec(model="/nonexistent/model-folder"), "neither a folder nor"),
        (ModelSpec(model="someone/not-cached-model"), "HF_HUB_OFFLINE"),
        (ModelSpec(model="unitune-missing"), "HF_HUB_OFFLINE"),
    ],
)
def test_models_that_cannot_load_say_what_to_do(spec, message):
    with pytest.raises(ModelLoadError, match=message):
        load_model(spec)


def test_cuda_requested_without_gpu(tiny_base):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelLoadError, match="no CUDA GPU"):
        load_model(ModelSpec(model=str(tiny_base), device="cuda"))


def test_pickle_only_model_is_refused(tmp_path, tiny_base):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_base / "config.json").read_text())
    (folder / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelLoadError, match="pickle"):
        load_model(ModelSpec(model=str(folder)))


def test_runtime_failure_is_reported_in_status(tmp_path):
    runtime = ModelRuntime(ModelSpec(model=str(tmp_path / "missing")))
    with pytest.raises(ModelLoadError):
        runtime.load()
    assert runtime.status()["state"] == "failed" and "neither a folder" in runtime.status()["error"]
