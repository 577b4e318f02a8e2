"""`unitune eval`: how good are the generated tests, with the study's measures and the ones users feel.

    unitune eval --base --dataset humaneval --limit 20
    unitune eval --base --dataset humaneval-java --limit 20
    unitune eval --adapter my-project --dataset pairs.jsonl --repo .
    unitune eval --base --dataset realcode --save-tests realcode-tests
    unitune eval --base --dataset functions.txt --repo .
    unitune eval --compare base my-lora my-ia3 --dataset humaneval --limit 20 --chart compare.png

Results are saved next to the adapter's card (`eval-<dataset>.json` in its folder; for the bare model
under `$UNITUNE_HOME/evals/`), and `--compare` reuses saved results of the same dataset and limit as
long as the base model's files (and the adapter) are unchanged. Under the scores, `--compare` shows how
each adapter was trained, from its card: trainable parameters, training time, peak memory and the
validation loss before and after.

Each problem's result is appended to `<results>.partial.jsonl` as soon as it is judged; an interrupted
run started again with the same command (same model files, adapter, dataset, limit and candidates)
goes on where it stopped. The partial file is removed once the full results are saved.

Real functions: `--dataset realcode` is a built-in set of functions and methods of public packages
(pinned wheels, fetched once with pip into `$UNITUNE_HOME/realcode/`, tests removed); `--dataset
LIST.txt --repo DIR` runs any listing of `path/to/module.py::Qualified.name` lines relative to DIR
(`#` comments). Each function's delivered tests are judged for coverage of the function, a fixed set
of mutants (the same for every tool, see `bench/realcode.py` for Pynguin on the same functions), and
tests and assertions; the report has a line per function.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from unitune.cli_options import add_setting_flags
from unitune.evaluation.function_report import render
from unitune.evaluation.model_eval import BASE, JAVA_DATASET, REALCODE, EvalRequest, evaluate_model
from unitune.errors import UnituneError
from unitune.settings import KEYS

METRICS = [("valid_syntax", "valid syntax"), ("pass_at_1", "pass@1"), ("line_coverage", "line cov"),
           ("branch_coverage", "branch cov"), ("mutation_score", "mutation"), ("codebleu", "CodeBLEU")]


def add_eval_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate generated tests: valid syntax, pass@1, coverage, mutation score, CodeBLEU",
        description=("Generate a test for each focal function of a dataset and judge it: valid syntax, pass@1 "
                     "(passes against the correct code and asserts something), line and branch coverage of the "
                     "focal function, mutation score, and for a pairs file CodeBLEU against the developer's test. "
                     "Tests run in unitune's sandbox."),
        epilog="examples:\n" + "\n".join(l for l in __doc__.splitlines() if l.startswith("    unitune")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--adapter", metavar="NAME", help="evaluate the base model with this adapter")
    who.add_argument("--base", action="store_true", help="evaluate the bare base model")
    who.add_argument("--compare", nargs="+", metavar="NAME", help=f"evaluate several side by side ({BASE!r} = bare model)")
    parser.add_argument("--dataset", required=True, help=(
        "humaneval, humaneval-java (HumanEval-X Java, JUnit 5; needs a JDK and Debian's junit5), a pairs JSONL "
        "from `unitune mine` (its test split), realcode (real functions of pinned public packages; the first run "
        "fetches their wheels with pip), a .toml set of pinned packages like evaluation/datasets/realcode.toml, "
        "or a listing file of `path/to/module.py::Qualified.name` lines relative to --repo"))
    parser.add_argument("--repo", type=Path,
                        help="the mined repository of a pairs file, or the project of a listing (default: the cwd)")
    parser.add_argument("--dataset-cache", type=Path, metavar="DIR",
                        help="where the wheels of realcode (or a .toml set) and their unpacked projects are kept "
                             "(default: $UNITUNE_HOME/realcode)")
    parser.add_argument("--limit", type=int, help="only the first N problems")
    add_setting_flags(parser.add_argument_group("settings (default: the project's and the user's settings files)"),
                      [key for key in KEYS if key not in ("adapter", "test_dir")])
    parser.add_argument("--chart", type=Path, default=Path("unitune-compare.png"), help="PNG chart of --compare")
    parser.add_argument("--save-tests", type=Path, metavar="DIR",
                        help="write the test file delivered for each problem into DIR (one per problem, named after it)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run_eval_command)


def run_eval_command(args: argparse.Namespace) -> int:
    from unitune.evaluation.realcode_eval import is_function_dataset

    if args.dataset not in ("humaneval", JAVA_DATASET, REALCODE) and not Path(args.dataset).is_file():
        raise UnituneError(f"--dataset {args.dataset}: not `humaneval`, `{JAVA_DATASET}` or `{REALCODE}`, and not a "
                           "file (a pairs JSONL, a .toml set or a listing)")
    if args.dataset == JAVA_DATASET:
        from unitune.assured.java_runner import java_available

        reason = java_available()
        if reason:
            print(f"unitune eval: --dataset {JAVA_DATASET} skipped: {reason}", file=sys.stderr)
            return 2
    names = args.compare or ([args.adapter] if args.adapter else [BASE])
    reports = [_evaluate(name, args, reuse=bool(args.compare)) for name in names]
    trainings = [training_row(name, args.repo) for name in names] if args.compare else []
    if args.json:
        if args.compare:
            print(json.dumps([{**r.to_json(), "training": t} for r, t in zip(reports, trainings)], indent=2))
        else:
            print(json.dumps(reports[0].to_json(), indent=2))
    else:
        print(table(reports))
        if any(report.delivered for report in reports):
            print("\ndelivered by the assured pipeline (validate = run), judged apart:\n" + delivered_table(reports))
        if is_function_dataset(args.dataset):
            from dataclasses import asdict

            from unitune.evaluation.function_report import function_table, row_from_result

            for report in reports:
                print(f"\n{report.label}, per function ({'delivered' if report.delivered else 'raw'} tests):\n"
                      + function_table([row_from_result(asdict(result)) for result in report.results]))
        if any(t for t in trainings):
            print("\n" + training_table([r.label for r in reports], trainings))
    if args.save_tests:
        for report in reports:
            written = save_tests(report, args.save_tests / report.label.split(" ")[0] if len(reports) > 1 else args.save_tests)
            print(f"{report.label}: {written} delivered test files in {args.save_tests}", file=sys.stderr)
    if args.compare:
        chart(reports, args.chart)
        if not args.json:
            print(f"\nchart: {args.chart}")
    return 0


def _evaluate(name: str, args, reuse: bool):
    return evaluate_model(name, EvalRequest.from_args(args), reuse)


def training_row(name: str, repo: Path | None) -> dict:
    """How an adapter was trained, from its card ({} for the bare model or a card without it)."""
    if name == BASE:
        return {}
    from unitune.adapters.registry import AdapterRegistry

    card = AdapterRegistry((repo or Path.cwd()).resolve()).find_verified(name).card
    training, metrics = card.training or {}, card.metrics or {}
    return {"method": card.method, "trainable_parameters": training.get("trainable_parameters"),
            "trainable_percent": training.get("trainable_percent"), "train_seconds": training.get("seconds"),
            "peak_memory_mib": training.get("peak_memory_mib"), "steps": training.get("steps"),
            "valid_loss_before": metrics.get("eval_loss_before"), "valid_loss_after": metrics.get("eval_loss_after")}


def training_table(labels: list[str], rows: list[dict]) -> str:
    """The training side of a comparison: one line per adapter ("-" for the bare model)."""
    def number(value, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    header = ["", "method", "trainable", "%", "train time", "peak MiB", "valid loss before", "after"]
    lines = [header]
    for label, row in zip(labels, rows):
        seconds = row.get("train_seconds")
        lines.append([label, row.get("method", "-"), number(row.get("trainable_parameters"), ","),
                      number(row.get("trainable_percent"), ".3f"),
                      "-" if seconds is None else f"{seconds / 60:.1f} min", number(row.get("peak_memory_mib"), ".0f"),
                      number(row.get("valid_loss_before"), ".3f"), number(row.get("valid_loss_after"), ".3f")])
    return render(lines)


def _fmt(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%" if isinstance(value, float) else str(value)


def table(reports) -> str:
    header = ["", "problems"] + [label for _, label in METRICS]
    rows = [[r.label, str(r.problems)] + [_fmt(getattr(r, key)) for key, _ in METRICS] for r in reports]
    return render([header] + rows)


def delivered_table(reports) -> str:
    header = ["", "problems", "served", "pass", "line cov", "branch cov", "mutation", "tests", "tokens/test",
              "s/problem (median)"]
    rows = []
    for report in reports:
        d = report.delivered or {}
        seconds = "-" if d.get("seconds_per_problem") is None else f"{d['seconds_per_problem']:.1f}"
        if d.get("median_seconds") is not None:
            seconds += f" ({d['median_seconds']:.1f})"
        rows.append([report.label, str(d.get("problems", "-")), _fmt(d.get("served")), _fmt(d.get("pass_rate")),
                     _fmt(d.get("line_coverage")), _fmt(d.get("branch_coverage")), _fmt(d.get("mutation_score")),
                     "-" if d.get("tests_per_problem") is None else f"{d['tests_per_problem']:.1f}",
                     "-" if d.get("new_tokens_per_test") is None else f"{d['new_tokens_per_test']:.0f}", seconds])
    return render([header] + rows)


def save_tests(report, folder: Path) -> int:
    """Write each problem's delivered test file as `test_<problem>.py` in `folder`; how many."""
    import re

    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for result in report.results:
        text = (result.delivered or {}).get("file")
        if text:
            name = re.sub(r"\W+", "_", result.id).strip("_")
            (folder / f"test_{name}.py").write_text(text, "utf-8")
            written += 1
    return written


def chart(reports, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    keys = [(k, l) for k, l in METRICS if any(getattr(r, k) is not None for r in reports)]
    figure, axes = plt.subplots(figsize=(max(6, 1.6 * len(keys) * len(reports) / 2), 4), dpi=100)
    width = 0.8 / max(1, len(reports))
    for index, report in enumerate(reports):
        values = [100 * (getattr(report, k) or 0.0) for k, _ in keys]
        axes.bar([i + index * width for i in range(len(keys))], values, width, label=report.label)
    axes.set_xticks([i + width * (len(reports) - 1) / 2 for i in range(len(keys))], [l for _, l in keys])
    axes.set_ylabel("%")
    axes.set_ylim(0, 100)
    axes.legend()
    axes.set_title(f"{reports[0].dataset}: {reports[0].problems} problems")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
