"""Benchmark of the real default model on the CPU: where the time to a first test goes, and which CPU
path is fastest without changing the tests.

    python bench/real_model.py [--model qwen2.5-coder-0.5b-instruct] [--tokens 48] [--repeats 3]

Prints, each measured side by side in this one run (medians of --repeats, interleaved):
- load: `load_model` (the converted copy, as every run after the first uses it) vs. a bare
  `AutoModelForCausalLM.from_pretrained` of the same folder;
- prefill of the README's prompt and of a 1,000-token prompt, and decode tokens/s, each as a ratio to a
  bare greedy `model.generate` of --tokens new tokens on the same prompt;
- CPU paths: fp32, bf16, torch's dynamic int8 quantization of the Linear layers, prompt-lookup decoding,
  each as tokens/s relative to fp32, and whether the greedy test for `Account.deposit` is unchanged;
- several candidates: one prefill shared by all rows vs. `num_return_sequences` (a prefill per row);
- time to the first test (`unitune generate` on the README's example, validate = syntax and run), split
  into load, prepare, generate and validate, as ratios to the bare `model.generate` of the same prompt.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def interleaved(functions: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, run in turn so drift in machine load hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, fn in functions.items():
            samples[name].append(timed(fn)[0])
    return {name: statistics.median(values) for name, values in samples.items()}


def row(label: str, seconds: float, reference: float, extra: str = "") -> None:
    print(f"{label:<48}{seconds:>10.3f}{seconds / reference:>10.2f}  {extra}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="base model (default: the built-in default)")
    parser.add_argument("--tokens", type=int, default=48, help="new tokens per decode measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=4)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM

    from conftest import EXAMPLES, PY_FOCAL, example_prompt
    from unitune.runtime.generation import SamplingOptions, generate_completions
    from unitune.runtime.loading import ModelSpec, load_model, quiet_libraries
    from unitune.prompt import model_input
    from unitune.settings import DEFAULT_MODEL
    from unitune.stopping import StopScanner

    quiet_libraries()
    model_name = args.model or DEFAULT_MODEL
    spec = ModelSpec(model=model_name, device="cpu", quantization="none")
    first_load, loaded = timed(lambda: load_model(spec))  # converts on the very first use
    folder = loaded.folder
    model, tokenizer = loaded.model, loaded.tokenizer
    parameters = sum(p.numel() for p in model.parameters())
    print(f"model: {loaded.model_id} ({parameters / 1e6:.0f}M parameters, {loaded.dtype}), CPU, "
          f"{torch.get_num_threads()} threads; medians of {args.repeats}; first load {first_load:.1f}s\n")

    prompt = example_prompt(*PY_FOCAL)
    text = model_input(tokenizer, prompt.text, prompt.language)  # what generation gives this model
    long_prompt = _long_prompt(tokenizer, text, 1000)
    never = lambda: StopScanner("java", 0)  # noqa: E731 - never ends: exactly --tokens tokens

    def bare(m=model, text=text, tokens=args.tokens, **kwargs):
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            return m.generate(**ids, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False,
                              pad_token_id=tokenizer.pad_token_id, **kwargs)

    def prefill(text):
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            model(**ids)

    # -- load --------------------------------------------------------------------------------
    times = interleaved({
        "bare": lambda: AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32),
        "ours": lambda: load_model(spec),
    }, max(1, args.repeats - 1))
    print(f"{'load (converted copy)':<48}{'seconds':>10}{'ratio':>10}")
    row("bare AutoModelForCausalLM.from_pretrained", times["bare"], times["bare"])
    row("unitune load_model (+ tokenizer, fingerprint)", times["ours"], times["bare"])
    print()

    # -- prefill and decode ------------------------------------------------------------------
    bare(tokens=2)  # warm up
    times = interleaved({
        "generate": bare,
        "prefill": lambda: prefill(text),
        "prefill-long": lambda: prefill(long_prompt),
        "ours": lambda: generate_completions(model, tokenizer, text, SamplingOptions(max_new_tokens=args.tokens),
                                             never, context_length=loaded.context_length),
    }, args.repeats)
    prompt_tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
    reference = times["generate"]
    decode_rate = args.tokens / max(1e-9, reference - times["prefill"])
    print(f"{'prefill and decode (ratio to bare generate)':<48}{'seconds':>10}{'ratio':>10}")
    row(f"bare model.generate, {prompt_tokens} + {args.tokens} tokens", reference, reference)
    row(f"prefill, {prompt_tokens}-token prompt", times["prefill"], reference)
    row("prefill, 1000-token prompt", times["prefill-long"], reference)
    row("unitune generate_completions, same tokens", times["ours"], reference)
    print(f"decode: {decode_rate:.1f} tokens/s (bare), prefill {prompt_tokens / times['prefill']:.0f} tokens/s\n")

    # -- CPU paths ---------------------------------------------------------------------------
    print(f"{'CPU path (greedy test for Account.deposit)':<48}{'tokens/s':>10}{'vs fp32':>10}  same test as fp32?")
    variants = {"fp32": model}
    variants["bf16"] = copy.deepcopy(model).to(torch.bfloat16)
    try:
        from torch.ao.quantization import quantize_dynamic

        variants["int8 dynamic (Linear)"] = quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    except Exception as error:  # noqa: BLE001 - reported, the rest still measured
        print(f"int8 dynamic quantization unavailable: {type(error).__name__}: {error}")
    tests, rates = {}, {}
    for name, variant in list(variants.items()) + [("fp32 + prompt lookup (10)", model)]:
        kwargs = {"prompt_lookup_num_tokens": 10} if "lookup" in name else {}
        samples = []
        for _ in range(args.repeats):
            seconds, stats = timed(lambda: generate_completions(
                variant, tokenizer, text, SamplingOptions(max_new_tokens=160), prompt.stop_scanner,
                context_length=loaded.context_length, **kwargs))
            samples.append(stats.new_tokens / seconds)
        rates[name] = statistics.median(samples)
        tests[name] = prompt.test_source(stats.completions[0].text)
    for name, rate in rates.items():
        print(f"{name:<48}{rate:>10.1f}{rate / rates['fp32']:>10.2f}  {'yes' if tests[name] == tests['fp32'] else 'no'}")
    del variants
    print()

    # -- several candidates ------------------------------------------------------------------
    n = args.candidates
    options = SamplingOptions(max_new_tokens=args.tokens, candidates=n, seed=0)
    times = interleaved({
        "per-row prefill": lambda: generate_completions(model, tokenizer, long_prompt, options, never,
                                                        context_length=loaded.context_length, share_prefill=False),
        "shared prefill": lambda: generate_completions(model, tokenizer, long_prompt, options, never,
                                                       context_length=loaded.context_length, share_prefill=True),
    }, args.repeats)
    print(f"{f'{n} candidates, 1000-token prompt, {args.tokens} tokens each':<48}{'seconds':>10}{'ratio':>10}")
    row("num_return_sequences (a prefill per row)", times["per-row prefill"], times["per-row prefill"])
    row("one prefill shared by all rows", times["shared prefill"], times["per-row prefill"])
    print(f"tokens/s in total: {n * args.tokens / times['shared prefill']:.1f} (shared)\n")

    # -- adapter switching on this model -----------------------------------------------------
    switching(loaded, folder, spec, args.repeats)

    # -- time to the first test --------------------------------------------------------------
    from unitune.runtime.runtime import ModelRuntime
    from unitune.request import GenerationRequest
    from unitune.generation.service import TestGenerator
    from unitune.errors import GenerationFailed
    from unitune.settings import Settings
    from unitune.source import SourceFile, cli_offset

    path = EXAMPLES / PY_FOCAL[0]
    file = SourceFile.from_path(path)
    offset = cli_offset(file, PY_FOCAL[1], None)
    print(f"{'time to the first test (README example)':<48}{'seconds':>10}{'ratio':>10}  (ratio to bare generate)")
    for validate in ("syntax", "run"):
        settings = Settings(model=model_name, device="cpu", validate=validate)
        runtime = ModelRuntime(ModelSpec.from_settings(settings))
        try:
            outcome = TestGenerator(runtime).generate(GenerationRequest(path, offset, settings,
                                                                        project_root=path.parents[1]))
        except GenerationFailed as error:
            print(f"validate = {validate}: {error}")
            continue
        tokens = outcome.stats.new_tokens
        reference = timed(lambda: bare(tokens=max(1, tokens)))[0]
        print(f"validate = {validate}: {len(outcome.tests)} test(s), {tokens} tokens; bare generate of as many "
              f"tokens {reference:.2f}s")
        for stage in ("load", "prepare", "generate", "validate", "total"):
            row(f"  {stage}", outcome.timings.get(stage, 0.0), reference)


def switching(loaded, folder: Path, spec, repeats: int) -> None:
    """LoRA -> LoRA, LoRA -> (IA)³ and back to the bare model in one runtime, vs. reloading the base
    model and an adapter from disk (what a tool without switching does per project)."""
    import tempfile
    from types import SimpleNamespace

    import torch
    from peft import IA3Config, LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    from unitune.runtime.runtime import ModelRuntime

    work = Path(tempfile.mkdtemp(prefix="unitune-bench-adapters-"))
    configs = {
        "lora-a": LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
        "lora-b": LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
        "ia3-a": IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"],
                           task_type="CAUSAL_LM"),
    }
    for name, config in configs.items():
        base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        get_peft_model(base, config).save_pretrained(work / name)
        del base
    entries = {name: SimpleNamespace(name=name, path=work / name, method=name.split("-")[0], card=None)
               for name in configs}
    runtime = ModelRuntime(spec, max_resident=8)
    runtime._base = loaded  # the model this benchmark already loaded
    for entry in entries.values():
        runtime.activate(entry)  # resident, as a server has them after first use

    def reload():
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
        PeftModel.from_pretrained(model, str(work / "lora-b"))

    def pair(a, b):
        return lambda: (runtime.activate(entries[a]), runtime.activate(entries[b]))

    times = interleaved({
        "reload": reload,
        "lora": pair("lora-a", "lora-b"),
        "cross": pair("lora-a", "ia3-a"),
        "bare": lambda: (runtime.activate(entries["lora-a"]), runtime.activate(None)),
    }, repeats)
    print(f"{'adapter switch on this model':<48}{'seconds':>10}{'ratio':>10}")
    row("reload base + LoRA adapter from disk", times["reload"], times["reload"])
    row("switch LoRA -> LoRA", times["lora"] / 2, times["reload"])
    row("switch LoRA -> (IA)3 (other type)", times["cross"] / 2, times["reload"])
    row("switch LoRA -> bare model", times["bare"] / 2, times["reload"])
    runtime.activate(None)
    print()


def _long_prompt(tokenizer, text: str, tokens: int) -> str:
    """`text` preceded by as much of unitune's own source as makes it about `tokens` tokens long."""
    source = (ROOT / "unitune" / "context.py").read_text("utf-8")
    ids = tokenizer(source, add_special_tokens=False)["input_ids"]
    room = tokens - len(tokenizer(text, add_special_tokens=False)["input_ids"])
    return tokenizer.decode(ids[:max(0, room)]) + "\n\n" + text


if __name__ == "__main__":
    main()
