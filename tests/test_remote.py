"""The remote backend (`server_url`) against a CONTRACT of vLLM's documented OpenAI-compatible API
(`tests/vllm_contract.py`: real HTTP, the shapes of https://docs.vllm.ai/en/latest/features/lora/ and
vLLM's `protocol.py`), not against vLLM itself, which needs a GPU. What the contract server "generates"
is a real pytest test for the example project's `Account.deposit`; everything on unitune's side is
real: the prompt, the stop rule, post-processing, the assured pipeline, the sandbox.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest
from conftest import PY_FOCAL
from vllm_contract import LlamaCppContractServer, VllmContractServer

from unitune.cli import main

# What the served "model" writes after the prompt's `def test_deposit():` line: the body, the chat
# answer's closing fence, and talk that the stop string `\n```` keeps out.
DEPOSIT_BODY = ('    account = Account("ada", 10)\n    assert account.deposit(5) == 15\n'
                "    with pytest.raises(ValueError):\n        account.deposit(0)")
MODEL_OUTPUT = DEPOSIT_BODY + "\n```\n\nThis test checks a deposit and a refused one."
TINY_WINDOW = 2048  # the tiny model's max_position_embeddings, which vLLM reports as max_model_len


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("UNITUNE_CONFIG", str(tmp_path / "config.toml"))


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    from unitune.runtime import inference_client

    monkeypatch.setattr(inference_client, "DEFAULT_BACKOFF_SECONDS", 0.01)


@pytest.fixture(scope="module")
def lora_folder(chat_base, tmp_path_factory):
    import tinymodels

    return tinymodels.save_peft_adapter(chat_base, tmp_path_factory.mktemp("peft") / "lora", "lora")


@pytest.fixture(scope="module")
def ia3_folder(chat_base, tmp_path_factory):
    import tinymodels

    return tinymodels.save_peft_adapter(chat_base, tmp_path_factory.mktemp("peft") / "ia3", "ia3")


def register(project, folder, name: str, base_id: str, method: str = "lora"):
    from unitune.adapters.card import AdapterCard, BaseModelRef
    from unitune.adapters.registry import AdapterRegistry
    from unitune.prompt import PROMPT_FORMAT_VERSION

    card = AdapterCard(name=name, method=method, base_model=BaseModelRef(base_id), prompt_format_version=PROMPT_FORMAT_VERSION)
    return AdapterRegistry(project).save(folder, name, card, store="project")


def run(capsys, *argv):
    code = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return code, out, err


def generate(capsys, project, *extra):
    relative, line = PY_FOCAL
    return run(capsys, "generate", project / relative, "--line", line, *extra)


def local_model_input(chat_base, project) -> str:
    """What the in-process path feeds the model for the example's `Account.deposit`."""
    from unitune.runtime.loading import ModelSpec
    from unitune.request import GenerationRequest
    from unitune.runtime.runtime import ModelRuntime
    from unitune.generation.service import TestGenerator
    from unitune.settings import Settings
    from unitune.source import SourceFile, cli_offset

    relative, line = PY_FOCAL
    path = project / relative
    offset = cli_offset(SourceFile.from_path(path), line, None)
    request = GenerationRequest(path, offset, Settings(model=str(chat_base)), project_root=project / "python")
    return TestGenerator(ModelRuntime(ModelSpec(str(chat_base), quantization="none"))).plan(request).text


@pytest.mark.slow
def test_generate_through_vllm_delivers_a_passing_assured_test(capsys, chat_base, example_project):
    with VllmContractServer(str(chat_base), MODEL_OUTPUT, max_model_len=TINY_WINDOW) as server:
        code, out, err = generate(capsys, example_project, "--server-url", server.url, "--model", chat_base, "--write",
                                  "--time-budget", 30)
    assert code == 0, err
    test_file = example_project / "python" / "tests" / "test_account.py"
    assert out.strip() == str(test_file)
    text = test_file.read_text()
    assert "import pytest" in text and "from bank.account import Account" in text and "account.deposit(0)" in text
    # validated in the sandbox, one test per behaviour: what each adds is said on stderr
    assert "test_deposit_5 passed 3 runs in the sandbox; covers 3/4 lines" in err, err
    assert "test_deposit_raises_value_error passed 3 runs in the sandbox" in err, err
    passed = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
                            cwd=example_project / "python", capture_output=True, text=True)
    assert passed.returncode == 0 and "2 passed" in passed.stdout, passed.stdout + passed.stderr


