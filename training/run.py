"""Running `unitune train`: check the request, lock the run, mine or read the pairs, fine-tune, write the
adapter into the registry, and judge it on the held-out functions; what the command line (and the
editor, through it) asks for.

Launched as several processes (`accelerate launch --num_processes N -m unitune train ...`, one per
GPU; training/distributed.py), the main process alone checks, locks, reads the pairs and writes;
every process trains on its part of each batch.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from unitune.adapters.constants import FULL, IA3, LORA
from unitune.errors import UnituneError
from unitune.logs import get_logger, log_event
from unitune.progress_line import ProgressLine
from unitune.training.config import CONFIG_FILE, TrainConfig

log = get_logger("training.run")
PAIRS_FILE = "pairs.jsonl"


class TrainInputError(UnituneError):
    exit_code = 2


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
    from unitune.runtime.loading import ModelSpec, load_model, quiet_libraries, resolve_device
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
    from unitune.runtime.builtin_models import terminal_progress

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
    """Steps, epoch, loss and the trainer's own time left (it knows a `--minutes` budget) on stderr: a bar
    on a terminal, whole lines when stderr is a file."""

    def __init__(self) -> None:
        # off a terminal: a line every 10 s besides the first and the last, so a log shows the run is alive
        self._line = ProgressLine(unit="step", timing=False, log_every_seconds=10.0)

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
