"""`unitune score PREDICTIONS.jsonl --language java|python [--json]`.

    unitune score predictions.jsonl --language java
    unitune score predictions.jsonl --language python --json

Each line of PREDICTIONS.jsonl is a JSON object with `prompt`, `reference` (the developer's test after
the prompt) and `prediction` (the model's); other keys such as `id` are kept for the report. Prints the
share of predictions whose completed test parses and the file's CodeBLEU with its four components,
computed as Storhaug & Li did (see unitune.evaluation.scoring and docs/scoring.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from unitune.evaluation.scoring import ScoreReport


def add_score_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "score", help="valid syntax and CodeBLEU of generated tests against the developers' tests",
        description=("Score a predictions file (JSON Lines with prompt, reference and prediction): the share of "
                     "predictions whose completed test (the prompt's test part + the prediction) parses without "
                     "errors, and CodeBLEU over the whole file as the study by Storhaug & Li computed it "
                     "(codebleu 0.7.0, sacrebleu 13a tokens). Exit 2 for bad input."),
        epilog="examples:\n" + "\n".join(line for line in __doc__.splitlines() if line.startswith("    unitune")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("predictions", metavar="PREDICTIONS.jsonl", type=Path,
                        help="one JSON object per line with prompt, reference and prediction")
    parser.add_argument("--language", required=True, metavar="LANGUAGE", help="java or python")
    parser.add_argument("--json", action="store_true",
                        help=("print one JSON object: language, rows, valid, valid_syntax, codebleu, ngram_match, "
                              "weighted_ngram_match, syntax_match, dataflow_match, invalid (row, id, problem)"))
    parser.set_defaults(handler=run_score_command)


def run_score_command(args: argparse.Namespace) -> int:
    from unitune.evaluation.scoring import check_language, read_predictions, score_predictions

    language = check_language(args.language)
    rows = read_predictions(args.predictions)
    report = score_predictions(rows, language)
    if args.json:
        print(json.dumps({"file": str(args.predictions), **report.to_json(rows)}, ensure_ascii=False, indent=2))
    else:
        print(format_report(report, str(args.predictions)))
    return 0


def format_report(report: ScoreReport, name: str) -> str:
    rows = [
        ("rows", f"{report.n}"),
        ("valid syntax", f"{report.valid_syntax:.1%}  ({report.valid}/{report.n})"),
        ("CodeBLEU", f"{report.codebleu:.4f}"),
        ("  n-gram match", f"{report.ngram_match:.4f}"),
        ("  weighted n-gram match", f"{report.weighted_ngram_match:.4f}"),
        ("  syntax match", f"{report.syntax_match:.4f}"),
        ("  dataflow match", f"{report.dataflow_match:.4f}"
                             + ("  (a 0 counts as 1 in CodeBLEU, as the codebleu package does)"
                                if report.n and not report.dataflow_match else "")),
    ]
    width = max(len(label) for label, _ in rows)
    lines = [f"{name} ({report.language})"] + [f"{label.ljust(width)}  {value}" for label, value in rows]
    return "\n".join(lines)
