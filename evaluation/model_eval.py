"""One model judged on one dataset, as `unitune eval` and `unitune train`'s last lines judge it: the
results saved beside the adapter (for the bare model under `$UNITUNE_HOME/evals/`) and reused while the
model files, the settings, the engine, unitune's code and the dataset are the same; each judged problem
appended to `<results>.partial.jsonl` at once, so an interrupted run goes on where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from unitune.cli_options import setting_overrides, settings_stamp
from unitune.files import atomic_write
from unitune.progress_line import ProgressLine
from unitune.settings import COMMAND_LINE, Settings, data_home, load_settings, refuse_bad_flags

BASE = "base"
JAVA_DATASET = "humaneval-java"
REALCODE = "realcode"


@dataclass(frozen=True)
class EvalRequest:
    """What `unitune eval` judges, besides which model: the dataset, where its code is, and the settings
    given as flags (`unitune train` judges its held-out split through the same)."""

    dataset: str
    repo: Path | None = None  # the mined repository of a pairs file, the project of a listing
    limit: int | None = None
    dataset_cache: Path | None = None
    overrides: dict = field(default_factory=dict)  # settings given as flags
    project: Path | None = None  # whose settings and adapter store (default: repo, else the cwd)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "EvalRequest":
        return cls(args.dataset, args.repo, args.limit, args.dataset_cache, setting_overrides(args))


def evaluate_model(name: str, request: EvalRequest, reuse: bool, progress_label: str | None = None):
    """The report of the model `name` (`base` or an adapter) on `request`'s dataset: saved results of
    the same model files, settings, engine and code when `reuse`, else judged now (resuming an
    interrupted run) and saved."""
    from unitune.runtime.engines import for_adapter
    from unitune.runtime.loading import ModelSpec, quiet_libraries
    from unitune.adapters.registry import AdapterRegistry
    from unitune.runtime.runtime import runtime_for
    from unitune.evaluation.evaluation import Report, run_evaluation

    quiet_libraries()
    project = (request.project or request.repo or Path.cwd()).resolve()
    loaded = load_settings(project, request.overrides, COMMAND_LINE)
    refuse_bad_flags(loaded)
    settings = loaded.settings
    adapter = None if name == BASE else AdapterRegistry(project).find_verified(name)
    dataset_key = dataset_key_of(request.dataset, request.repo)
    runtime = runtime_for(ModelSpec.from_settings(settings))
    engine = for_adapter(runtime.served_by, adapter).engine  # llama.cpp's numbers are not torch's: other results
    target = _results_path(adapter, settings, dataset_key, request.limit, engine)
    # results under other settings are other results
    stamp = results_stamp(settings, adapter.path if adapter else None, engine)
    if reuse and target.is_file():
        saved = json.loads(target.read_text("utf-8"))
        if saved.pop("model_stamp", None) == stamp:
            getattr(runtime, "close", lambda: None)()
            return _report_from_json(saved)
    label = (name if name != BASE else f"{BASE} ({Path(settings.model).name})") + (f" on {engine}" if engine != "torch" else "")
    partial = PartialResults(target.with_suffix(".partial.jsonl"), stamp)
    done = partial.load()
    if partial.set_aside:
        print(f"unitune eval: {label}: the unfinished results in {partial.path} were made with another model, "
              f"other settings or another version of unitune's code; they are kept in {partial.set_aside} and this "
              "run starts afresh", file=sys.stderr)
    if done:
        print(f"unitune eval: {label}: resuming, {len(done)} problems already judged ({partial.path})",
              file=sys.stderr)
    # a terminal gets a bar; a log file gets a line per problem (each is worth keeping)
    progress = ProgressLine(unit="problem", log_every_update=True)

    def on_problem(index, total, result):
        partial.append(result)
        progress.update(index, total, progress_label or label, f"{result.id} {result.status} {result.seconds:.1f}s")

    if request.dataset == JAVA_DATASET:
        from unitune.evaluation.java_eval import run_java_evaluation

        report: Report = run_java_evaluation(runtime, settings, adapter, request.limit, label, on_problem, done)
    else:
        report = run_evaluation(runtime, settings, adapter, request.dataset, request.limit, request.repo, label,
                                on_problem, done, dataset_cache=request.dataset_cache)
    progress.close()
    getattr(runtime, "close", lambda: None)()
    _save(target, {**report.to_json(), "model_stamp": stamp})
    partial.remove()
    return report


def dataset_key_of(dataset: str, repo: Path | None) -> str:
    """The name results of `dataset` are saved under: a built-in dataset's name, or a file's stem with a
    digest of its content and of the repository it is judged in, so that two projects' `pairs.jsonl`
    never share results."""
    if dataset in ("humaneval", JAVA_DATASET, REALCODE):
        return dataset
    import hashlib

    digest = hashlib.sha256(Path(dataset).read_bytes())
    digest.update(str((repo or Path.cwd()).resolve()).encode())
    return f"{Path(dataset).stem}-{digest.hexdigest()[:10]}"


class PartialResults:
    """The results of a run in progress, one JSON line per judged problem after a header line with
    the model stamp. A file of other model files or settings is not resumed but moved aside (to
    `set_aside`), so nothing judged is lost; a line torn by a kill is ignored."""

    def __init__(self, path: Path, stamp: str):
        self.path, self.stamp = path, stamp
        self._ours = False  # the file on disk has our header, so results are appended to it
        self.set_aside: Path | None = None

    def load(self) -> dict:
        from unitune.evaluation.evaluation import ProblemResult

        try:
            lines = self.path.read_text("utf-8").splitlines()
            self._ours = json.loads(lines[0]).get("model_stamp") == self.stamp
        except (OSError, UnicodeDecodeError, IndexError, ValueError, AttributeError):
            self._ours = False
        if not self._ours:
            if self.path.is_file() and self.path.stat().st_size:
                self.set_aside = self.path.with_name(self.path.name.replace(".partial.jsonl", ".earlier.jsonl"))
                os.replace(self.path, self.set_aside)
            return {}
        done = {}
        for line in lines[1:]:
            try:
                result = ProblemResult(**json.loads(line))
            except (ValueError, TypeError):
                continue
            done[result.id] = result
        return done

    def append(self, result) -> None:
        from dataclasses import asdict

        if not self._ours:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps({"model_stamp": self.stamp}) + "\n", "utf-8")
            self._ours = True
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(result)) + "\n")

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def results_stamp(settings, adapter_path: Path | None = None, engine: str = "torch") -> str:
    """What makes two evaluations' results the same results: the model files (and the adapter's), the
    settings, the engine that ran the model, and unitune's own code."""
    served = f":engine={engine}" if engine != "torch" else ""  # torch's results keep the stamp they had
    return f"{model_stamp(settings.model, adapter_path)}:{settings_stamp(settings)}{served}:code={code_stamp()}"


