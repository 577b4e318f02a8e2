"""Benchmark of the model runtime, on a small random model saved to a local folder, or on a real one.

    python bench/runtime.py [--hidden 256] [--layers 4] [--tokens 64] [--repeats 5]
    python bench/runtime.py --model default --tokens 32 --repeats 3     # the built-in default model

With `--model` (a model folder, or `default`), the adapters are made for that model with random
weights: what is timed does not depend on what they learned.

Prints, each measured side by side in this one run (medians of --repeats):
- adapter switch (LoRA -> LoRA, LoRA -> (IA)³, back to the bare base) vs. reloading base + adapter;
- our generation path (stop rule, incremental decoding, progress callback) vs. a bare
  `model.generate` with the same prompt and the same number of new tokens (goal: <= 1.05);
- one mixed-adapter batch of 4 rows (PEFT `adapter_names=`) vs. 4 single calls.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def median_time(fn, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", help="a model folder, or `default` for the built-in default model")
    args = parser.parse_args()

    import torch
    import tinymodels
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from unitune.runtime.generation import SamplingOptions, generate_batch, generate_completions
    from unitune.runtime.loading import ModelSpec, quiet_libraries
    from unitune.runtime.runtime import ModelRuntime
    from unitune.stopping import StopScanner

    quiet_libraries()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    work = Path(tempfile.mkdtemp(prefix="unitune-bench-"))
    if args.model:
        from unitune.runtime.loading import resolve_model_folder
        from unitune.settings import Settings

        base = resolve_model_folder(Settings().model if args.model == "default" else args.model, None)[0]
        described = args.model if args.model != "default" else Settings().model
    else:
        base = tinymodels.save_model(work / "base", hidden=args.hidden, layers=args.layers)
        described = f"Llama-style, hidden {args.hidden}, {args.layers} layers"
    folders = {
        "lora-a": tinymodels.save_peft_adapter(base, work / "lora-a", "lora", seed=1),
        "lora-b": tinymodels.save_peft_adapter(base, work / "lora-b", "lora", seed=2),
        "ia3-a": tinymodels.save_peft_adapter(base, work / "ia3-a", "ia3", seed=3),
    }
    entries = {
        name: SimpleNamespace(name=name, path=folder, method=name.split("-")[0], card=None)
        for name, folder in folders.items()
    }
    runtime = ModelRuntime(ModelSpec(model=str(base), quantization="none"))
    runtime.load()
    for entry in entries.values():  # make them resident, as a server would after first use
        runtime.activate(entry)
    parameters = sum(p.numel() for p in runtime.base.model.parameters())
    print(f"model: {described}, {parameters / 1e6:.1f}M parameters, CPU, "
          f"{torch.get_num_threads()} threads; medians of {args.repeats}\n")

    # -- switching ---------------------------------------------------------------------------
    def reload_base_and_adapter():
        model = AutoModelForCausalLM.from_pretrained(base)
        PeftModel.from_pretrained(model, str(folders["lora-b"]))

    def switch(a, b):
        def run():
            runtime.activate(entries[a])
            runtime.activate(entries[b])
        return lambda: run()

    reload_time = median_time(reload_base_and_adapter, args.repeats)
    lora_switch = median_time(switch("lora-a", "lora-b"), args.repeats) / 2
    cross_switch = median_time(switch("lora-a", "ia3-a"), args.repeats) / 2
    to_base = median_time(lambda: (runtime.activate(entries["lora-a"]), runtime.activate(None)), args.repeats) / 2
    print(f"{'adapter switch':<40}{'seconds':>12}{'ratio to reload':>18}")
    print(f"{'reload base + adapter from disk':<40}{reload_time:>12.4f}{1.0:>18.4f}")
    for label, value in [("switch LoRA -> LoRA", lora_switch), ("switch LoRA -> (IA)3 (other type)", cross_switch),
                         ("switch LoRA -> bare base", to_base)]:
        print(f"{label:<40}{value:>12.4f}{value / reload_time:>18.4f}")
    print(f"base weights read from disk by the runtime: {runtime.base_loads} time(s)\n")

    # -- generation overhead -----------------------------------------------------------------
    prompt = "import pytest\nfrom bank.account import Account\n\n\ndef test_deposit("
    runtime.activate(entries["lora-a"])
    never = lambda: StopScanner("java", 0)  # noqa: E731 - never ends: every run makes exactly --tokens tokens
    ticks = []
    made = {}  # new tokens per side, printed as a check
    options = SamplingOptions(max_new_tokens=args.tokens)

    # Every run makes exactly --tokens tokens: `min_new_tokens` holds back end-of-text, at which a real
    # model may otherwise stop early on our side only (the bare side below is held to the count too).
    def ours():
        with runtime.active_model() as (model, tokenizer):
            stats = generate_completions(model, tokenizer, prompt, options, never, on_token=ticks.append,
                                         min_new_tokens=args.tokens)
        made["ours"] = stats.new_tokens

    def bare():
        with runtime.active_model() as (model, tokenizer):
            ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
            with torch.inference_mode():
                out = model.generate(**ids, max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id)
        made["bare"] = out.shape[1] - ids["input_ids"].shape[1]

    ours(), bare()  # warm up
    ours_times, bare_times = [], []
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        ours_times.append(median_time(ours, 1))
        bare_times.append(median_time(bare, 1))
    ours_t, bare_t = statistics.median(ours_times), statistics.median(bare_times)
    print(f"{'generation, ' + str(args.tokens) + ' new tokens':<40}{'seconds':>12}{'ratio to bare':>18}")
    print(f"{'bare model.generate':<40}{bare_t:>12.4f}{1.0:>18.4f}")
    print(f"{'unitune generate_completions':<40}{ours_t:>12.4f}{ours_t / bare_t:>18.4f}")
    print(f"new tokens made: ours {made['ours']}, bare {made['bare']}\n")

    # -- mixed batch -------------------------------------------------------------------------
    rows = [entries["lora-a"], entries["lora-b"], None, entries["lora-a"]]

    def batch():
        with runtime.mixed_lora_model(rows) as (model, tokenizer, names):
            generate_batch(model, tokenizer, [prompt] * 4, options, never, adapter_names=names,
                           min_new_tokens=args.tokens)

    def singles():
        for entry in rows:
            runtime.activate(entry)
            with runtime.active_model() as (model, tokenizer):
                generate_completions(model, tokenizer, prompt, options, never, min_new_tokens=args.tokens)

    batch_t = median_time(batch, args.repeats)
    singles_t = median_time(singles, args.repeats)
    print(f"{'4 requests, 4 adapters':<40}{'seconds':>12}{'ratio to singles':>18}")
    print(f"{'4 single calls (switching)':<40}{singles_t:>12.4f}{1.0:>18.4f}")
    print(f"{'one mixed batch (adapter_names=)':<40}{batch_t:>12.4f}{batch_t / singles_t:>18.4f}")


if __name__ == "__main__":
    main()
