"""`unitune train REPO|PAIRS.jsonl --method lora|ia3|prompt-tuning|full --name NAME`.

    unitune train . --method lora --name my-project
    unitune train pairs.jsonl --method prompt-tuning --name quick --epochs 1
    unitune train . --method lora --name my-project --resume        # after a crash or kill
    unitune train . --method ia3 --name x --progress json           # one JSON object per step (editors)
    unitune train . --method full --name x --minutes 30             # a time budget; 8-bit AdamW
    unitune train . --method lora --name x --quantization 4bit      # QLoRA (a CPU works too)
    unitune train . --method lora --name my-project --overwrite     # replace an adapter of that name

A repository is mined first (its pairs are written to the run folder for inspection); a pairs file
from `unitune mine` is used as it is. The run folder is `$UNITUNE_HOME/runs/NAME/`.

The run itself (checks, lock, pairs, fine-tuning, writing, judging) is `unitune.training.run`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from unitune.adapters.constants import METHODS
from unitune.training.config import CHOICES, TrainConfig, help_of
from unitune.training.run import train

_FLAG_TYPES = {name: float for name in ("epochs", "lr", "dropout", "warmup", "weight_decay", "minutes")} | {
    name: int for name in ("rank", "alpha", "virtual_tokens", "block_size", "batch_size", "grad_accum", "max_steps",
                           "checkpoint_every", "seed", "judge")}


def add_train_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="fine-tune an adapter on a repository's tests (or a pairs file)",
        description=("Fine-tune an adapter (LoRA, (IA)³, prompt tuning) or the whole model on the focal-method/test "
                     "pairs of a repository, with the defaults of the study by Storhaug & Li, and store it in the "
                     "adapter registry with its card, config and loss plot. A repository is mined first; its pairs "
                     "are written to the run folder ($UNITUNE_HOME/runs/NAME/) for inspection."),
        epilog="examples:\n" + "\n".join(line for line in __doc__.splitlines() if line.startswith("    unitune")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="REPO|PAIRS.jsonl", type=Path, help="a repository to mine, or pairs from `unitune mine`")
    parser.add_argument("--method", choices=METHODS, default="lora", help=help_of("method"))
    parser.add_argument("--name", required=True, help=help_of("name"))
    for item in dataclasses.fields(TrainConfig):
        if item.name in ("method", "name"):
            continue
        kind = _FLAG_TYPES.get(item.name, str)
        default = "" if item.default is None else f" (default: {item.default})"
        parser.add_argument(f"--{item.name.replace('_', '-')}", type=kind, default=None, choices=CHOICES.get(item.name),
                            help=item.metadata.get("help", "") + default)
    parser.add_argument("--resume", action="store_true", help="continue the run NAME from its last checkpoint")
    parser.add_argument("--fresh", action="store_true", help="discard an unfinished run NAME and start over")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an adapter NAME that is already in the registry (without it, train refuses)")
    parser.add_argument("--project", type=Path, help="project whose settings and store to use (default: REPO or the cwd)")
    parser.add_argument("--progress", choices=("bar", "json", "none"), default=None,
                        help="progress display: a bar on a terminal, whole lines when stderr is a file (the default, "
                             "both), one JSON object per step, or nothing")
    parser.set_defaults(handler=run_train_command)


def run_train_command(args: argparse.Namespace) -> int:
    from unitune.training.distributed import MainProcessFailed, launched_rank
    from unitune.training.trainer import TrainingInterrupted

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name, None) is not None}
    config = TrainConfig(**overrides)
    progress = args.progress or "bar"  # off a terminal the bar writes whole lines (unitune.progress_line)
    project = args.project or (args.source if args.source.is_dir() else Path.cwd())
    main_process = launched_rank() == 0
    try:
        summary = train(args.source, config, project_root=project.resolve(), resume=args.resume, fresh=args.fresh,
                        progress=progress, overwrite=args.overwrite)
    except (MainProcessFailed, TrainingInterrupted) as error:
        if main_process:
            raise
        return error.exit_code  # the main process reports it, once
    if not main_process:
        return 0
    judge = summary["hyperparameters"].get("judge", config.judge)
    if judge:
        if progress == "json":  # a long step after the last training step: say what it is (the editor shows it)
            print(json.dumps({"event": "judging", "functions": judge}), flush=True)
        summary["held_out"] = judge_held_out(args.source, summary, project.resolve(), judge)
    if progress == "json":
        print(json.dumps({"event": "done", **summary}), flush=True)
    else:
        print(_summary_text(summary))
    return 0


def judge_held_out(source: Path, summary: dict, project_root: Path, judge: int) -> dict | str:
    """`evaluation/payoff.py` on the pairs this run trained from (the mined ones are in the run folder)."""
    import gc

    from unitune.evaluation.payoff import judge_payoff
    from unitune.training.run import PAIRS_FILE
    from unitune.training.trainer import run_dir_for

    gc.collect()  # the trained model is gone; its memory goes back before the judging loads the model again
    mined = source.is_dir()
    pairs = run_dir_for(summary["name"]) / PAIRS_FILE if mined else source
    payoff = judge_payoff(summary["name"], pairs, source.resolve() if mined else project_root, project_root, judge,
                          model=summary["hyperparameters"].get("model"))
    return payoff if isinstance(payoff, str) else payoff.to_json()


def _summary_text(summary: dict) -> str:
    from unitune.evaluation.payoff import payoff_lines

    metrics = summary["metrics"]
    before, after = metrics["eval_loss_before"], metrics["eval_loss_after"]
    evaluation = (f"validation loss {before:.4f} -> {after:.4f}" if before is not None and after is not None
                  else "no validation pairs: validation loss not measured")
    return "\n".join([
        f"adapter {summary['name']} ({summary['method']}) written to {summary['adapter_path']}",
        f"  base model      {summary['base_model']}",
        f"  pairs           {summary['pairs']['train']} train, {summary['pairs']['valid']} valid; "
        f"{summary['truncated']} fitted and {summary['dropped_over_length']} dropped as longer than "
        f"{summary['block_size']} tokens",
        f"  trainable       {summary['trainable_parameters']:,} of {summary['total_parameters']:,} parameters "
        f"({summary['trainable_percent']}%)",
        f"  training        {summary['steps']} steps in {summary['seconds']:.1f}s"
        f"{' (the --minutes budget ended it)' if summary['stopped_by'] == 'minutes' else ''}; peak memory "
        f"{summary['peak_memory_mib']:.0f} MiB; {summary['precision']}, {summary['optimizer']}"
        f"{', gradient checkpointing' if summary['gradient_checkpointing'] else ''}",
        f"  {evaluation}",
        *(payoff_lines(_payoff_from(summary["held_out"])) if "held_out" in summary else []),
    ])


def _payoff_from(record: dict | str):
    from unitune.evaluation.payoff import Delivered, Payoff

    if isinstance(record, str):
        return record
    return Payoff(record["functions"], record["engine"], Delivered(**record["base"]), Delivered(**record["adapter"]))
