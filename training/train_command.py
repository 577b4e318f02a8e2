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

Launched as several processes (`accelerate launch --num_processes N -m unitune train ...`, one per
GPU; training/distributed.py), the main process alone checks, locks, reads the pairs and writes;
every process trains on its part of each batch.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import time
from pathlib import Path

from unitune.adapters.constants import FULL, IA3, LORA, METHODS
from unitune.errors import UnituneError
from unitune.logs import get_logger, log_event
from unitune.progress_line import ProgressLine
from unitune.training.config import CHOICES, CONFIG_FILE, TrainConfig, help_of

log = get_logger("training.command")
PAIRS_FILE = "pairs.jsonl"
_FLAG_TYPES = {name: float for name in ("epochs", "lr", "dropout", "warmup", "weight_decay", "minutes")} | {
    name: int for name in ("rank", "alpha", "virtual_tokens", "block_size", "batch_size", "grad_accum", "max_steps",
                           "checkpoint_every", "seed", "judge")}


class TrainInputError(UnituneError):
    exit_code = 2


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
                        help="progress display: a bar on a terminal (default), one JSON object per step, or nothing")
    parser.set_defaults(handler=run_train_command)


def run_train_command(args: argparse.Namespace) -> int:
    from unitune.training.distributed import MainProcessFailed, launched_rank
    from unitune.training.trainer import TrainingInterrupted

    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                 if getattr(args, f.name, None) is not None}
    config = TrainConfig(**overrides)
    progress = args.progress or ("bar" if sys.stderr.isatty() else "none")
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
        summary["held_out"] = _judge_held_out(args.source, summary, project.resolve(), judge)
    if progress == "json":
        print(json.dumps({"event": "done", **summary}), flush=True)
    else:
        print(_summary_text(summary))
    return 0


def train(source: Path, config: TrainConfig, *, project_root: Path, resume: bool = False, fresh: bool = False,
          progress: str = "none", stop_after_step=None, overwrite: bool = False) -> dict:
    """Mine or read pairs, fine-tune, and write the adapter into the registry. Returns a summary.
    An adapter of the same name already in the registry is replaced only with `overwrite`. One of
    several launched processes leaves the checks, the run's lock, the pairs and the writing to the main
    process, and trains with the others."""
    from unitune.training import distributed
    from unitune.training.trainer import run_dir_for

    with distributed.joined() as team:
        team.on_main(lambda: _refuse_bad_run(config, project_root, overwrite))
        run_dir = run_dir_for(config.name)
        existed = run_dir.exists()
        try:
            with contextlib.ExitStack() as held:  # the main process's lock on the run, for the whole run

                def settle() -> tuple[TrainConfig, list[dict], Path | None]:
                    held.enter_context(_run_lock(run_dir, config.name))
                    settled = _settle_config(run_dir, config, resume, fresh)
                    return (settled, *_load_pairs(source, settled, run_dir))

                settled, pairs, repo = team.on_main(settle)
                return _fine_tune(settled, pairs, repo, run_dir, project_root, resume, progress, stop_after_step,
                                  overwrite, team)
        except UnituneError:
            if team.is_main and not existed and not (run_dir / "checkpoints").exists():  # nothing to resume
                import shutil

                shutil.rmtree(run_dir, ignore_errors=True)
            raise


def _judge_held_out(source: Path, summary: dict, project_root: Path, judge: int) -> dict | str:
    """`training/payoff.py` on the pairs this run trained from (the mined ones are in the run folder)."""
    import gc

    from unitune.training.payoff import judge_payoff
    from unitune.training.trainer import run_dir_for

    gc.collect()  # the trained model is gone; its memory goes back before the judging loads the model again
    mined = source.is_dir()
    pairs = run_dir_for(summary["name"]) / PAIRS_FILE if mined else source
    payoff = judge_payoff(summary["name"], pairs, source.resolve() if mined else project_root, project_root, judge,
                          model=summary["hyperparameters"].get("model"))
    return payoff if isinstance(payoff, str) else payoff.to_json()


def _refuse_bad_run(config: TrainConfig, project_root: Path, overwrite: bool) -> None:
    from unitune.adapters.registry import AdapterRegistry, validate_name

    validate_name(config.name)
    try:
        config.check()
    except ValueError as error:
        raise TrainInputError(str(error)) from None
    try:
        existing = AdapterRegistry(project_root).store_dir(config.store) / config.name
    except UnituneError as error:
        raise TrainInputError(str(error)) from None
    if existing.exists() and not overwrite:
        raise TrainInputError(f"an adapter named {config.name!r} is already in the registry ({existing}); choose "
                              "another --name, or replace it with --overwrite")


class _run_lock:
    """One `unitune train --name NAME` at a time (an advisory lock on the run folder); staging
    folders a killed run left behind (`.adapter-*`) are removed once the lock is held."""

    def __init__(self, run_dir: Path, name: str):
        self.run_dir, self.name, self.handle = run_dir, name, None

    def __enter__(self):
        import fcntl
        import shutil

        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.run_dir / ".lock", "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise TrainInputError(f"another `unitune train --name {self.name}` is running ({self.run_dir}); wait for "
                                  "it, or choose another --name") from None
        for stale in self.run_dir.glob(".adapter-*"):
            shutil.rmtree(stale, ignore_errors=True)
        return self

    def __exit__(self, *exc):
        self.handle.close()
        return False


