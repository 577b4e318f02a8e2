"""Requests of several projects at once: the engine hands waiting requests for one base model to the
model thread together; their first tests are written in one mixed-LoRA batch, each with its own
project's adapter, and each request ends as it would alone (a cancelled one alone is cancelled)."""

from __future__ import annotations

import asyncio
import shutil
import threading
from pathlib import Path

import pytest
from conftest import EXAMPLES, JAVA_FOCAL, PY_FOCAL

from unitune.errors import GenerationCancelled
from unitune.settings import Settings


@pytest.fixture(scope="module")
def projects(trained_base, tmp_path_factory, peft_adapters) -> dict[str, tuple[Path, object]]:
    """Three copies of the examples, each with its own adapter of `trained_base` in its store:
    LoRA for `a` and `b` (made for this base, so they keep its known answers), (IA)³ for `c`."""
    import torch
    from peft import IA3Config, LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from unitune.adapters.card import AdapterCard, BaseModelRef, base_fingerprint
    from unitune.adapters.registry import AdapterRegistry
    from unitune.prompt import PROMPT_FORMAT_VERSION

    root = tmp_path_factory.mktemp("projects")
    made = {}
    for name, method in (("a", "lora"), ("b", "lora"), ("c", "ia3")):
        project = root / name
        shutil.copytree(EXAMPLES, project, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
        torch.manual_seed(ord(name))
        config = (LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM") if method == "lora"
                  else IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"],
                                 task_type="CAUSAL_LM"))
        folder = root / f"{name}-adapter"
        get_peft_model(AutoModelForCausalLM.from_pretrained(trained_base), config).save_pretrained(folder)
        card = AdapterCard(name=f"project-{name}", method=method, prompt_format_version=PROMPT_FORMAT_VERSION,
                           base_model=BaseModelRef(trained_base.name, None, base_fingerprint(trained_base)))
        made[name] = (project, AdapterRegistry(project).save(folder, f"project-{name}", card, store="project"))
    return made


def _request(projects, name: str, focal=PY_FOCAL, trained_base=None):
    from unitune.request import GenerationRequest
    from unitune.source import SourceFile, cli_offset

    project, adapter = projects[name]
    relative, line = focal
    path = project / relative
    settings = Settings(model=str(trained_base), validate="syntax", max_new_tokens=64)
    root = project / relative.split("/")[0]
    return GenerationRequest(path, cli_offset(SourceFile.from_path(path), line, None), settings, project_root=root,
                             adapter=adapter)


@pytest.fixture
def batches(monkeypatch) -> list[int]:
    """The rows of every mixed batch the model ran."""
    from unitune.generation import batching

    rows: list[int] = []
    real = batching.generate_batch

    def spy(model, tokenizer, prompts, *args, **kwargs):
        rows.append(len(prompts))
        return real(model, tokenizer, prompts, *args, **kwargs)

    monkeypatch.setattr(batching, "generate_batch", spy)
    return rows


@pytest.mark.slow
def test_two_projects_requests_are_written_in_one_batch_as_each_would_be_alone(projects, trained_base, batches):
    from unitune.generation.batching import BatchJob, generate_together
    from unitune.runtime.loading import ModelSpec
    from unitune.runtime.runtime import ModelRuntime
    from unitune.generation.service import TestGenerator

    generator = TestGenerator(ModelRuntime(ModelSpec(model=str(trained_base), quantization="none")))
    requests = [_request(projects, "a", PY_FOCAL, trained_base), _request(projects, "b", JAVA_FOCAL, trained_base),
                _request(projects, "c", PY_FOCAL, trained_base)]
    together = generate_together(generator, [BatchJob(request) for request in requests])
    assert batches == [2]  # a and b (LoRA) in one batch; c's (IA)³ adapter cannot join it
    alone = [generator.generate(request) for request in requests]
    for mixed, single, project in zip(together, alone, "abc"):
        assert not isinstance(mixed, BaseException), mixed
        assert [test.source for test in mixed.tests] == [test.source for test in single.tests]
        assert mixed.insertion.path == single.insertion.path and str(mixed.insertion.path).startswith(
            str(projects[project][0]))  # each into its own project
    assert "def test_deposit():" in together[0].tests[0].source and "testDeposit" in together[1].tests[0].source


@pytest.mark.slow
def test_a_request_cancelled_in_a_batch_ends_alone(projects, trained_base, batches):
    from unitune.generation.batching import BatchJob, generate_together
    from unitune.runtime.loading import ModelSpec
    from unitune.runtime.runtime import ModelRuntime
    from unitune.request import GENERATING
    from unitune.generation.service import TestGenerator

    generator = TestGenerator(ModelRuntime(ModelSpec(model=str(trained_base), quantization="none")))
    cancel = threading.Event()

    def cancel_at_the_third_token(stage, fraction, message):
        if stage == GENERATING and message == "3 tokens":
            cancel.set()

    jobs = [BatchJob(_request(projects, "a", PY_FOCAL, trained_base), cancel_at_the_third_token, cancel),
            BatchJob(_request(projects, "b", JAVA_FOCAL, trained_base))]
    cancelled, written = generate_together(generator, jobs)
    assert batches == [2]
    assert isinstance(cancelled, GenerationCancelled)
    assert not isinstance(written, BaseException) and "testDeposit" in written.tests[0].source


def test_the_engine_hands_waiting_work_of_one_key_to_the_model_thread_together():
    from unitune.server.engine import ModelEngine

    engine = ModelEngine()
    release = threading.Event()
    groups: list[list[str]] = []

    def run_group(works):
        groups.append(list(works))
        if works == ["first"]:
            release.wait(10)  # the model is busy while the others arrive
        if "bad" in works:
            return [ValueError("bad work") if work == "bad" else work.upper() for work in works]
        return [work.upper() for work in works]

    async def scenario():
        first = asyncio.ensure_future(engine.run_batched("base-1", "first", run_group))
        await asyncio.sleep(0.2)
        waiting = [asyncio.ensure_future(engine.run_batched(key, work, run_group))
                   for key, work in (("base-1", "a"), ("base-2", "other"), ("base-1", "bad"), ("base-1", "b"),
                                     ("base-1", "gone"))]
        await asyncio.sleep(0.2)
        waiting[-1].cancel()  # its request was cancelled while it waited
        await asyncio.sleep(0.1)
        release.set()
        done = await asyncio.gather(first, *waiting[:-1], return_exceptions=True)
        return done

    try:
        first, a, other, bad, b = asyncio.run(scenario())
    finally:
        engine.shutdown()
    assert groups == [["first"], ["a", "bad", "b"], ["other"]]  # the cancelled one never ran
    assert (first, a, other, b) == ("FIRST", "A", "OTHER", "B") and isinstance(bad, ValueError)
    assert engine.batches == 1
