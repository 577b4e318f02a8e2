"""`unitune pretrain`: the command line of training/pretrain.py.

    unitune pretrain                                   # the shipped model: 60 + 18 minutes on 2 CPU cores
    unitune pretrain --out /tmp/mini --minutes 1 --tune-minutes 0.5 --data-limit-mb 2
"""

from __future__ import annotations

import argparse

from unitune.training.pretrain import run_pretrain
from unitune.training.pretrain_config import PretrainConfig, output_folder


def add_pretrain_parser(subparsers) -> None:
    d = PretrainConfig()
    parser = subparsers.add_parser(
        "pretrain",
        help="train the small model the test suite uses (unitune-mini) from scratch on the Python standard library",
        description=(
            "Train a tokenizer and a small Llama-style decoder from scratch on the running interpreter's standard "
            "library (PSF license), then continue on focal-method/test pairs mined from it, and write a model "
            "folder (bf16 safetensors, tokenizer, training.json, loss.png, model card). With --minutes the step "
            "counts are computed from a measured probe so the run ends at the budget."
        ),
    )
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="model folder to write (default: $UNITUNE_HOME/models/unitune-mini; use it with "
                             "--model DIR; `--out unitune/models/unitune-mini` rebuilds the copy shipped in the package)")
    parser.add_argument("--work", default=None, metavar="DIR",
                        help="folder for the corpus, tokens, losses and checkpoints (default: <data dir>/pretrain/<out name>)")
    parser.add_argument("--minutes", type=float, default=d.minutes, help=f"pre-training time budget (default {d.minutes:g})")
    parser.add_argument("--tune-minutes", type=float, default=d.tune_minutes,
                        help=f"test-shaped training time budget; 0 skips it (default {d.tune_minutes:g})")
    parser.add_argument("--steps", type=int, default=None, help="pre-training steps (overrides --minutes; exactly reproducible)")
    parser.add_argument("--tune-steps", type=int, default=None, help="test-shaped steps (overrides --tune-minutes)")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"seed (default {d.seed})")
    parser.add_argument("--vocab", type=int, default=d.vocab, help=f"tokenizer vocabulary size (default {d.vocab})")
    parser.add_argument("--hidden", type=int, default=d.hidden, help=f"hidden size, a multiple of 64 (default {d.hidden})")
    parser.add_argument("--layers", type=int, default=d.layers, help=f"decoder layers (default {d.layers})")
    parser.add_argument("--intermediate", type=int, default=None, help="MLP size, a multiple of 64 (default 3 x hidden)")
    parser.add_argument("--context", type=int, default=d.context, help=f"context length in tokens (default {d.context})")
    parser.add_argument("--batch", type=int, default=d.batch, help=f"pre-training blocks per step (default {d.batch})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"pre-training peak learning rate (default {d.lr:g})")
    parser.add_argument("--tune-lr", type=float, default=d.tune_lr, help=f"test-shaped peak learning rate (default {d.tune_lr:g})")
    parser.add_argument("--data-limit-mb", type=float, default=None, metavar="N",
                        help="use a seeded sample of about N MiB of the stdlib (default: all of it)")
    parser.add_argument("--held-out", default=d.held_out, metavar="PACKAGE",
                        help=f"stdlib package left out of both stages (its code and tests) (default {d.held_out})")
    parser.add_argument("--pairs", default=None, metavar="PAIRS.jsonl",
                        help="pairs from `unitune mine` to use instead of mining the stdlib")
    parser.add_argument("--no-pytest-variants", dest="pytest_variants", action="store_false",
                        help="train on the mined unittest tests only, without their pytest rewrites")
    parser.add_argument("--threads", type=int, default=d.threads, help=f"torch CPU threads (default {d.threads})")
    parser.add_argument("--bf16", choices=("auto", "on", "off"), default=d.bf16,
                        help="bf16 autocast of the forward pass: auto = where the CPU has bf16 units (default auto)")
    parser.add_argument("--resume", action="store_true", help="continue pre-training from the work folder's checkpoint")
    parser.add_argument("--quiet", action="store_true", help="do not echo the loss records to stderr")
    parser.set_defaults(handler=_cmd_pretrain)


def _cmd_pretrain(args: argparse.Namespace) -> int:
    config = PretrainConfig(
        out=args.out, work=args.work, minutes=args.minutes, tune_minutes=args.tune_minutes, steps=args.steps,
        tune_steps=args.tune_steps, seed=args.seed, vocab=args.vocab, hidden=args.hidden, layers=args.layers,
        intermediate=args.intermediate, context=args.context, batch=args.batch, lr=args.lr, tune_lr=args.tune_lr,
        data_limit_mb=args.data_limit_mb, bf16=args.bf16, held_out=args.held_out or None, pairs=args.pairs, threads=args.threads,
        pytest_variants=args.pytest_variants,
    )
    record = run_pretrain(config, resume=args.resume, echo=not args.quiet)
    m = record["model"]
    print(f"wrote {output_folder(config)}: {m['parameters']:,} parameters, {m['weights_bytes'] / 2**20:.1f} MiB; "
          f"{record['corpus']['tokens']:,} tokens; pre-training {record['pretrain']['steps']} steps "
          f"(loss {record['pretrain']['final_loss']}), test-shaped {record['tune'].get('steps', 0)} steps "
          f"(loss {record['tune'].get('final_loss')}); {record['total_seconds'] / 60:.1f} min")
    return 0