def test_the_request_carries_the_local_prompt_stop_rule_and_limits(capsys, chat_base, example_project):
    from unitune.stopping import stop_strings

    with VllmContractServer(str(chat_base), MODEL_OUTPUT, max_model_len=TINY_WINDOW) as server:
        code, out, err = generate(capsys, example_project, "--server-url", server.url, "--model", chat_base,
                                  "--validate", "syntax", "--json")
    assert code == 0, err
    [body] = server.bodies("/v1/completions")
    assert body["prompt"] == local_model_input(chat_base, example_project)  # the very text the local model reads
    assert body["prompt"].startswith("<|im_start|>system\n") and body["prompt"].endswith("```python\ndef test_deposit():\n")
    assert body["stop"] == stop_strings("python", 0) and "\n```" in body["stop"]
    assert (body["model"], body["max_tokens"], body["n"], body["temperature"]) == (str(chat_base), 256, 1, 0.0)
    assert body["add_special_tokens"] is False
    record = json.loads(out)
    assert record["tests"][0]["source"].startswith("def test_deposit():\n" + DEPOSIT_BODY)  # cut at the fence


def test_publish_loads_the_adapter_and_requests_name_it(capsys, chat_base, lora_folder, example_project):
    project = example_project / "python"
    entry = register(project, lora_folder, "team-lora", chat_base.name)
    with VllmContractServer(str(chat_base), MODEL_OUTPUT, max_model_len=TINY_WINDOW) as server:
        code, out, err = run(capsys, "adapters", "publish", "team-lora", "--server", server.url, "--project", project)
        assert code == 0, err
        assert server.bodies("/v1/load_lora_adapter") == [{"lora_name": "team-lora", "lora_path": str(entry.path)}]
        assert "published adapter 'team-lora'" in out
        code, out, err = generate(capsys, example_project, "--server-url", server.url, "--model", chat_base,
                                  "--adapter", "team-lora", "--validate", "syntax")
        assert code == 0, err
        assert server.bodies("/v1/completions")[0]["model"] == "team-lora"
        code, out, err = run(capsys, "adapters", "publish", "team-lora", "--server", server.url, "--project", project)
        assert code == 0 and "replaced adapter 'team-lora'" in out, err  # a retrained adapter replaces the old
        assert server.bodies("/v1/unload_lora_adapter") == [{"lora_name": "team-lora"}]


def test_publish_refuses_an_adapter_of_another_base(capsys, chat_base, lora_folder, example_project):
    project = example_project / "python"
    register(project, lora_folder, "team-lora", chat_base.name)
    with VllmContractServer("Qwen/Qwen2.5-Coder-7B-Instruct") as server:
        code, out, err = run(capsys, "adapters", "publish", "team-lora", "--server", server.url, "--project", project)
    assert code == 2 and out == ""
    assert f"trained on base {chat_base.name} but the server at {server.url} serves Qwen/Qwen2.5-Coder-7B-Instruct" in err
    assert server.bodies("/v1/load_lora_adapter") == []


def test_publish_refuses_what_vllm_cannot_serve(capsys, chat_base, lora_folder, ia3_folder, example_project):
    project = example_project / "python"
    register(project, ia3_folder, "not-lora", chat_base.name, method="ia3")
    register(project, lora_folder, "team-lora", chat_base.name)
    with VllmContractServer(str(chat_base), runtime_lora_updating=False) as server:
        code, _, err = run(capsys, "adapters", "publish", "not-lora", "--server", server.url, "--project", project)
        assert code == 2 and "is ia3; an inference server serves LoRA adapters only" in err
        code, _, err = run(capsys, "adapters", "publish", "team-lora", "--server", server.url, "--project", project)
        assert code == 2 and "VLLM_ALLOW_RUNTIME_LORA_UPDATING=True" in err


