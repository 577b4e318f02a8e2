"""`unitune generate` and `unitune doctor`: the command-line faces of the model runtime.

    unitune generate src/bank/account.py --line 16
    unitune generate src/bank/account.py --line 16 --model ./my-model --adapter team-lora --candidates 4 --write
    unitune doctor
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from unitune.errors import UnituneError
from unitune.cli_options import add_position, add_setting_flags, setting_overrides
from unitune.progress_line import ProgressLine
from unitune.settings import COMMAND_LINE, load_settings, refuse_bad_flags


def add_generate_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "generate",
        help="write unit tests for the function at a position",
        description=(
            "Generate unit tests for the function or method at FILE:LINE[:COLUMN] with the base model and the "
            "project's adapter. Prints the tests; with --write, inserts them into the test file (created if "
            "missing, imports added, names made unique, nothing existing replaced) and prints its path."
        ),
    )
    add_position(parser)
    add_setting_flags(parser)
    parser.add_argument("--project", metavar="DIR", type=Path, help="project root (default: found from FILE)")
    parser.add_argument("--write", action="store_true", help="insert the tests into the test file and print its path")
    parser.add_argument("--json", action="store_true", help="print one JSON object describing the outcome")
    parser.set_defaults(handler=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    from unitune.adapters.loading import ModelSpec, quiet_libraries
    from unitune.adapters.registry import AdapterRegistry
    from unitune.adapters.runtime import runtime_for
    from unitune.adapters.delivery import delivery_notes
    from unitune.adapters.request import GenerationRequest
    from unitune.adapters.service import TestGenerator
    from unitune.insertion import write_insertion
    from unitune.project_layout import find_project_root
    from unitune.source import SourceFile, cli_offset

    quiet_libraries()
    file = SourceFile.from_path(args.file)
    offset = cli_offset(file, args.line, args.column)
    root = args.project.resolve() if args.project else find_project_root(Path(args.file).resolve())
    overrides = setting_overrides(args)
    loaded = load_settings(root, {k: v for k, v in overrides.items() if v is not None}, COMMAND_LINE)
    refuse_bad_flags(loaded)
    for problem in loaded.problems:
        print(f"unitune: {problem}", file=sys.stderr)
    settings = loaded.settings
    adapter_name = args.adapter if args.adapter is not None else settings.adapter
    adapter = None
    if adapter_name and adapter_name != "none":
        try:
            adapter = AdapterRegistry(root).find_verified(adapter_name)
        except UnituneError as error:
            if args.adapter is None and "adapter" in loaded.sources:  # say which file asked for it
                raise type(error)(f"{error} (the adapter is named by {loaded.sources['adapter']})") from None
            raise
    runtime = runtime_for(ModelSpec.from_settings(settings))
    if runtime.served_by.notice:
        print(f"unitune: {runtime.served_by.reason}", file=sys.stderr)
    request = GenerationRequest(Path(args.file).resolve(), offset, settings, text=file.text, project_root=root,
                                adapter=adapter)
    progress = _TerminalProgress() if sys.stderr.isatty() and not args.json else _FirstUseNotice()
    streamed = None if args.json else _DeliveredAsTheyCome(progress, args.write)  # JSON: one answer at the end
    request.on_delivered = streamed
    try:
        outcome = TestGenerator(runtime).generate(request, on_progress=progress)
    except UnituneError as error:
        progress.done()
        if args.json:  # a script reading stdout gets an answer too
            print(json.dumps({"ok": False, "error": str(error), "exit_code": error.exit_code}, indent=2))
        raise
    except KeyboardInterrupt:
        progress.done()
        if streamed is not None and streamed.count:
            print(f"unitune: interrupted; the {streamed.count} test(s) delivered before stay", file=sys.stderr)
        raise
    finally:
        getattr(runtime, "close", lambda: None)()
    progress.done()
    for note in outcome.notes:
        print(f"unitune: {note}", file=sys.stderr)
    if streamed is not None:
        return 0
    for note in delivery_notes(outcome.tests):
        print(f"unitune: {note}", file=sys.stderr)
    written = write_insertion(outcome.insertion) if args.write else None
    record = {"ok": True, **outcome.to_json()}
    record["written"] = str(written) if written else None
    print(json.dumps(record, indent=2, ensure_ascii=False))
    return 0


class _DeliveredAsTheyCome:
    """`request.on_delivered` for the terminal: each group of tests printed (or, with --write, added to the
    test file) the moment it is delivered, what each one adds on stderr; an interrupt keeps them."""

    def __init__(self, progress, write: bool):
        self.progress, self.write = progress, write
        self.count = 0
        self.started = time.perf_counter()

    def __call__(self, outcome) -> None:
        from unitune.adapters.delivery import delivery_notes
        from unitune.insertion import write_insertion
        from unitune.source import decode_source, read_source_bytes

        self.progress.done()  # the bar would be torn by what is printed
        first = self.count == 0
        self.count += len(outcome.tests)
        names = ", ".join(test.name for test in outcome.tests)
        print(f"unitune: {'first ' if first else 'more '}test(s) after {time.perf_counter() - self.started:.0f} s: "
              f"{names}", file=sys.stderr, flush=True)
        for note in delivery_notes(outcome.tests):
            print(f"unitune: {note}", file=sys.stderr)
        if self.write:
            path = outcome.insertion.path
            current = decode_source(read_source_bytes(path), str(path)) if path.exists() else None
            written = write_insertion(outcome.replan(current))
            if first:
                print(written, flush=True)
            return
        print(("" if first else "\n") + "\n\n".join(test.source.rstrip("\n") for test in outcome.tests), flush=True)


class _FirstUseNotice:
    """Where stderr is not a terminal: one line when a model is checked or converted on its first use
    (a minute or two of silence would look like a hang), nothing else."""

    def __init__(self):
        self.said: set[str] = set()

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        if "first use" in message and message not in self.said:
            self.said.add(message)
            print(f"unitune: {message}", file=sys.stderr, flush=True)

    def done(self) -> None:
        pass


class _TerminalProgress:
    """The generation's stages as a bar on stderr."""

    def __init__(self) -> None:
        self._line = ProgressLine(percent=True)

    def __call__(self, stage: str, fraction: float, message: str) -> None:
        self._line.update(fraction, 1.0, stage, message)

    def done(self) -> None:
        self._line.close()


