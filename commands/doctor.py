"""`unitune doctor`: what unitune finds on this machine, and what to do about what is missing.

    unitune doctor [--project DIR] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

from unitune.settings import load_settings

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
    """Which engine would run the model here, and why (`unitune.runtime.engines`)."""
    from unitune.runtime.engines import EngineUnavailable, choose_engine
    from unitune.runtime.llama_server import build_running, find_server_binary
    from unitune.runtime.loading import ModelSpec

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
    from unitune.runtime.loading import resolve_model_folder
    from unitune.errors import UnituneError

    from unitune.runtime.builtin_models import BUILTIN_MODELS, describe_builtin

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
    from unitune.runtime.inference_client import ServerClient
    from unitune.runtime.served_models import list_models, local_model_id
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

    from unitune.assured import sandbox
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
    detail = (f'validate = "run" works: a test passed in the sandbox in {result.duration:.1f}s, '
              f"run by {python} ({why}) as {_tests_user(result.isolation)}")
    if result.line_coverage is None:
        detail += "; coverage is not measured (install coverage.py for that interpreter)"
    return ("sandbox", True, detail)


def _tests_user(seen: dict) -> str:
    """Whom the sandbox's tests run as, as the user would say it: a run of a user other than root is
    root only inside a user namespace of its own (every capability dropped), which is that user outside."""
    import getpass

    if seen.get("uid") == 0 and os.getuid() != 0:
        return f"{getpass.getuser()} (root only inside the run's own user namespace, without capabilities)"
    return seen.get("user", "this user")


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