def test_publish_to_llama_cpp_converts_the_adapter_and_says_how_to_restart_the_server(
        capsys, chat_base, lora_folder, example_project, tmp_path):
    import gguf

    project = example_project / "python"
    (project / "unitune.toml").write_text(f"model = {str(chat_base)!r}\n")  # the base whose config names the tensors
    register(project, lora_folder, "team-lora", chat_base.name)
    with LlamaCppContractServer(str(chat_base), lora_files=("/srv/gguf/other.gguf",)) as server:
        code, out, err = run(capsys, "adapters", "publish", "team-lora", "--server", server.url, "--project", project,
                             "--gguf-dir", tmp_path / "gguf")
    assert code == 0, err
    written = tmp_path / "gguf" / "team-lora.gguf"
    assert gguf.GGUFReader(str(written)).fields["general.type"].contents() == "adapter"
    port = server.url.rsplit(":", 1)[1]
    # the restart keeps the adapter the server already had and adds this one, none applied by default
    assert (f"llama-server --model {chat_base} --host 127.0.0.1 --port {port} --ctx-size 4096 --parallel 1 "
            f"--lora /srv/gguf/other.gguf --lora {written} --lora-init-without-apply") in out
    assert server.bodies("/v1/load_lora_adapter") == []
    # once the server was started with the file, publishing again says it is there
    with LlamaCppContractServer(str(chat_base), lora_files=(str(written),)) as server:
        code, out, err = run(capsys, "adapters", "publish", "team-lora", "--server", server.url, "--project", project,
                             "--gguf-dir", tmp_path / "gguf")
    assert code == 0 and "adapter 'team-lora' is on the llama.cpp server" in out and "llama-server " not in out


def test_an_adapter_the_server_lacks_or_a_base_it_does_not_serve_is_refused(capsys, chat_base, lora_folder,
                                                                         example_project):
    register(example_project / "python", lora_folder, "team-lora", chat_base.name)
    with VllmContractServer(str(chat_base), MODEL_OUTPUT) as server:
        code, _, err = generate(capsys, example_project, "--server-url", server.url, "--model", chat_base,
                                "--adapter", "team-lora")
        assert code == 2 and f"publish it: `unitune adapters publish team-lora --server {server.url}`" in err
    with VllmContractServer("Qwen/Qwen2.5-Coder-7B-Instruct", MODEL_OUTPUT) as server:
        code, _, err = generate(capsys, example_project, "--server-url", server.url, "--model", chat_base)
    assert code == 2 and f"serves Qwen/Qwen2.5-Coder-7B-Instruct, but model = {chat_base}" in err
    assert server.bodies("/v1/completions") == []


def test_a_server_that_is_down_is_tried_again_then_named(capsys, chat_base, example_project):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code, out, err = generate(capsys, example_project, "--server-url", f"http://127.0.0.1:{port}", "--model",
                              chat_base, "--json")
    assert code == 2
    message = json.loads(out)["error"]
    assert message.startswith(f"cannot reach the inference server at http://127.0.0.1:{port} (connection refused; "
                              "4 attempts in ")
    assert "check that it is running" in message and "unset server_url" in message
    assert message in err


def test_5xx_is_retried_and_4xx_is_not(capsys, chat_base, example_project):
    with VllmContractServer(str(chat_base), MODEL_OUTPUT, max_model_len=TINY_WINDOW) as server:
        server.completion_statuses = [503, 500]
        code, _, err = generate(capsys, example_project, "--server-url", server.url, "--model", chat_base,
                                "--validate", "syntax")
        assert code == 0, err
        assert len(server.bodies("/v1/completions")) == 3
        server.completion_statuses = [400]
        code, _, err = generate(capsys, example_project, "--server-url", server.url, "--model", chat_base,
                                "--validate", "syntax")
        assert code == 2 and f"the inference server at {server.url} refused POST /v1/completions (HTTP 400: " in err
        assert len(server.bodies("/v1/completions")) == 4  # one more: not retried


def test_cancel_aborts_a_slow_answer_promptly(chat_base, example_project):
    """The editor's cancel (a `threading.Event`) ends the HTTP request at once, and the server sees
    its client leave."""
    from unitune.runtime.loading import ModelSpec
    from unitune.request import GenerationRequest
    from unitune.runtime.runtime import runtime_for
    from unitune.generation.service import TestGenerator
    from unitune.errors import GenerationCancelled
    from unitune.settings import Settings
    from unitune.source import SourceFile, cli_offset

    relative, line = PY_FOCAL
    path = example_project / relative
    with VllmContractServer(str(chat_base), MODEL_OUTPUT, max_model_len=TINY_WINDOW) as server:
        server.completion_delay = 60
        settings = Settings(model=str(chat_base), server_url=server.url, validate="syntax")
        request = GenerationRequest(path, cli_offset(SourceFile.from_path(path), line, None), settings,
                                    project_root=example_project / "python")
        generator = TestGenerator(runtime_for(ModelSpec.from_settings(settings)))
        planned = generator.plan(request, cancel=threading.Event())
        threading.Timer(0.5, planned.cancel.set).start()
        started = time.perf_counter()
        with pytest.raises(GenerationCancelled):
            generator.sample(planned)
        assert time.perf_counter() - started < 2.0
        assert server.disconnected.wait(2.0)


