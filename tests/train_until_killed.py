"""`unitune train ARGS...` that kills its own process with SIGKILL, as a crash would, right after
optimizer step N (its checkpoint, if one falls there, written and its progress line printed):

    python tests/train_until_killed.py N PAIRS.jsonl --method lora --name NAME ...
    python -m torch.distributed.run --nproc_per_node 2 tests/train_until_killed.py N ...

Every process of a launched run stops at the same step, so the kill lands at a known point however
fast the run is (killing from outside races with a tiny model's steps of a few milliseconds)."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path

from unitune.cli import build_parser
from unitune.training.config import TrainConfig
from unitune.training.run import train


def main(argv: list[str]) -> None:
    kill_after, arguments = int(argv[0]), argv[1:]
    args = build_parser().parse_args(["train", *arguments])
    config = TrainConfig(**{field.name: getattr(args, field.name) for field in dataclasses.fields(TrainConfig)
                            if getattr(args, field.name, None) is not None})

    def crash_after(step: int) -> bool:
        if step == kill_after:
            sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        return False

    train(args.source, config, project_root=Path.cwd(), resume=args.resume, progress=args.progress or "none",
          stop_after_step=crash_after)


if __name__ == "__main__":
    main(sys.argv[1:])