def _settle_config(run_dir: Path, config: TrainConfig, resume: bool, fresh: bool) -> TrainConfig:
    from unitune.training import checkpoints

    found = checkpoints.latest(run_dir)
    saved = run_dir / CONFIG_FILE
    if found is not None and not resume and not fresh:
        raise TrainInputError(
            f"an unfinished run named {config.name!r} stopped at {found.name}; continue it with --resume or "
            "discard it with --fresh"
        )
    if fresh and (run_dir / "checkpoints").exists():
        import shutil

        shutil.rmtree(run_dir / "checkpoints")
    if resume and found is not None and saved.is_file():
        return TrainConfig.load(saved)  # the run continues with the settings it started with
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir)
    return config


def _load_pairs(source: Path, config: TrainConfig, run_dir: Path) -> tuple[list[dict], Path | None]:
    from unitune.training.data import read_pairs

    if not source.exists():
        raise TrainInputError(f"{source}: no such repository or pairs file")
    if source.is_dir():
        from unitune.training.mining import mine, write_pairs

        result = mine(source, language=config.language, split=config.split)
        if result.summary.split_note:
            log_event(log, "train.split", split_by=result.summary.split_by, note=result.summary.split_note)
        if not result.pairs:
            raise TrainInputError(f"{source}: no focal-method/test pairs found to train on; run `unitune mine {source}` "
                                  "to see which tests could not be matched")
        write_pairs(result.pairs, run_dir / PAIRS_FILE)
        pairs = read_pairs(run_dir / PAIRS_FILE, config.language)
        return pairs, source.resolve()
    pairs = read_pairs(source, config.language)
    if not pairs:
        raise TrainInputError(f"{source}: holds no pairs{' for ' + config.language if config.language else ''}")
    return pairs, None


def _pairs_format(pairs: list[dict]) -> int:
    """The one prompt format of `pairs`, which the adapter records so that inference builds its
    prompts the same way (an older pairs file trains an adapter of its older format)."""
    from unitune.prompt import PROMPT_FORMAT_VERSION
    from unitune.training.data import prompt_format

    formats = sorted({prompt_format(pair) for pair in pairs}) or [PROMPT_FORMAT_VERSION]
    if len(formats) > 1:
        raise TrainInputError(f"the pairs were built with prompt formats {' and '.join(map(str, formats))}; "
                              "mine them again with `unitune mine` so they share one")
    return formats[0]


