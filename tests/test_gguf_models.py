"""GGUF files as the `model` setting, on a tiny GGUF written in-process (`tinygguf`): a `.gguf` file or a
folder holding one loads with the same logits and token ids as its source model, is converted once,
a damaged file is refused with a `ModelLoadError` and leaves nothing behind, and the packaged
default-model weights (parts in installed distributions) are refused unless their size and SHA-256
match, and converted when they do.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from unitune.runtime import builtin_models, gguf_conversion
from unitune.runtime.builtin_models import BuiltinModel, PackagedWeights, packaged_parts, resolve_builtin
from unitune.runtime.gguf_conversion import CONVERSION_RECORD, convert_gguf
from unitune.runtime.loading import ModelSpec, load_model, resolve_model_folder
from unitune.errors import ModelLoadError

TEXT = 'def test_deposit():\n    account = Account("ada")\n    assert account.deposit(5) == 5<|endoftext|> é'


@pytest.fixture(scope="module")
def tiny_gguf(tiny_base, tmp_path_factory):
    import tinygguf

    return tinygguf.save_gguf(tiny_base, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("UNITUNE_HOME", str(home))
    return home


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(models) -> list[str]:
    """What a conversion left in the models folder besides its lock files."""
    return sorted(p.name for p in models.iterdir() if not p.name.endswith(".lock")) if models.exists() else []


def test_gguf_file_loads_as_its_source_model(tiny_base, tiny_gguf, home):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = load_model(ModelSpec(model=str(tiny_gguf), device="cpu", quantization="none"))
    digest = sha256(tiny_gguf)
    assert loaded.folder == home / "models" / f"gguf-{digest[:16]}"
    assert (loaded.model_id, loaded.revision) == ("tiny.gguf", digest[:16])

    source = AutoModelForCausalLM.from_pretrained(tiny_base, dtype=torch.float32).eval()
    source_tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    ids = source_tokenizer(TEXT)["input_ids"]
    assert loaded.tokenizer(TEXT)["input_ids"] == ids
    assert loaded.tokenizer.decode(ids) == TEXT
    with torch.no_grad():
        expected = source(torch.tensor([ids])).logits
        actual = loaded.model(torch.tensor([ids])).logits
    # An F32 file must not be rounded on the way (to bf16, say): the logits agree to F32 precision.
    assert torch.allclose(actual, expected, rtol=1e-5, atol=1e-5), (actual - expected).abs().max()


def test_gguf_is_converted_once(tiny_gguf, home, monkeypatch):
    folder, _, _ = resolve_model_folder(str(tiny_gguf))
    record = folder / CONVERSION_RECORD
    assert json.loads(record.read_text())["gguf_sha256"] == sha256(tiny_gguf)
    written = record.stat().st_mtime_ns

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(builtin_models, "convert_gguf", no_second_conversion)
    monkeypatch.setattr(gguf_conversion, "_dequantize", no_second_conversion)
    again, _, _ = resolve_model_folder(str(tiny_gguf))
    assert again == folder
    assert record.stat().st_mtime_ns == written
    assert leftovers(home / "models") == [folder.name]


def test_folder_holding_a_gguf_loads(tiny_base, tiny_gguf, home, tmp_path):
    from transformers import AutoTokenizer

    downloaded = tmp_path / "downloaded"
    downloaded.mkdir()
    shutil.copy(tiny_gguf, downloaded / "tiny.gguf")
    loaded = load_model(ModelSpec(model=str(downloaded), device="cpu", quantization="none"))
    assert loaded.folder == home / "models" / f"gguf-{sha256(tiny_gguf)[:16]}"
    assert loaded.tokenizer(TEXT)["input_ids"] == AutoTokenizer.from_pretrained(tiny_base)(TEXT)["input_ids"]


@pytest.mark.parametrize("damage", ["random bytes", "cut in the metadata", "cut in the tensors"])
def test_damaged_gguf_is_refused_and_leaves_nothing(tiny_gguf, home, tmp_path, damage):
    broken = tmp_path / "broken.gguf"
    data = tiny_gguf.read_bytes()
    # the cuts are interrupted downloads; one inside the metadata once escaped as a `struct.error`
    broken.write_bytes({"random bytes": os.urandom(64 * 1024), "cut in the metadata": data[:2000],
                        "cut in the tensors": data[: len(data) // 3]}[damage])
    with pytest.raises(ModelLoadError, match=r"broken\.gguf is not a readable GGUF file") as raised:
        load_model(ModelSpec(model=str(broken), device="cpu", quantization="none"))
    assert ".tmp-" not in str(raised.value)  # names the user's file, not unitune's temporary copy
    assert leftovers(home / "models") == []


@pytest.fixture
def parts(tmp_path):
    first, second = tmp_path / "part1.bin", tmp_path / "part2.bin"
    first.write_bytes(b"GGUF and some")
    second.write_bytes(b" more bytes")
    return [first, second]


@pytest.mark.parametrize("wrong", ["size", "sha256"])
def test_convert_refuses_parts_that_differ(parts, home, wrong):
    joined = b"".join(part.read_bytes() for part in parts)
    size, digest = len(joined), hashlib.sha256(joined).hexdigest()
    if wrong == "size":
        size += 1
    else:
        digest = hashlib.sha256(joined + b"!").hexdigest()
    target = home / "models" / "packaged"
    with pytest.raises(ModelLoadError, match="refused"):
        convert_gguf(parts, size, digest, target, None, "test/packaged")
    assert not target.exists()
    assert leftovers(home / "models") == []


def test_packaged_parts_names_a_missing_package():
    packaged = PackagedWeights(distributions=("unitune-test-absent-part1",), version="1.0", size=1, sha256="0" * 64,
                               description="a test model")
    with pytest.raises(ModelLoadError, match=r"unitune-test-absent-part1==1\.0 .*is not installed"):
        packaged_parts(packaged)


def fake_distribution(site, name: str, version: str, part: bytes) -> None:
    """An installed distribution holding one weights part, as pip would lay it out."""
    package = name.replace("-", "_")
    (site / package).mkdir(parents=True)
    (site / package / "weights.bin").write_bytes(part)
    info = site / f"{package}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text(f"{package}/weights.bin,,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")


def test_packaged_parts_are_joined_verified_and_converted(tiny_base, tiny_gguf, home, tmp_path, monkeypatch):
    from transformers import AutoTokenizer

    data = tiny_gguf.read_bytes()
    site = tmp_path / "site"
    names = ("unitune-test-tiny-part1", "unitune-test-tiny-part2")
    fake_distribution(site, names[0], "1.0", data[:1000])
    fake_distribution(site, names[1], "1.0", data[1000:])
    monkeypatch.syspath_prepend(str(site))
    packaged = PackagedWeights(distributions=names, version="1.0", size=len(data),
                               sha256=hashlib.sha256(data).hexdigest(), description="the tiny test model")
    assert [part.name for part in packaged_parts(packaged)] == ["weights.bin", "weights.bin"]

    with pytest.raises(ModelLoadError, match=r"unitune-test-tiny-part1 is version 1\.0, not 2\.0"):
        packaged_parts(PackagedWeights(names, "2.0", packaged.size, packaged.sha256, packaged.description))

    model = BuiltinModel(name="tiny-packaged", hub_id="unitune-tests/tiny-packaged", license="MIT", packaged=packaged)
    folder, model_id, _ = resolve_builtin(model)
    assert (folder, model_id) == (home / "models" / "tiny-packaged", "unitune-tests/tiny-packaged")
    assert json.loads((folder / CONVERSION_RECORD).read_text())["gguf_sha256"] == packaged.sha256
    loaded = load_model(ModelSpec(device="cpu", quantization="none"), folder=folder)
    assert loaded.tokenizer(TEXT)["input_ids"] == AutoTokenizer.from_pretrained(tiny_base)(TEXT)["input_ids"]