def test_editor_requests_go_to_the_server_one_by_one(chat_base, example_project):
    """The language server's path (`generate_together`): no local batch is made with a server."""
    from unitune.generation.batching import BatchJob, generate_together
    from unitune.runtime.loading import ModelSpec
    from unitune.request import GenerationRequest
    from unitune.generation.service import TestGenerator
    from unitune.server.engine import ModelEngine
    from unitune.settings import Settings
    from unitune.source import SourceFile, cli_offset

    relative, line = PY_FOCAL
    path = example_project / relative
    with VllmContractServer(str(chat_base), MODEL_OUTPUT, max_model_len=TINY_WINDOW) as server:
        settings = Settings(model=str(chat_base), server_url=server.url, validate="syntax")
        runtime = ModelEngine().runtime_for(ModelSpec.from_settings(settings))
        jobs = [BatchJob(GenerationRequest(path, cli_offset(SourceFile.from_path(path), line, None), settings,
                                           project_root=example_project / "python")) for _ in range(2)]
        outcomes = generate_together(TestGenerator(runtime), jobs)
    assert [outcome.tests[0].name for outcome in outcomes] == ["test_deposit", "test_deposit"]
    assert len(server.bodies("/v1/completions")) == 2 and runtime.status()["server_url"] == server.url


def test_llama_cpp_gets_its_lora_field(chat_base, lora_folder, example_project):
    """llama.cpp's server in the shapes its README documents (not run against llama.cpp itself): the
    adapter is chosen by the id of its GGUF file, the bare base with an empty list."""
    from unitune.runtime.loading import ModelSpec
    from unitune.request import GenerationRequest
    from unitune.runtime.runtime import runtime_for
    from unitune.generation.service import TestGenerator
    from unitune.settings import Settings
    from unitune.source import SourceFile, cli_offset

    project = example_project / "python"
    entry = register(project, lora_folder, "team-lora", chat_base.name)
    relative, line = PY_FOCAL
    path = example_project / relative
    files = ("/srv/other.gguf", "/srv/team-lora.gguf")
    with LlamaCppContractServer(f"/srv/{chat_base.name}-q4_k_m.gguf", MODEL_OUTPUT, files) as server:
        settings = Settings(model=str(chat_base), server_url=server.url, validate="syntax", candidates=2)
        generator = TestGenerator(runtime_for(ModelSpec.from_settings(settings)))
        offset = cli_offset(SourceFile.from_path(path), line, None)
        for adapter in (entry, None):
            generator.generate(GenerationRequest(path, offset, settings, project_root=project, adapter=adapter))
    bodies = server.bodies("/v1/completions")
    # one ask per candidate; the bare base is asked for by every adapter at scale 0, not by an empty list,
    # which llama.cpp's server answers from a prompt cache the previous request's adapter computed
    assert [body["lora"] for body in bodies] == [[{"id": 1, "scale": 1.0}]] * 2 + [[{"id": 0, "scale": 0.0}]] * 2
    assert all(body["n"] == 1 and body["temperature"] == 0.8 for body in bodies)


def test_doctor_says_what_the_server_serves(chat_base):
    from unitune.commands.doctor import _check_server

    with VllmContractServer(str(chat_base)) as server:
        assert _check_server(server.url, str(chat_base)) == (
            "inference server", True, f"{server.url}: vllm serving {chat_base}, LoRA adapters: none")
        name, ok, detail = _check_server(server.url, "Qwen/Qwen2.5-Coder-7B-Instruct")
    assert not ok and detail.endswith("but model = Qwen/Qwen2.5-Coder-7B-Instruct: set model to the model it serves")


@pytest.mark.parametrize("value, accepted", [
    ("http://gpu-box:8000", "http://gpu-box:8000"), ("https://llm.example.org/team/", "https://llm.example.org/team"),
    ("gpu-box:8000", None), ("ftp://gpu-box", None), ("http://", None), ("http://host:port", None),
])
def test_server_url_is_checked(value, accepted):
    from unitune.settings import load_settings

    loaded = load_settings(None, {"server_url": value}, "command line")
    assert loaded.settings.server_url == accepted
    assert bool(loaded.problems) == (accepted is None)
    if accepted is None:
        assert "must be an http:// or https:// URL" in loaded.problems[0]