def _fine_tune(config, pairs, repo, run_dir, project_root, resume, progress, stop_after_step, overwrite=False,
               team=None) -> dict:
    from unitune.adapters.card import AdapterCard, BaseModelRef
    from unitune.adapters.loading import ModelSpec, load_model, quiet_libraries, resolve_device
    from unitune.adapters.registry import AdapterRegistry
    from unitune.settings import load_settings
    from unitune.training import distributed, run_record, trainer
    from unitune.training.data import tokenize_pairs

    team = team or distributed.ALONE
    trained_format = _pairs_format(pairs)
    quiet_libraries()
    started = time.perf_counter()
    settings = load_settings(project_root).settings
    device = resolve_device(config.device or settings.device)
    quantization = config.quantization or ("4bit" if device == "cuda" and config.method in (LORA, IA3) else "none")
    if config.method == FULL and quantization != "none":
        raise TrainInputError("full fine-tuning needs an unquantized model; use --quantization none")
    from unitune.adapters.builtin_models import terminal_progress

    sharding = team.on_main(lambda: distributed.sharding_for(config.method)) if team.several else None
    base = team.main_first(lambda: load_model(ModelSpec(config.model or settings.model, device, quantization,
                                                        settings.trust_remote_code), progress=terminal_progress()))
    tokenizer = base.tokenizer
    block = _block_size(config, base, device)
    reserved = config.virtual_tokens if config.method == "prompt-tuning" else 0
    train_split = tokenize_pairs([p for p in pairs if p["split"] == "train"], tokenizer, block, reserved,
                                 config.over_length)
    valid_pairs = [p for p in pairs if p["split"] == "valid"]
    valid_split = tokenize_pairs(valid_pairs, tokenizer, block, reserved, config.over_length)
    bf16, checkpointing, optimizer = trainer.compute_plan(config, device, block)
    if sharding == distributed.FSDP and optimizer == "adamw8bit":
        log_event(log, "train.optimizer", optimizer="adamw", reason="8-bit AdamW does not take FSDP's sharded weights")
        optimizer = "adamw"
    parallel = distributed.ParallelRun(team, sharding) if team.several else None
    model = trainer.build_model(config, base, base.model.config.model_type, checkpointing)
    trainable, total = run_record.count_parameters(model)
    log_event(log, "train.start", name=config.name, method=config.method, model=base.model_id, trainable=trainable,
              total=total, train=len(train_split.examples), valid=len(valid_split.examples),
              dropped=train_split.dropped + valid_split.dropped,
              truncated=train_split.truncated + valid_split.truncated, block_size=block, bf16=bf16,
              gradient_checkpointing=checkpointing, optimizer=optimizer, processes=team.size, sharding=sharding)
    reporter = _reporter(progress if team.is_main else "none")
    state = trainer.train_loop(config, model, train_split, valid_split, tokenizer.pad_token_id, run_dir, resume,
                               reporter, stop_after_step, bf16=bf16, optimizer_kind=optimizer, parallel=parallel)
    reporter.close() if hasattr(reporter, "close") else None
    eval_after = state.history[-1].get("eval_loss") if state.history else None
    languages = sorted({p["language"] for p in pairs})
    summary = {
        "name": config.name, "method": config.method, "base_model": base.model_id, "repository": str(repo) if repo else None,
        "commit": run_record.git_commit(repo), "pairs": {"train": train_split.pairs, "valid": valid_split.pairs},
        "examples": {"train": len(train_split.examples), "valid": len(valid_split.examples)},
        "dropped_over_length": train_split.dropped + valid_split.dropped, "block_size": block,
        "truncated": train_split.truncated + valid_split.truncated,
        "steps": state.step, "stopped_by": state.stopped_by, "epochs": config.epochs,
        "hyperparameters": config.to_dict(),
        "precision": "bf16" if bf16 else "fp32", "gradient_checkpointing": checkpointing, "optimizer": optimizer,
        "trainable_parameters": trainable, "total_parameters": total,
        "trainable_percent": round(100 * trainable / max(total, 1), 4),
        "seconds": round(state.seconds, 2), "wall_seconds": round(time.perf_counter() - started, 2),
        "peak_memory_mib": round(run_record.peak_memory_mib(), 1), "device": device, "quantization": quantization,
        "processes": team.size, "global_batch": config.batch_size * team.size * config.grad_accum,
        "sharding": sharding,
    }
    metrics = {"eval_loss_before": state.eval_before, "eval_loss_after": eval_after,
               "final_train_loss": state.history[-1]["loss"] if state.history else None}
    card = AdapterCard(name=config.name, method=config.method, prompt_format_version=trained_format,
                       base_model=BaseModelRef(base.model_id, base.revision, base.fingerprint), languages=languages,
                       training=summary, metrics=metrics)
    weights = None
    if sharding == distributed.FSDP:  # every process gives its slices of the weights
        from unitune.training.sharding import full_weights

        weights = full_weights(model)

    def write_adapter() -> str:
        folder = run_record.temporary_folder(run_dir)
        try:
            run_record.save_artifacts(folder, model, tokenizer, config, state, weights=weights)
            # an adapter of this name written while this run trained is refused too; the checkpoints stay for --resume
            entry = AdapterRegistry(project_root).save(folder, config.name, card, store=config.store,
                                                       overwrite=overwrite)
        finally:
            run_record.remove(folder)
        run_record.remove(run_dir / "checkpoints")  # finished: nothing left to resume
        log_event(log, "train.done", name=config.name, path=entry.path, seconds=state.seconds)
        return str(entry.path)

    return {**summary, "metrics": metrics, "adapter_path": team.on_main(write_adapter)}


def _block_size(config, base, device: str) -> int:
    """The block: `--block-size` when the model's context holds it, else 2048 tokens on a CPU (time per
    step grows with it) and 4096 on a GPU, within the context."""
    from unitune.training import trainer

    if config.block_size:
        if config.block_size > base.context_length:
            raise TrainInputError(f"--block-size {config.block_size} is longer than {base.model_id}'s context of "
                                  f"{base.context_length} tokens; use at most {base.context_length}")
        return config.block_size
    default = trainer.DEFAULT_BLOCK_SIZE if device == "cpu" else trainer.DEFAULT_GPU_BLOCK_SIZE
    return min(base.context_length, default)


class _JsonProgress:
    def __call__(self, event: dict) -> None:
        print(json.dumps(event), flush=True)


class _BarProgress:
    """Steps, epoch, loss and the trainer's own time left (it knows a `--minutes` budget) on stderr."""

    def __init__(self) -> None:
        self._line = ProgressLine(unit="step", timing=False)

    def __call__(self, event: dict) -> None:
        evaluation = f" eval {event['eval_loss']:.4f}" if event.get("eval_loss") is not None else ""
        eta = f" eta {event['eta']:.0f}s" if event.get("eta") is not None else ""
        self._line.update(event["step"], event["total_steps"], "training",
                          f"epoch {event['epoch']:.2f} loss {event['loss']:.4f}{evaluation}{eta}")

    def close(self) -> None:
        self._line.close()


def _reporter(kind: str):
    if kind == "json":
        return _JsonProgress()
    if kind == "bar":
        return _BarProgress()
    return lambda event: None


def _summary_text(summary: dict) -> str:
    from unitune.training.payoff import payoff_lines

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
    from unitune.training.payoff import Delivered, Payoff

    if isinstance(record, str):
        return record
    return Payoff(record["functions"], record["engine"], Delivered(**record["base"]), Delivered(**record["adapter"]))
