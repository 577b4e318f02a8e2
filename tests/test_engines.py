"""Which engine runs the model (`engine`), and why: the choice a user sees in `unitune engine status`,
`doctor` and `-v`; llama.cpp's server found, or built in the background while torch serves."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from unitune.runtime.engines import LLAMA_CPP, TORCH, EngineUnavailable, choose_and_build, choose_engine, for_adapter
from unitune.runtime.loading import ModelSpec
from unitune.settings import DEFAULT_MODEL, Settings, validate


@pytest.fixture
def no_llama_server(home, monkeypatch):
    monkeypatch.delenv("UNITUNE_LLAMA_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(home / "empty-path"))  # no llama-server (nor cmake, nor c++) on PATH


@pytest.fixture
def llama_server_here(home, monkeypatch) -> Path:
    """An executable named llama-server in `$UNITUNE_LLAMA_SERVER` (never started by these tests)."""
    binary = home / "bin" / "llama-server"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\nexit 1\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("UNITUNE_LLAMA_SERVER", str(binary))
    return binary


def lora(tmp_path: Path, **config) -> SimpleNamespace:
    folder = tmp_path / "adapter"
    folder.mkdir(exist_ok=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", **config}))
    return SimpleNamespace(name="team", method="lora", path=folder)


def test_the_built_in_model_runs_on_llama_cpp_once_its_server_is_here(llama_server_here):
    choice = choose_engine(ModelSpec(DEFAULT_MODEL))
    assert choice.engine == LLAMA_CPP and "GGUF" in choice.reason


def test_without_llama_cpp_the_model_runs_on_torch_and_says_how_to_get_it(no_llama_server):
    choice = choose_engine(ModelSpec(DEFAULT_MODEL))
    assert choice.engine == TORCH and "unitune engine install" in choice.reason and choice.needs_build


def test_asking_for_llama_cpp_without_it_says_what_to_run(no_llama_server):
    with pytest.raises(EngineUnavailable, match="unitune engine install"):
        choose_engine(ModelSpec(DEFAULT_MODEL, engine="llama.cpp"))


def test_a_transformers_model_and_a_gpu_stay_on_torch(llama_server_here, tiny_base):
    choice = choose_engine(ModelSpec(str(tiny_base)))
    assert choice.engine == TORCH and "not a GGUF file" in choice.reason
    assert choose_engine(ModelSpec(DEFAULT_MODEL, device="cuda")).engine == TORCH
    assert choose_engine(ModelSpec(DEFAULT_MODEL, engine="torch")).reason == "engine = torch"
    with pytest.raises(EngineUnavailable, match="not a GGUF file"):
        choose_engine(ModelSpec(str(tiny_base), engine="llama.cpp"))


def test_adapters_llama_cpp_cannot_run_go_to_torch_with_the_reason(llama_server_here, tmp_path):
    chosen = choose_engine(ModelSpec(DEFAULT_MODEL))
    assert for_adapter(chosen, None) == chosen
    assert for_adapter(chosen, lora(tmp_path, r=16)) == chosen
    ia3 = for_adapter(chosen, SimpleNamespace(name="team", method="ia3", path=tmp_path))
    assert ia3.engine == TORCH and ia3.reason == "adapter 'team' is ia3; llama.cpp runs LoRA adapters only"
    dora = for_adapter(chosen, lora(tmp_path, use_dora=True))
    assert dora.engine == TORCH and "DoRA" in dora.reason


def test_no_build_is_started_where_it_cannot_run_or_is_not_wanted(no_llama_server, monkeypatch):
    # no cmake and no compiler on PATH: torch, with how to get llama.cpp; nothing started
    choice = choose_and_build(ModelSpec(DEFAULT_MODEL))
    assert choice.engine == TORCH and not choice.notice
    monkeypatch.setenv("PATH", os.environ.get("PATH", "") + os.pathsep + "/usr/bin")
    monkeypatch.setenv("UNITUNE_ENGINE_BUILD", "never")
    assert not choose_and_build(ModelSpec(DEFAULT_MODEL)).notice


def test_the_engine_setting_is_checked_like_every_other():
    problems: list[str] = []
    assert validate({"engine": "vllm"}, "unitune.toml", problems) == {}
    assert problems == ["unitune.toml: engine = 'vllm' is not one of auto, torch, llama.cpp; using 'auto'"]
    assert Settings().engine == "auto"


def test_engine_status_says_which_engine_and_why(llama_server_here, capsys):
    from unitune.cli import main

    assert main(["engine", "status", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["engine"] == "llama.cpp" and record["llama_server"] == str(llama_server_here)


def test_a_retrained_adapter_is_converted_again_and_an_unchanged_one_is_not(tmp_path):
    from unitune.runtime.llama_cpp_runtime import adapter_digest

    folder = lora(tmp_path, r=16).path
    (folder / "adapter_model.safetensors").write_bytes(b"weights of the first training")
    first = adapter_digest(folder)
    assert adapter_digest(folder) == first and len(first) == 16
    (folder / "adapter_model.safetensors").write_bytes(b"weights of the second training")
    assert adapter_digest(folder) != first


def test_doctor_names_the_engine(llama_server_here, capsys):
    from unitune.cli import main

    main(["doctor", "--json"])
    checks = {check["check"]: check for check in json.loads(capsys.readouterr().out)}
    assert checks["engine"]["ok"] and checks["engine"]["detail"].startswith("llama.cpp: ")
    assert str(llama_server_here) in checks["engine"]["detail"]


def test_engine_install_finds_a_server_that_is_there(llama_server_here, capsys):
    from unitune.cli import main

    assert main(["engine", "install"]) == 0
    assert capsys.readouterr().out.strip() == f"llama.cpp's server is here: {llama_server_here}"


def test_engine_install_without_tools_says_what_to_install_and_leaves_torch_to_serve(no_llama_server, capsys):
    from unitune.cli import main

    assert main(["engine", "install"]) == 0  # `pip install -e . && unitune engine install && unitune generate` goes on
    err = capsys.readouterr().err
    assert "cmake and a C++ compiler (g++)" in err and "sudo apt install cmake g++" in err
    assert "torch runs the model meanwhile" in err
