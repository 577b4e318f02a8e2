"""What a trained adapter changed on the functions its training held out: `unitune train`'s last lines.

A lower validation loss does not say that the tests got better. So after training, the functions of
the test split (pairs the training never saw, held out by focal file) are judged twice as `unitune eval`
judges a pairs file, with the bare base model and with the new adapter: the tests the assured pipeline
delivers, in a copy of the repository without the split's developer tests (`evaluation/held_out.py`).
Both run on the engine the adapter will be served by, so that the two differ by the adapter alone. The
base's results are saved (`unitune eval`'s results, keyed by the model, the settings and the pairs), so
a second adapter trained on the same pairs judges the adapter only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from unitune.logs import log_event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivered:
    """One model's delivered tests on the held-out functions."""

    served: int  # functions that got at least one test
    line_coverage: float  # of the focal functions, an unserved one counted as 0
    seconds: float  # per function, what a user would wait


@dataclass(frozen=True)
class Payoff:
    functions: int
    engine: str
    base: Delivered
    adapter: Delivered

    def to_json(self) -> dict:
        from dataclasses import asdict

        return asdict(self)


def judge_payoff(name: str, pairs_path: Path, repo: Path, project: Path, limit: int,
                 model: str | None = None) -> Payoff | str:
    """Base against adapter `name` (trained on `model`, default: the project's) on up to `limit`
    held-out functions of `pairs_path`; a sentence saying why not when there is nothing to judge."""
    from unitune.runtime.engines import choose_engine, for_adapter
    from unitune.runtime.loading import ModelSpec
    from unitune.adapters.registry import AdapterRegistry
    from unitune.evaluation.model_eval import BASE, EvalRequest, evaluate_model
    from unitune.evaluation.evaluation import load_pairs_problems
    from unitune.errors import UnituneError
    from unitune.settings import load_settings

    try:
        problems, _ = load_pairs_problems(pairs_path, repo, limit)
    except UnituneError as error:
        return f"nothing held out to judge: {error}"
    given = {"model": model} if model else {}
    settings = load_settings(project, given).settings
    adapter = AdapterRegistry(project).find_verified(name)
    engine = for_adapter(choose_engine(ModelSpec.from_settings(settings)), adapter).engine
    request = EvalRequest(str(pairs_path), repo, limit, overrides={**given, "engine": engine, "validate": "run"},
                          project=project)
    reports = {which: evaluate_model(which, request, reuse=True, progress_label=f"judging {which} on held-out code")
               for which in (BASE, name)}
    payoff = Payoff(len(problems), engine, *(_delivered(reports[which]) for which in (BASE, name)))
    log_event(log, "train.payoff", name=name, functions=payoff.functions, engine=engine,
              base_served=payoff.base.served, adapter_served=payoff.adapter.served,
              base_line_coverage=round(payoff.base.line_coverage, 4),
              adapter_line_coverage=round(payoff.adapter.line_coverage, 4))
    return payoff


def _delivered(report) -> Delivered:
    delivered = report.delivered or {}
    problems = delivered.get("problems") or 0
    return Delivered(round((delivered.get("served") or 0.0) * problems), delivered.get("line_coverage") or 0.0,
                     delivered.get("seconds_per_problem") or 0.0)


def payoff_lines(payoff: Payoff | str) -> list[str]:
    """The summary's lines: each model's figures, then what changed, in points."""
    if isinstance(payoff, str):
        return [f"  held-out code   {payoff}"]
    n, base, adapter = payoff.functions, payoff.base, payoff.adapter
    served = 100 * (adapter.served - base.served) / max(n, 1)
    lines = 100 * (adapter.line_coverage - base.line_coverage)
    verdict = ("better tests than the base model" if served > 0 or lines > 0 and served >= 0 else
               "no better than the base model" if served == 0 and lines == 0 else
               "worse tests than the base model: keep using the base, or train longer or on more tests")
    return [
        f"  held-out code   {n} function{'s' if n != 1 else ''} the training never saw, their tests as `unitune "
        f"generate` delivers them ({payoff.engine}):",
        f"                  base model  served {base.served} of {n}, line coverage {100 * base.line_coverage:.0f}%",
        f"                  adapter     served {adapter.served} of {n}, line coverage {100 * adapter.line_coverage:.0f}%",
        f"                  {served:+.0f} points served, {lines:+.0f} points line coverage: {verdict}",
    ]
