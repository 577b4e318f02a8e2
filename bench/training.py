"""Benchmark of mining and training.

    python bench/training.py [--steps 20] [--hidden 256] [--layers 4] [--skip-mining]
    python bench/training.py --model default --pairs PAIRS.jsonl --steps 4 --batch-size 1 --skip-mining
    python bench/training.py --processes 2 --skip-mining [--steps 20] [--batch-size 2]

Prints, measured side by side in this one run:
- mining throughput on the running interpreter's standard library (its `test/` package against its
  modules): files per second and pairs found, by split;
- for each method (LoRA, (IA)³, prompt tuning, full fine-tuning as `unitune train` runs it: 8-bit
  AdamW and gradient checkpointing) on a small Llama-style model, or on `--model` (a model folder, or
  `default` for the built-in default model): trainable parameters (% of the model), seconds per
  optimizer step and peak memory, each as a ratio to full fine-tuning (each method runs in its own
  process, so peak memory is its own);
- our training loop vs. a bare PEFT + `transformers.Trainer` loop on the same data and steps (LoRA).
With `--processes N`, instead of the table and the loop comparison: LoRA trained by N CPU processes
(torchrun, gloo; `--batch-size` examples each) against one process taking the same global batch
(`--batch-size` x N), on the same data and steps: seconds per step and samples per second, and their
ratios. Each of the N processes uses its share of the cores; the one process runs twice, with all of
them and with one share.
Pairs are `--pairs` (from `unitune mine`; their train split) or 32 made-up pairs of the example project.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
METHODS = ["lora", "ia3", "prompt-tuning", "full"]


def make_pairs(path: Path, count: int = 32) -> Path:
    from conftest import PY_FOCAL, example_prompt

    prompt = example_prompt(*PY_FOCAL).text
    with path.open("w") as handle:
        for i in range(count):
            completion = f'):\n    account = Account("u{i}")\n    assert account.deposit({i + 1}) == {i + 1}\n'
            handle.write(json.dumps({"language": "python", "test_file": "t.py", "focal_file": "a.py", "prompt": prompt,
                                     "completion": completion, "split": "train" if i % 8 else "valid"}) + "\n")
    return path


def one_method(method: str, base: str, pairs: Path, steps: int, trainer_loop: bool, batch_size: int = 4,
               block: int = 1024, threads: int = 2) -> dict | None:
    """Run in a child process (or in each of the processes a launcher started): train `steps`
    optimizer steps and report (the main process only)."""
    from unitune.training import distributed

    with distributed.joined() as team:
        parallel = distributed.ParallelRun(team) if team.several else None
        result = _train_and_measure(method, base, pairs, steps, trainer_loop, batch_size, block, threads, parallel)
        return {**result, "processes": team.size} if team.is_main else None


def _train_and_measure(method: str, base: str, pairs: Path, steps: int, trainer_loop: bool, batch_size: int,
                       block: int, threads: int, parallel) -> dict:
    import torch

    from unitune.runtime.loading import ModelSpec, load_model, quiet_libraries
    from unitune.training import run_record, trainer
    from unitune.training.config import TrainConfig
    from unitune.training.data import collate, read_pairs, tokenize_pairs

    quiet_libraries()
    torch.set_num_threads(threads)
    loaded = load_model(ModelSpec(model=str(base), quantization="none"))
    config = TrainConfig(method=method, name="bench", max_steps=steps, grad_accum=1, batch_size=batch_size,
                         checkpoint_every=10**6, epochs=100)
    bf16, checkpointing, optimizer = trainer.compute_plan(config, "cpu", block)
    model = trainer.build_model(config, loaded, loaded.model.config.model_type, checkpointing)
    trainable, total = run_record.count_parameters(model)
    rows = read_pairs(pairs)
    reserved = config.virtual_tokens if method == "prompt-tuning" else 0
    train = tokenize_pairs([p for p in rows if p["split"] == "train"], loaded.tokenizer, block, reserved)
    valid = tokenize_pairs([], loaded.tokenizer, block, reserved)
    started = time.perf_counter()
    if trainer_loop:
        from transformers import Trainer, TrainingArguments

        class Examples(torch.utils.data.Dataset):
            def __len__(self):
                return len(train.examples)

            def __getitem__(self, index):
                return train.examples[index]

        arguments = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=batch_size, max_steps=steps,
                                      learning_rate=config.learning_rate, lr_scheduler_type="linear", warmup_steps=max(1, steps // 10),
                                      logging_steps=10**6, save_strategy="no", report_to=[], use_cpu=True,
                                      dataloader_num_workers=0, seed=config.seed, disable_tqdm=True,
                                      bf16=bf16)  # the precision our loop computes in, so only the loops differ
        Trainer(model=model, args=arguments, train_dataset=Examples(),
                data_collator=lambda batch: collate(batch, loaded.tokenizer.pad_token_id)).train()
    else:
        trainer.train_loop(config, model, train, valid, loaded.tokenizer.pad_token_id, Path(tempfile.mkdtemp()), False,
                           lambda event: None, bf16=bf16, optimizer_kind=optimizer, parallel=parallel)
    seconds = time.perf_counter() - started
    samples_per_step = batch_size * (parallel.size if parallel is not None else 1)
    return {"method": method, "trainable": trainable, "total": total, "seconds_per_step": seconds / steps,
            "peak_mib": run_record.peak_memory_mib(), "loop": "Trainer" if trainer_loop else "unitune",
            "precision": "bf16" if bf16 else "fp32",
            "optimizer": optimizer, "checkpointing": checkpointing, "examples": len(train.examples),
            "mean_tokens": sum(len(e.input_ids) for e in train.examples) / max(1, len(train.examples)),
            "samples_per_second": samples_per_step * steps / seconds, "batch_size": batch_size}


def child(method: str, base: str, pairs: Path, steps: int, trainer_loop: bool = False, batch_size: int = 4,
          block: int = 1024, threads: int = 2, processes: int = 1) -> dict:
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]
    command = [*launcher, __file__, "--child", method, "--base", str(base), "--pairs", str(pairs),
               "--steps", str(steps), "--batch-size", str(batch_size), "--block-size", str(block),
               "--threads", str(threads)] + (["--trainer"] if trainer_loop else [])
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def compare_processes(base: str, pairs: Path, steps: int, batch_size: int, block: int, processes: int,
                      described: str) -> None:
    """LoRA on `processes` CPU processes against one process with the same global batch, the one
    process run twice: with every core's thread, and with as many threads as each of the others (on
    a busy machine, one process's threads wait on each other far longer than separate processes do)."""
    cores = os.cpu_count() or 1
    share = max(1, cores // processes)
    runs = [(child("lora", base, pairs, steps, batch_size=batch_size * processes, block=block, threads=threads), threads)
            for threads in dict.fromkeys((cores, share))]
    several = child("lora", base, pairs, steps, batch_size=batch_size, block=block, threads=share, processes=processes)
    print(f"LoRA, {steps} steps of {batch_size * processes} examples, block {block}, {described}, {cores} cores; "
          f"{several['examples']} examples of {several['mean_tokens']:.0f} tokens on average\n")
    print(f"{'processes':<11}{'batch each':>11}{'threads each':>14}{'s/step':>9}{'samples/s':>11}")
    for result, threads in [*runs, (several, share)]:
        print(f"{result['processes']:<11}{result['batch_size']:>11}{threads:>14}{result['seconds_per_step']:>9.3f}"
              f"{result['samples_per_second']:>11.2f}")
    print()
    for one, threads in runs:
        print(f"{processes} processes vs 1 process of {threads} thread(s): "
              f"s/step x{several['seconds_per_step'] / one['seconds_per_step']:.2f}, "
              f"samples/s x{several['samples_per_second'] / one['samples_per_second']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--skip-mining", action="store_true")
    parser.add_argument("--model", help="a model folder, or `default` for the built-in default model "
                                        "(default: a small random Llama-style model of --hidden/--layers)")
    parser.add_argument("--pairs", type=Path, help="pairs from `unitune mine` (default: 32 made-up pairs)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--processes", type=int, help="compare LoRA on this many CPU processes with one process")
    parser.add_argument("--child")
    parser.add_argument("--base")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trainer", action="store_true")
    args = parser.parse_args()
    if args.child:
        result = one_method(args.child, args.base, args.pairs, args.steps, args.trainer, args.batch_size,
                            args.block_size, args.threads)
        if result is not None:  # the main process reports for all
            print(json.dumps(result))
        return

    if not args.skip_mining:
        from unitune.training.stdlib import mine_stdlib

        seconds, files, pairs, summary = mine_stdlib()
        splits = summary.get("by_split", {}) if isinstance(summary, dict) else getattr(summary, "by_split", {})
        print(f"mining the standard library ({sys.version.split()[0]}): {files} files in {seconds:.1f}s = "
              f"{files / seconds:.1f} files/s; {pairs} pairs {splits}\n")

    import tinymodels

    work = Path(tempfile.mkdtemp(prefix="unitune-bench-train-"))
    if args.model == "default":
        from unitune.settings import Settings

        base = described = Settings().model  # a built-in name: load_model converts and caches it on first use
    elif args.model:
        base, described = args.model, args.model
    else:
        base = str(tinymodels.save_model(work / "base", hidden=args.hidden, layers=args.layers))
        described = f"Llama-style hidden {args.hidden}, {args.layers} layers"
    pairs = args.pairs or make_pairs(work / "pairs.jsonl")
    if args.processes:
        compare_processes(base, pairs, args.steps, args.batch_size, args.block_size, args.processes, described)
        return
    options = {"batch_size": args.batch_size, "block": args.block_size}
    results = {}
    for method in METHODS:
        results[method] = child(method, base, pairs, args.steps, **options)
        print(f"  {method}: {results[method]['seconds_per_step']:.2f} s/step", file=sys.stderr, flush=True)
    full = results["full"]
    print(f"training {args.steps} steps, batch {args.batch_size}, block {args.block_size}, {described}, "
          f"{full['total'] / 1e6:.1f}M parameters, CPU; {full['examples']} examples of "
          f"{full['mean_tokens']:.0f} tokens on average; {full['precision']} compute; full fine-tuning with {full['optimizer']}"
          f"{' and gradient checkpointing' if full['checkpointing'] else ''}\n")
    print(f"{'method':<15}{'trainable':>12}{'% of model':>12}{'s/step':>10}{'vs full':>9}{'peak MiB':>10}{'vs full':>9}")
    for method, r in results.items():
        print(f"{method:<15}{r['trainable']:>12,}{100 * r['trainable'] / r['total']:>11.3f}%"
              f"{r['seconds_per_step']:>10.3f}{r['seconds_per_step'] / full['seconds_per_step']:>9.2f}"
              f"{r['peak_mib']:>10.0f}{r['peak_mib'] / full['peak_mib']:>9.2f}")
    # Ours again, right before the Trainer run: the first process of a run started colder (page cache,
    # allocator) and ran up to 1.2x slower than the same loop run later.
    ours = child("lora", base, pairs, args.steps, **options)
    bare = child("lora", base, pairs, args.steps, trainer_loop=True, **options)
    print(f"\nLoRA, {args.steps} steps: our loop {ours['seconds_per_step']:.3f} s/step, PEFT + Trainer "
          f"{bare['seconds_per_step']:.3f} s/step: ratio {ours['seconds_per_step'] / bare['seconds_per_step']:.2f}")


if __name__ == "__main__":
    main()
