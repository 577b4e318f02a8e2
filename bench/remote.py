"""Benchmark of the remote backend against a real llama.cpp server on this machine, with the default model.

    python bench/remote.py [--requests 4] [--tokens 96]

Builds (once, cached) or finds `llama-server` (`tests/llama_server.py`), starts it on the default
model's own GGUF with two LoRA adapters (random weights, unitune's LoRA defaults: what is timed does
not depend on what they learned) converted by unitune, and prints, measured side by side in this run:
- time to the first test for `Account.deposit` (`unitune generate`'s path, validate = syntax): through
  the server vs. in this process on the same model, each from a cold start (the model loaded) and warm;
- `--requests` requests alternating between two projects' adapters, sent together vs. one at a time
  (the server started with that many slots).
The two paths share the two cores, so they are timed one after the other, never at once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def make_adapters(project: Path, names: list[str]) -> None:
    """LoRA adapters on the default model (r=16, alpha=32 on q/v, as `unitune train` makes them) with
    random B matrices, saved into the project's store with cards naming the default model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from unitune.adapters.card import AdapterCard, BaseModelRef
    from unitune.runtime.loading import resolve_model_folder
    from unitune.adapters.registry import AdapterRegistry
    from unitune.prompt import PROMPT_FORMAT_VERSION
    from unitune.settings import Settings

    folder, model_id, _ = resolve_model_folder(Settings().model, None)
    for seed, name in enumerate(names):
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(folder),
                               LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"]))
        torch.manual_seed(seed)
        with torch.no_grad():
            for key, parameter in model.named_parameters():
                if "lora_B" in key:
                    parameter.normal_(0, 0.002)
        out = project.parent / f"{name}-peft"
        model.save_pretrained(out)
        card = AdapterCard(name=name, method="lora", base_model=BaseModelRef(model_id),
                           prompt_format_version=PROMPT_FORMAT_VERSION)
        AdapterRegistry(project).save(out, name, card, store="project")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4, help="concurrent requests (and server slots)")
    parser.add_argument("--tokens", type=int, default=96, help="longest test, in tokens")
    args = parser.parse_args()

    import shutil

    import llama_server
    from conftest import EXAMPLES, PY_FOCAL

    from unitune.runtime.llama_cpp import base_gguf, lora_to_gguf, server_command
    from unitune.runtime.loading import ModelSpec, quiet_libraries
    from unitune.adapters.registry import AdapterRegistry
    from unitune.request import GenerationRequest
    from unitune.runtime.runtime import runtime_for
    from unitune.generation.service import TestGenerator
    from unitune.settings import Settings
    from unitune.source import SourceFile, cli_offset

    quiet_libraries()
    binary = llama_server.build()
    work = Path(tempfile.mkdtemp(prefix="unitune-bench-remote-"))
    shutil.copytree(EXAMPLES, work / "examples")
    project = work / "examples" / "python"
    names = ["project-a", "project-b"]
    make_adapters(project, names)
    registry = AdapterRegistry(project)
    files = [lora_to_gguf(registry.find_verified(name), work / f"{name}.gguf") for name in names]
    relative, line = PY_FOCAL
    path = work / "examples" / relative
    offset = cli_offset(SourceFile.from_path(path), line, None)

    def request(settings: Settings, adapter: str | None) -> GenerationRequest:
        entry = registry.find_verified(adapter) if adapter else None
        return GenerationRequest(path, offset, settings, project_root=project, adapter=entry)

    def first_test(generator: TestGenerator, settings: Settings, adapter: str | None) -> float:
        started = time.perf_counter()
        result = generator.generate(request(settings, adapter))
        assert result.tests, "no test written"
        return time.perf_counter() - started

    common = dict(validate="syntax", max_new_tokens=args.tokens, candidates=1)
    local_settings = Settings(**common)
    print(f"model: {Settings().model} (its GGUF Q4_K_M; in this process dequantized), llama-server from "
          f"llama-cpp-python {llama_server.VERSION}'s llama.cpp, {os.cpu_count()} CPU cores\n")

    # -- in this process ---------------------------------------------------------------------
    started = time.perf_counter()
    local = TestGenerator(runtime_for(ModelSpec.from_settings(local_settings)))
    first_test(local, local_settings, names[0])
    local_cold = time.perf_counter() - started
    local_warm = statistics.median(first_test(local, local_settings, names[i % 2]) for i in range(3))
    del local

    # -- through llama.cpp's server ----------------------------------------------------------
    command = server_command(str(binary), base_gguf(Settings().model), files, 0, parallel=args.requests)
    started = time.perf_counter()
    with llama_server.LlamaServer(command, work / "server.log") as server:
        remote_settings = Settings(server_url=server.url, **common)
        remote = TestGenerator(runtime_for(ModelSpec.from_settings(remote_settings)))
        first_test(remote, remote_settings, names[0])
        remote_cold = time.perf_counter() - started
        remote_warm = statistics.median(first_test(remote, remote_settings, names[i % 2]) for i in range(3))

        print(f"{'time to the first test':<44}{'seconds':>10}{'ratio to in-process':>22}")
        for label, ours, theirs in (("cold (model loaded, then one test)", remote_cold, local_cold),
                                    ("warm (one test)", remote_warm, local_warm)):
            print(f"{'in this process, ' + label:<44}{theirs:>10.2f}{1.0:>22.2f}")
            print(f"{'llama.cpp server, ' + label:<44}{ours:>10.2f}{ours / theirs:>22.2f}")

        # -- concurrency ---------------------------------------------------------------------
        adapters = [names[i % 2] for i in range(args.requests)]
        started = time.perf_counter()
        for adapter in adapters:
            first_test(remote, remote_settings, adapter)
        one_at_a_time = time.perf_counter() - started
        generators = [TestGenerator(runtime_for(ModelSpec.from_settings(remote_settings))) for _ in adapters]
        for generator in generators:
            generator.runtime.load()
        threads = [threading.Thread(target=first_test, args=(generator, remote_settings, adapter))
                   for generator, adapter in zip(generators, adapters)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        together = time.perf_counter() - started
        print(f"\n{args.requests} requests, two projects' adapters alternating{'seconds':>10}{'ratio':>22}")
        print(f"{'one at a time':<44}{one_at_a_time:>10.2f}{1.0:>22.2f}")
        print(f"{'sent together (' + str(args.requests) + ' server slots)':<44}{together:>10.2f}"
              f"{together / one_at_a_time:>22.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