# -- doctor ---------------------------------------------------------------------------------------

def add_doctor_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check this machine: Python, torch, CUDA, bitsandbytes, the model, the adapter stores, the sandbox",
        description=(
            "Report what unitune finds here: Python and library versions, CUDA and GPUs, whether bitsandbytes "
            "works, the model setting and whether it is available offline, the inference server of server_url "
            "(if set) and what it serves, the adapter stores with their "
            "adapters, and whether validate = \"run\" works (a tiny test is run in the sandbox, with the "
            "reason when it fails). Exit 1 when something needed to generate is missing."
        ),
    )
    parser.add_argument("--project", metavar="DIR", type=Path, help="project whose settings to check (default: here)")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.set_defaults(handler=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    from unitune import __version__
    from unitune.project_layout import find_project_root

    root = (args.project or find_project_root(Path.cwd())).resolve()
    loaded = load_settings(root)
    checks: list[tuple[str, bool, str]] = []  # (what, ok, detail)
    checks.append(("unitune", True, __version__))
    checks.append(("python", sys.version_info >= (3, 10), f"{platform.python_version()} ({sys.executable})"))
    for problem in loaded.problems:
        checks.append(("settings", False, problem))
    try:
        import torch

        cuda = torch.cuda.is_available()
        gpus = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())) if cuda else "none"
        checks.append(("torch", True, f"{torch.__version__}; CUDA {'available' if cuda else 'not available'}; GPUs: {gpus}"))
    except Exception as error:
        checks.append(("torch", False, f"cannot import torch ({error}); reinstall unitune"))
    checks.append(_check_bitsandbytes())
    checks.append(_check_model(loaded.settings.model))
    if loaded.settings.server_url:
        checks.append(_check_server(loaded.settings.server_url, loaded.settings.model))
    else:
        checks.append(_check_engine(loaded.settings))
    checks.extend(_check_adapters(root, loaded.settings.adapter))
    checks.append(_check_sandbox(root, loaded.settings.validate, loaded.settings.python))
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false")
    checks.append(("network", True, "HF_HUB_OFFLINE is set: models load from local files only" if offline else
                   "models not in the local cache are downloaded from the Hugging Face Hub"))
    if args.json:
        print(json.dumps([{"check": n, "ok": ok, "detail": d} for n, ok, d in checks], indent=2))
    else:
        width = max(len(name) for name, _, _ in checks)
        for name, ok, detail in checks:
            print(f"{'ok ' if ok else 'NO '} {name:<{width}}  {detail}")
    return 0 if all(ok for _, ok, _ in checks) else 1


def _check_engine(settings) -> tuple[str, bool, str]:
    """Which engine would run the model here, and why (`unitune.adapters.engines`)."""
    from unitune.adapters.engines import EngineUnavailable, choose_engine
    from unitune.adapters.llama_server import build_running, find_server_binary
    from unitune.adapters.loading import ModelSpec

    try:
        choice = choose_engine(ModelSpec.from_settings(settings))
    except EngineUnavailable as error:
        return ("engine", False, str(error))
    where = find_server_binary()
    detail = f"{choice.engine}: {choice.reason}"
    if where is not None:
        detail += f" (llama-server: {where})"
    elif build_running():
        detail += " (a build is running now)"
    return ("engine", True, detail)