#: The packages whose code decides a result: a run resumed after any of them changed would mix the
#: results of two versions (training and the language server do not judge anything).
CODE_PACKAGES = ("unitune", "unitune.assured.sandbox", "unitune.adapters", "unitune.evaluation")


def code_stamp(packages: tuple[str, ...] = CODE_PACKAGES) -> str:
    """A digest of the Python files of `packages` as installed (a wheel or the source tree)."""
    import hashlib
    import importlib.util

    digest = hashlib.sha256()
    for package in packages:
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec is not None else []:
            for path in sorted(Path(folder).glob("*.py")):
                digest.update(f"{package}/{path.name}\0".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def model_stamp(model: str, adapter_path: Path | None = None) -> str:
    """What saved results were measured with: for a local model folder (and an adapter folder) the
    names, sizes and modification times of their files, so retraining either invalidates the results;
    for a Hugging Face id, the id."""
    import hashlib

    from unitune.runtime.loading import bundled_model_folder

    digest = hashlib.sha256()
    for folder in (bundled_model_folder(model) or Path(model).expanduser(), adapter_path):
        if folder is None:
            continue
        if not folder.is_dir():
            digest.update(str(folder).encode())
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.name.startswith("eval-"):  # our own results do not count
                info = path.stat()
                digest.update(f"{path.relative_to(folder)}:{info.st_size}:{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def _results_path(adapter, settings, dataset: str, limit: int | None, engine: str = "torch") -> Path:
    """Where the results of a model on `dataset` are saved. Results of another problem count, candidate
    count, engine or other settings are other results, saved apart (so that comparing two settings, say
    with and without the project block, does not judge the default's again): settings other than the
    defaults add a digest of them to the name."""
    import hashlib

    suffix = (f"-{limit}" if limit else "") + (f"-c{settings.candidates}" if settings.candidates != 1 else "") \
        + (f"-{engine}" if engine != "torch" else "")
    ignored = ("model", "adapter", "test_dir", "candidates")
    chosen = settings_stamp(settings, ignored)
    if chosen != settings_stamp(Settings(), ignored):
        suffix += "-s" + hashlib.sha256(chosen.encode()).hexdigest()[:8]
    if adapter is not None:
        return Path(adapter.path) / f"eval-{dataset}{suffix}.json"
    return data_home() / "evals" / f"base-{Path(settings.model).name}-{dataset}{suffix}.json"


def _save(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(record, indent=1) + "\n")


def _report_from_json(record: dict):
    from unitune.evaluation.evaluation import ProblemResult, Report

    results = [ProblemResult(**r) for r in record.pop("results", [])]
    return Report(**record, results=results)
