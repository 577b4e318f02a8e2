"""LoRA adapters for llama.cpp's server (`unitune.runtime.llama_cpp`): the GGUF adapter file, read back
with the `gguf` package's reader, holds every LoRA matrix under the name llama.cpp looks up, in the
shape and order it checks, with PEFT's scaling; what cannot be converted is refused with a reason."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tinygguf
import tinymodels

from unitune.adapters.errors import AdapterError
from unitune.runtime.llama_cpp import CARD_KEY, lora_to_gguf, server_command


def registered(project, base, adapter_folder, name):
    from unitune.adapters.card import AdapterCard, BaseModelRef
    from unitune.adapters.registry import AdapterRegistry
    from unitune.prompt import PROMPT_FORMAT_VERSION

    card = AdapterCard(name=name, method="lora", base_model=BaseModelRef(str(base)),
                       prompt_format_version=PROMPT_FORMAT_VERSION)
    return AdapterRegistry(project).save(adapter_folder, name, card, store="project")


def read_gguf(path):
    import gguf

    reader = gguf.GGUFReader(str(path))
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    # the reader gives ggml's dimension order (innermost first) as `shape` and the numpy array as `data`
    tensors = {tensor.name: np.array(tensor.data) for tensor in reader.tensors}
    return fields, tensors


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A tiny Qwen2-shaped and a tiny Llama model, each with a LoRA on q/v (and k for Llama), converted."""
    from peft import LoraConfig, get_peft_model
    from safetensors.numpy import load_file
    import torch

    root = tmp_path_factory.mktemp("llama-cpp")
    out = {}
    for arch, targets in (("qwen2", ["q_proj", "v_proj"]), ("llama", ["q_proj", "k_proj", "v_proj"])):
        base = tinymodels.save_model(root / f"{arch}-base", arch=arch)
        from transformers import AutoModelForCausalLM

        model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                               LoraConfig(r=4, lora_alpha=8, target_modules=targets, init_lora_weights=False))
        torch.manual_seed(0)
        adapter = root / f"{arch}-lora"
        model.save_pretrained(adapter)
        entry = registered(root / "project", base, adapter, f"{arch}-lora")
        file = lora_to_gguf(entry, root / f"{arch}-lora.gguf")
        out[arch] = (file, load_file(str(adapter / "adapter_model.safetensors")), entry)
    return out


def test_every_lora_matrix_is_named_and_shaped_as_llama_cpp_loads_it(converted):
    file, peft, entry = converted["qwen2"]
    fields, tensors = read_gguf(file)
    assert fields["general.type"] == "adapter" and fields["adapter.type"] == "lora"
    assert fields["general.architecture"] == "qwen2"
    assert fields["adapter.lora.alpha"] == pytest.approx(8.0)  # llama.cpp scales by alpha / rank, as PEFT does
    assert json.loads(fields[CARD_KEY])["name"] == "qwen2-lora"
    assert len(tensors) == len(peft) == 2 * 2 * 2  # 2 layers x q,v x A,B
    a = peft["base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight"]
    b = peft["base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight"]
    # rank x in and out x rank, values unchanged
    np.testing.assert_array_equal(tensors["blk.1.attn_v.weight.lora_a"], a)
    np.testing.assert_array_equal(tensors["blk.1.attn_v.weight.lora_b"], b)


def test_llama_query_and_key_rows_follow_llama_cpp_order(converted):
    file, peft, _ = converted["llama"]
    _, tensors = read_gguf(file)
    heads = 4
    for module, name in (("q_proj", "attn_q"), ("k_proj", "attn_k"), ("v_proj", "attn_v")):
        b = peft[f"base_model.model.model.layers.0.self_attn.{module}.lora_B.weight"]
        expected = tinygguf.llama_cpp_permute(b, heads) if module != "v_proj" else b
        np.testing.assert_array_equal(tensors[f"blk.0.{name}.weight.lora_b"], expected)
        # the A matrix acts on the input side, which llama.cpp does not reorder
        np.testing.assert_array_equal(tensors[f"blk.0.{name}.weight.lora_a"],
                                      peft[f"base_model.model.model.layers.0.self_attn.{module}.lora_A.weight"])
    assert not np.array_equal(tensors["blk.0.attn_q.weight.lora_b"],
                              peft["base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"])


