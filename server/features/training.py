"""`unitune.trainAdapter(options)`: runs `unitune train ... --progress json` as a subprocess (so a long
or crashing run cannot take the server down), relays its progress, and can be cancelled."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys

from lsprotocol import types

from unitune.server.engine import Job
from unitune.server.features.progress import Progress, cancel_on_request_cancel
from unitune.server.server import UnituneServer, uri_to_path
from unitune.adapters.constants import METHODS, NAME_PATTERN
from unitune.logs import get_logger, log_event, new_request_id

log = get_logger("server.training")
TRAIN_COMMAND = "unitune.trainAdapter"
# Options passed through to `unitune train` as flags, with the type each must have.
_FLAGS = {"epochs": int, "lr": float, "rank": int, "alpha": int, "virtual_tokens": int, "block_size": int,
          "batch_size": int, "grad_accum": int, "model": str, "target_modules": str}


def training_available() -> bool:
    return importlib.util.find_spec("unitune.commands.train") is not None


def train_command(options: dict, folder_path) -> list[str]:
    """The `unitune train` command line for `options` (validated here: a clear error for bad ones)."""
    if not isinstance(options, dict):
        raise ValueError(f"{TRAIN_COMMAND} takes one object {{folder?, method, name, ...}}; got {options!r}")
    method = options.get("method", "lora")
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
    name = options.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"name {name!r} must match {NAME_PATTERN.pattern}")
    command = [sys.executable, "-m", "unitune", "train", str(folder_path), "--method", method, "--name", name,
               "--progress", "json"]
    for key, kind in _FLAGS.items():
        if key in options and options[key] is not None:
            value = options[key]
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"{key} must be a {kind.__name__}; got {value!r}")
            command += [f"--{key.replace('_', '-')}", str(value)]
    return command


async def train_adapter(ls: UnituneServer, *args):
    if not training_available():
        message = ("unitune: training is not available in this installation (the `unitune train` command is "
                   "missing); update unitune to train adapters from the editor")
        ls.notify_user(message)
        return {"ok": False, "error": message}
    try:
        options = args[0] if len(args) == 1 else None
        folder_uri = options.get("folder") if isinstance(options, dict) else None
        folder = ls.folder_for_uri(folder_uri) if folder_uri else next(iter(ls.folders.folders.values()), None)
        if folder is None:
            raise ValueError("no workspace folder is open; open the project to train on")
        command = train_command(options, uri_to_path(folder.uri) or folder.path)
    except ValueError as error:
        ls.notify_user(f"unitune: {error}")
        return {"ok": False, "error": str(error)}
    job = ls.engine.start_job(Job(new_request_id("train"), "train", options["name"]))
    cancel_on_request_cancel(ls, job.cancel)
    progress = Progress(ls, f"unitune: training {options['name']}", job.cancel)
    await progress.begin("starting")
    log_event(log, "train.start", job=job.id, command=" ".join(command))
    process = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE, cwd=str(folder.path))
    last: dict = {}
    try:
        reader = asyncio.ensure_future(_relay(process, progress, last))
        while not reader.done():
            if job.cancel.is_set():
                process.terminate()
                break
            await asyncio.sleep(0.2)
        await reader
        code = await process.wait()
        errors = (await process.stderr.read()).decode("utf-8", "replace").strip().splitlines()
    finally:
        ls.engine.end_job(job)
    if job.cancel.is_set():
        progress.end("cancelled")
        ls.notify_user("unitune: training cancelled; no adapter was written", types.MessageType.Info)
        return {"ok": False, "cancelled": True}
    if code != 0:
        message = errors[-1] if errors else f"exit code {code}"
        progress.end("failed")
        ls.notify_user(f"unitune: training failed: {message}")
        return {"ok": False, "error": message}
    progress.end("done")
    held_out = payoff_message(last.get("held_out"))
    ls.notify_user(f"unitune: adapter {options['name']} trained{'; ' + held_out if held_out else ''}; select it with "
                   "“unitune: Select adapter”", types.MessageType.Info)
    return {"ok": True, "name": options["name"], "last": last}


def payoff_message(held_out) -> str:
    """What the adapter changed on the functions its training held out, as `unitune train` judged them
    (its summary's `held_out`: figures, or a sentence saying why nothing was judged), in a sentence."""
    if isinstance(held_out, str):
        return held_out
    try:
        n, base, adapter = held_out["functions"], held_out["base"], held_out["adapter"]
        served = f"served {base['served']} → {adapter['served']} of {n}"
        lines = f"line coverage {100 * base['line_coverage']:.0f}% → {100 * adapter['line_coverage']:.0f}%"
    except (TypeError, KeyError):
        return ""
    return f"on {n} held-out function{'s' if n != 1 else ''}, base model → adapter: {served}, {lines}"


async def _relay(process, progress: Progress, last: dict) -> None:
    async for raw in process.stdout:
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if isinstance(event, dict):
            last.clear()
            last.update(event)
            if event.get("event") == "judging":  # after the last step: base and adapter on held-out code
                progress.report("judging", 1.0, f"base model and adapter on up to {event.get('functions')} held-out "
                                                "functions")
                continue
            fraction = event.get("fraction") or 0.0
            message = ", ".join(f"{k} {v}" for k, v in event.items() if k in ("step", "epoch", "loss", "eta"))
            progress.report("training", float(fraction), message)


def register(ls: UnituneServer) -> None:
    ls.command(TRAIN_COMMAND)(train_adapter)