def _check_bitsandbytes() -> tuple[str, bool, str]:
    """Whether bitsandbytes quantizes here: a small layer is quantized to 8 and 4 bits on this
    machine's device and run, its output compared with the full-precision one. Its import-time
    notices (about optional `kernels` and the like) are not shown."""
    import contextlib
    import io
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            import bitsandbytes as bnb
            import torch
        except Exception as error:  # it fails in many ways on unsupported platforms
            return ("bitsandbytes", True, f"not usable ({type(error).__name__}); quantization = none only")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        torch.manual_seed(0)
        layer = torch.nn.Linear(64, 64)
        inputs = torch.randn(4, 64)
        expected = layer(inputs)
        works, failures = [], []
        for bits, make in (("8-bit", lambda: bnb.nn.Linear8bitLt(64, 64, has_fp16_weights=False)),
                           ("4-bit", lambda: bnb.nn.Linear4bit(64, 64, compute_dtype=torch.float32, quant_type="nf4"))):
            try:
                quantized = make()
                quantized.load_state_dict(layer.state_dict())
                quantized = quantized.to(device)
                with torch.no_grad():
                    output = quantized(inputs.to(device)).float().cpu()
                error = (output - expected).abs().mean().item() / expected.abs().mean().item()
                (works if error < 0.25 else failures).append(bits if error < 0.25 else f"{bits} (off by {error:.0%})")
            except Exception as error:
                failures.append(f"{bits} ({type(error).__name__})")
    if not works:
        return ("bitsandbytes", True, f"{bnb.__version__}: quantizing failed on {device}: {', '.join(failures)}; "
                                      "quantization = none only")
    detail = f"{bnb.__version__}: {' and '.join(works)} work on {device} (a layer was quantized and run)"
    return ("bitsandbytes", True, detail + (f"; failed: {', '.join(failures)}" if failures else ""))


def _check_model(model: str) -> tuple[str, bool, str]:
    from unitune.adapters.loading import resolve_model_folder
    from unitune.errors import UnituneError

    from unitune.adapters.builtin_models import BUILTIN_MODELS, describe_builtin

    if model in BUILTIN_MODELS:  # never convert from doctor: say whether the first use can
        ok, detail = describe_builtin(BUILTIN_MODELS[model])
        return ("model", ok, detail)
    try:
        folder, model_id, revision = resolve_model_folder(model)
    except UnituneError as error:
        return ("model", False, str(error))
    size = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    return ("model", True, f"{model_id} at {folder} ({size / 2**20:.1f} MiB of weights, available offline)")


def _check_server(server_url: str, model: str) -> tuple[str, bool, str]:
    """Whether the inference server of `server_url` answers, and serves `model`."""
    from unitune.adapters.inference_client import ServerClient
    from unitune.adapters.served_models import list_models, local_model_id
    from unitune.errors import UnituneError

    try:
        models = list_models(ServerClient(server_url))
    except UnituneError as error:
        return ("inference server", False, str(error))
    detail = f"{server_url}: {models.kind} serving {models.base_id}, LoRA adapters: {', '.join(models.loras) or 'none'}"
    if not models.serves(local_model_id(model)):
        return ("inference server", False, f"{detail}; but model = {model}: set model to the model it serves")
    return ("inference server", True, detail)


def _check_sandbox(root: Path, validate: str, configured_python: str | None = None) -> tuple[str, bool, str]:
    """Whether `validate = "run"` works here: a tiny passing test, run in the sandbox with the
    interpreter generation would use (the project's), with the reason when it does not pass. pytest's
    plugins stay off (loading them all may take seconds): what is checked is the sandbox itself.
    A failure counts as a missing need only when the project validates by running."""
    import tempfile

    from unitune import sandbox
    from unitune.errors import UnituneError

    python, why = sandbox.which_python(root, configured_python)
    result = None
    with tempfile.TemporaryDirectory(prefix="unitune-doctor-") as folder:
        project = Path(folder)
        (project / "doctor_check.py").write_text("def twice(x):\n    return 2 * x\n", encoding="utf-8")
        (project / "test_doctor_check.py").write_text(
            "from doctor_check import twice\n\n\ndef test_twice():\n    assert twice(2) == 4\n", encoding="utf-8")
        try:
            result = sandbox.run_tests(project, "test_doctor_check.py", focal_file="doctor_check.py",
                                       focal_lines=(1, 2), timeout=30, python=python, plugins=False)
            reason = None if result.ok else result.summary()
        except UnituneError as error:
            reason = str(error)
    if reason is not None:
        return ("sandbox", validate != "run", f'validate = "run" does not work here: {reason} (the tests\' '
                f"interpreter is {python}, {why}); generated tests will be checked for syntax only")
    seen = result.isolation
    detail = (f'validate = "run" works: a test passed in the sandbox in {result.duration:.1f}s, '
              f"run by {python} ({why}) as {seen.get('user', 'this user')}")
    if result.line_coverage is None:
        detail += "; coverage is not measured (install coverage.py for that interpreter)"
    return ("sandbox", True, detail)


def _check_adapters(root: Path, selected: str | None) -> list[tuple[str, bool, str]]:
    from unitune.adapters.registry import AdapterRegistry

    registry = AdapterRegistry(root)
    checks = []
    entries = registry.list()
    for store, path in registry.stores():
        names = [e.name + ("" if e.ok else " (damaged)") for e in entries if e.store == store and not e.shadowed]
        checks.append((f"{store} adapters", True, f"{path}: {', '.join(names) if names else 'none'}"))
    if selected:
        ok = any(e.name == selected and e.ok for e in entries)
        checks.append(("adapter", ok, f"{selected}" + ("" if ok else " is selected but not installed; "
                                                        "run `unitune adapters list`")))
    return checks