def test_what_llama_cpp_cannot_hold_is_refused_with_the_reason(converted, tmp_path):
    import shutil

    _, _, entry = converted["qwen2"]
    folder = tmp_path / "dora"
    shutil.copytree(entry.path, folder)
    config = json.loads((folder / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    dora = registered(tmp_path / "project", entry.card.base_model.id, folder, "dora")
    with pytest.raises(AdapterError, match="DoRA"):
        lora_to_gguf(dora, tmp_path / "dora.gguf")
    assert not (tmp_path / "dora.gguf").exists()
    ia3 = tinymodels.save_peft_adapter(tinymodels.save_model(tmp_path / "base"), tmp_path / "ia3", "ia3")
    from unitune.adapters.card import AdapterCard, BaseModelRef
    from unitune.adapters.registry import AdapterRegistry
    from unitune.prompt import PROMPT_FORMAT_VERSION

    card = AdapterCard(name="ia3", method="ia3", base_model=BaseModelRef(str(tmp_path / "base")),
                       prompt_format_version=PROMPT_FORMAT_VERSION)
    with pytest.raises(AdapterError, match="LoRA adapters only"):
        lora_to_gguf(AdapterRegistry(tmp_path / "project").save(ia3, "ia3", card, store="project"), tmp_path / "x.gguf")


def test_gpt2_bases_are_refused_naming_what_is_converted(tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = tinymodels.save_model(tmp_path / "gpt2", arch="gpt2")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=2, target_modules=["c_attn"]))
    model.save_pretrained(tmp_path / "lora")
    entry = registered(tmp_path / "project", base, tmp_path / "lora", "gpt2-lora")
    with pytest.raises(AdapterError, match="gpt2 model.*llama, mistral, qwen2, qwen3"):
        lora_to_gguf(entry, tmp_path / "gpt2.gguf")


def test_the_server_starts_with_adapters_loaded_but_not_applied(tmp_path):
    command = server_command("llama-server", tmp_path / "base.gguf", [tmp_path / "a.gguf", tmp_path / "b.gguf"], 8081)
    assert command[:3] == ["llama-server", "--model", str(tmp_path / "base.gguf")]
    assert command.count("--lora") == 2 and command[-1] == "--lora-init-without-apply"
    assert "--lora-init-without-apply" not in server_command("llama-server", tmp_path / "base.gguf", [], 8081)


def test_llama_server_command_writes_what_the_server_needs_and_prints_how_to_start_it(tmp_path, capsys):
    """A `model` that is a GGUF file is served as it is; the adapter is converted next to the others."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from unitune.cli import main

    base = tinymodels.save_model(tmp_path / "base")
    model_file = tinygguf.save_gguf(base, tmp_path / "tiny.gguf")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base), LoraConfig(r=2, target_modules=["q_proj"]))
    model.save_pretrained(tmp_path / "lora")
    project = tmp_path / "project"
    project.mkdir()
    (project / "unitune.toml").write_text(f"model = {str(model_file)!r}\n")
    registered(project, "tiny.gguf", tmp_path / "lora", "team")  # as a card names a GGUF base
    code = main(["adapters", "llama-server", "team", "--port", "9000", "--host", "0.0.0.0", "--gguf-dir",
                 str(tmp_path / "out"), "--project", str(project)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == (f"llama-server --model {model_file} --host 0.0.0.0 --port 9000 --ctx-size 4096 --parallel 1 "
                           f"--lora {tmp_path / 'out' / 'team.gguf'} --lora-init-without-apply")
    fields, tensors = read_gguf(tmp_path / "out" / "team.gguf")
    assert fields["general.architecture"] == "llama" and "blk.1.attn_q.weight.lora_b" in tensors
