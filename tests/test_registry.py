"""The adapter registry: cards, verification, stores, atomic saves, archives, `unitune adapters`."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tarfile
import time
from pathlib import Path

import pytest

import tinymodels  # noqa: F401  (sets HF_HUB_OFFLINE before transformers is imported)
from tinymodels import save_model, save_peft_adapter
from unitune.adapters import constants as c
from unitune.adapters import staging
from unitune.adapters.card import AdapterCard, BaseModelRef, base_fingerprint, check_compatible, read_card
from unitune.adapters.errors import AdapterError, AdapterMismatchError, AdapterNotFoundError, CorruptAdapterError
from unitune.adapters.registry import AdapterRegistry, validate_name, verify_adapter
from unitune.cli import main
from unitune.prompt import PROMPT_FORMAT_VERSION

PEFT_METHODS = (c.LORA, c.IA3, c.PROMPT_TUNING)


# -- fixtures ------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def base_folder(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("base") / "tiny-base")


@pytest.fixture(scope="session")
def sources(base_folder, tmp_path_factory) -> dict[str, Path]:
    """A folder as plain PEFT (or, for a full fine-tune, transformers) writes it, per method."""
    root = tmp_path_factory.mktemp("saved")
    folders = {method: save_peft_adapter(base_folder, root / method, method) for method in PEFT_METHODS}
    folders[c.FULL] = base_folder
    return folders


@pytest.fixture(scope="session")
def base_hash(base_folder) -> str:
    return base_fingerprint(base_folder)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("UNITUNE_CONFIG", str(tmp_path / "user-config.toml"))


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    (root / ".git").mkdir()
    return root


@pytest.fixture
def registry(project) -> AdapterRegistry:
    return AdapterRegistry(project)


@pytest.fixture
def make_card(base_hash):
    def make(name: str = "x", method: str = c.LORA, **changes) -> AdapterCard:
        fields = {
            "base_model": BaseModelRef(id="tiny-base", weights_hash=base_hash),
            "prompt_format_version": PROMPT_FORMAT_VERSION, "languages": ["python"],
            "training": {"repository": "example/bank", "pairs": 12, "epochs": 3}, "metrics": {"pass_rate": 0.5},
        }
        return AdapterCard(name=name, method=method, **{**fields, **changes})
    return make


@pytest.fixture
def install(registry, sources, make_card):
    def install(name: str, method: str = c.LORA, store: str = c.STORE_USER, **card_changes):
        return registry.save(sources[method], name, make_card(name, method, **card_changes), store=store)
    return install


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- saving and listing --------------------------------------------------------------------------

@pytest.mark.parametrize("method", [*PEFT_METHODS, c.FULL])
def test_every_method_saved_by_plain_peft_verifies_and_lists(registry, sources, make_card, method):
    entry = registry.save(sources[method], f"my-{method}", make_card("ignored", method))
    assert entry.ok and entry.store == c.STORE_USER and entry.method == method
    assert entry.path == registry.store_dir(c.STORE_USER) / f"my-{method}"
    saved = files_of(entry.path)
    assert {k: v for k, v in saved.items() if k != c.CARD_FILE} == files_of(sources[method])
    card = verify_adapter(entry.path)
    assert card.name == f"my-{method}"  # the card follows the registry name
    assert set(card.library_versions) == set(c.RECORDED_LIBRARIES)
    [listed] = registry.list()
    assert (listed.name, listed.method, listed.ok, listed.card.languages) == (f"my-{method}", method, True, ["python"])


@pytest.mark.parametrize("name", ["a", "0", "lora", "bank-lora.v2", "my_adapter-1", "a" * 64])
def test_valid_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "Lora", "-x", ".x", "_x", "a" * 65, "a b", "a/b", "../x", "é", "x\n"])
def test_invalid_names_say_the_rule(name):
    with pytest.raises(AdapterError, match="lowercase letters, digits"):
        validate_name(name)


def test_project_store_shadows_user_store(registry, install):
    install("shared", store=c.STORE_USER, languages=["java"])
    install("shared", store=c.STORE_PROJECT, languages=["python"])
    found = registry.find("shared")
    assert found.store == c.STORE_PROJECT and found.card.languages == ["python"]
    listed = registry.list()
    assert [(e.store, e.shadowed) for e in listed] == [(c.STORE_PROJECT, False), (c.STORE_USER, True)]
    assert registry.remove("shared").store == c.STORE_PROJECT
    assert registry.find("shared").store == c.STORE_USER
    assert AdapterRegistry(None).find("shared").store == c.STORE_USER  # no project: user store only


def test_find_takes_a_folder_and_names_what_is_missing(registry, install, tmp_path):
    entry = install("lora")
    assert registry.find(str(entry.path)).store == c.STORE_FOLDER
    with pytest.raises(AdapterNotFoundError, match="no adapter named 'nope'.*unitune adapters list"):
        registry.find("nope")
    with pytest.raises(AdapterNotFoundError, match="no adapter folder"):
        registry.find(str(tmp_path / "missing"))
    with pytest.raises(AdapterError, match="not a valid adapter name"):
        registry.find("Bad Name")


# -- damaged adapters ----------------------------------------------------------------------------

def _drop_adapter_config(folder: Path) -> None:
    (folder / c.ADAPTER_CONFIG_FILE).unlink()


def _truncate_weights(folder: Path) -> None:
    weights = folder / c.ADAPTER_WEIGHTS_FILE
    with weights.open("r+b") as handle:
        handle.truncate(weights.stat().st_size - 100)


def _pickle_beside(folder: Path) -> None:
    (folder / "adapter_model.bin").write_bytes(b"\x80\x04pickled")


def _pickle_instead(folder: Path) -> None:
    (folder / c.ADAPTER_WEIGHTS_FILE).rename(folder / "adapter_model.bin")


def _damaged_card(folder: Path) -> None:
    (folder / c.CARD_FILE).write_text("{not json")


@pytest.mark.parametrize("damage, message", [
    (_drop_adapter_config, "missing adapter_config.json"),
    (_truncate_weights, "adapter_model.safetensors is truncated or damaged .*not fully covered"),
    (_pickle_beside, "adapter_model.bin: pickle weights are never loaded; re-save with safetensors"),
    (_pickle_instead, "adapter_model.bin: pickle weights are never loaded; re-save with safetensors"),
    (_damaged_card, "unitune-adapter.json is not valid JSON"),
])
def test_damaged_adapter_is_refused_and_the_registry_stays_usable(registry, install, capsys, damage, message):
    install("good")
    bad = install("bad", method=c.IA3)
    damage(bad.path)
    with pytest.raises(CorruptAdapterError, match=message):
        verify_adapter(bad.path)
    with pytest.raises(CorruptAdapterError, match=message):
        registry.find_verified("bad")
    listed = {entry.name: entry for entry in registry.list()}
    assert listed["good"].ok and not listed["bad"].ok
    assert any(re.search(message, problem) for problem in listed["bad"].problems)
    assert registry.find_verified("good").card.name == "good"
    code, out, _ = run(capsys, "adapters", "list", "--project", str(registry.project_root))
    assert code == 0 and "good" in out and "! bad:" in out
    registry.remove("bad")  # a damaged adapter can still be removed
    assert [entry.name for entry in registry.list()] == ["good"]


def test_truncated_full_fine_tune_names_the_file(registry, install):
    entry = install("full", method=c.FULL)
    weights = entry.path / "model.safetensors"
    with weights.open("r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(CorruptAdapterError, match="model.safetensors"):
        verify_adapter(entry.path)


def test_saving_a_folder_with_pickle_weights_is_refused(registry, sources, make_card, tmp_path):
    source = shutil.copytree(sources[c.LORA], tmp_path / "with-pickle")
    (source / "training_args.bin").write_bytes(b"\x80\x04")
    with pytest.raises(CorruptAdapterError, match="training_args.bin: pickle weights are never loaded"):
        registry.save(source, "pickled", make_card())
    assert registry.list() == []


# -- atomic writes -------------------------------------------------------------------------------

def _fail(*args, **kwargs):
    raise RuntimeError("disk unplugged")


def test_a_failed_save_leaves_nothing_behind(registry, sources, make_card, monkeypatch):
    monkeypatch.setattr(staging, "fsync_tree", _fail)  # after copying and writing the card
    with pytest.raises(RuntimeError, match="disk unplugged"):
        registry.save(sources[c.LORA], "half", make_card())
    store = registry.store_dir(c.STORE_USER)
    assert not (store / "half").exists()
    assert list(store.iterdir()) == []
    assert registry.list() == []


def test_a_failed_overwrite_keeps_the_old_adapter(registry, install, sources, make_card, monkeypatch):
    old = install("kept", languages=["java"])
    before = files_of(old.path)
    monkeypatch.setattr(staging, "fsync_tree", _fail)
    with pytest.raises(RuntimeError):
        registry.save(sources[c.IA3], "kept", make_card("kept", c.IA3), overwrite=True)
    assert files_of(old.path) == before
    assert [entry.name for entry in registry.list()] == ["kept"]


def test_overwrite_replaces_and_refuses_without_it(registry, install, sources, make_card):
    install("same")
    with pytest.raises(AdapterError, match="already exists in the user store"):
        registry.save(sources[c.IA3], "same", make_card("same", c.IA3))
    registry.save(sources[c.IA3], "same", make_card("same", c.IA3), overwrite=True)
    [entry] = registry.list()
    assert entry.method == c.IA3 and entry.ok
    assert [p.name for p in entry.path.parent.iterdir()] == ["same"]


def test_leftover_temporary_folders_are_ignored_then_cleaned(registry, install):
    entry = install("real")
    store = entry.path.parent
    fresh = shutil.copytree(entry.path, store / f"{c.TEMP_PREFIX}crashed-0000a001")
    stale = shutil.copytree(entry.path, store / f"{c.TEMP_PREFIX}crashed-0000a002")
    old = time.time() - c.STALE_TEMP_SECONDS - 60
    os.utime(stale, (old, old))
    assert [e.name for e in registry.list()] == ["real"]
    assert fresh.exists() and not stale.exists()  # a recent one may be a save still running


def test_cleaning_a_store_that_links_to_a_users_folder_deletes_only_what_a_save_left(registry, install, tmp_path):
    """A project store that is a link to a folder of the user's: their own `.tmp-*` folders are theirs."""
    entry = install("real")
    home = tmp_path / "home"
    work = home / ".tmp-important-work"
    work.mkdir(parents=True)
    (work / "data.txt").write_text("mine")
    leftover = shutil.copytree(entry.path, home / f"{c.TEMP_PREFIX}real-0badcafe")
    old = time.time() - c.STALE_TEMP_SECONDS - 60
    for path in (work, leftover):
        os.utime(path, (old, old))
    store = registry.store_dir(c.STORE_PROJECT)
    shutil.rmtree(store, ignore_errors=True)
    store.parent.mkdir(parents=True, exist_ok=True)
    store.symlink_to(home, target_is_directory=True)
    registry.list()
    assert (work / "data.txt").read_text() == "mine"
    assert not leftover.exists()


def test_a_leftover_too_deep_to_delete_does_not_hide_the_adapters(registry, install):
    entry = install("real")
    deep = entry.path.parent / f"{c.TEMP_PREFIX}deep-0000dead"
    deep.mkdir()
    here = os.getcwd()
    try:
        os.chdir(deep)
        for _ in range(1200):  # deeper than Python's recursion limit, relative steps under PATH_MAX
            os.mkdir("d")
            os.chdir("d")
    finally:
        os.chdir(here)
    old = time.time() - c.STALE_TEMP_SECONDS - 60
    os.utime(deep, (old, old))
    try:
        assert [e.name for e in registry.list()] == ["real"]
        assert not deep.exists()  # deleted one level at a time
    finally:  # bottom up, one level at a time: pytest's own clean-up of tmp_path recurses too
        if deep.exists():
            os.chdir(deep)
            levels = 0
            while os.path.isdir("d"):
                os.chdir("d")
                levels += 1
            for _ in range(levels):
                os.chdir("..")
                os.rmdir("d")
            os.chdir(here)
            deep.rmdir()


# -- settings ------------------------------------------------------------------------------------

def test_use_records_the_adapter_in_pyproject_keeping_the_rest(registry, install, project):
    install("mine")
    pyproject = project / "pyproject.toml"
    pyproject.write_text('[project]\nname = "bank"\n\n[tool.unitune]\nmodel = "tiny"\n\n[tool.other]\nx = 1\n')
    assert registry.use("mine", project) == pyproject
    text = pyproject.read_text()
    assert 'adapter = "mine"' in text and 'model = "tiny"' in text and '[tool.other]\nx = 1' in text
    import tomllib
    assert tomllib.loads(text)["tool"]["unitune"] == {"model": "tiny", "adapter": "mine"}


def test_use_writes_unitune_toml_and_refuses_missing_or_damaged(registry, install, project):
    (project / "unitune.toml").write_text('# team settings\ncandidates = 3\n')
    install("mine")
    registry.use("mine", project)
    assert (project / "unitune.toml").read_text() == '# team settings\ncandidates = 3\nadapter = "mine"\n'
    with pytest.raises(AdapterNotFoundError):
        registry.use("nope", project)
    broken = install("broken")
    _drop_adapter_config(broken.path)
    with pytest.raises(CorruptAdapterError):
        registry.use("broken", project)
    assert 'adapter = "mine"' in (project / "unitune.toml").read_text()


# -- cards and compatibility ---------------------------------------------------------------------

def test_card_round_trips_and_keeps_unknown_keys(make_card):
    card = make_card("x")
    record = json.loads(card.to_json())
    record["from_the_future"] = {"a": 1}
    again = AdapterCard.from_json(json.dumps(record))
    assert again.to_dict() == record
    assert again.base_model == card.base_model


@pytest.mark.parametrize("text, message", [
    ("{oops", "not valid JSON"),
    ("[]", "must hold a JSON object"),
    ('{"name": "x", "method": "lora", "base_model": {"id": "b"}}', "missing 'prompt_format_version'"),
    ('{"name": "x", "method": "lora", "base_model": {}, "prompt_format_version": 1}', "needs a non-empty 'id'"),
    ('{"name": "x", "method": "lora", "base_model": "b", "prompt_format_version": "1"}', "must be a whole number"),
])
def test_bad_cards_say_what_is_wrong(text, message):
    with pytest.raises(AdapterError, match=message):
        AdapterCard.from_json(text)


def test_check_compatible_refuses_another_base_naming_both(make_card):
    card = make_card("mine", base_model=BaseModelRef("org/base-a", weights_hash="a" * 64))
    check_compatible(card, "renamed/folder", "a" * 64, PROMPT_FORMAT_VERSION)  # same weights, other id
    with pytest.raises(AdapterMismatchError) as caught:
        check_compatible(card, "org/base-b", "b" * 64, PROMPT_FORMAT_VERSION)
    message = str(caught.value)
    assert "adapter 'mine' was trained on base org/base-a (hash aaaaaaaaaaaa" in message
    assert "but the model is org/base-b (hash bbbbbbbbbbbb" in message


def test_check_compatible_compares_ids_when_a_hash_is_missing(make_card):
    card = make_card("mine", base_model=BaseModelRef("org/base-a"))
    check_compatible(card, "org/base-a", "c" * 64, PROMPT_FORMAT_VERSION)
    with pytest.raises(AdapterMismatchError, match="org/base-a.*org/base-b"):
        check_compatible(card, "org/base-b", None, PROMPT_FORMAT_VERSION)


def test_check_compatible_refuses_another_prompt_format(make_card):
    card = make_card("mine", prompt_format_version=1)
    with pytest.raises(AdapterMismatchError, match="prompt format 1 .*prompt format 2"):
        check_compatible(card, "tiny-base", card.base_model.weights_hash, 2)


def test_base_fingerprint_tells_random_models_apart(base_folder, base_hash, tmp_path):
    assert base_fingerprint(shutil.copytree(base_folder, tmp_path / "copy")) == base_hash
    other = save_model(tmp_path / "other", seed=1)
    assert (other / "config.json").read_bytes() == (base_folder / "config.json").read_bytes()
    assert base_fingerprint(other) != base_hash
    with pytest.raises(AdapterError, match="no config.json"):
        base_fingerprint(tmp_path)


def test_base_fingerprint_reads_only_the_ends_of_big_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    weights = tmp_path / "model.safetensors"
    data = bytearray(os.urandom(3 * c.FINGERPRINT_CHUNK_BYTES))
    weights.write_bytes(data)
    first = base_fingerprint(tmp_path)
    data[len(data) // 2] ^= 1  # the middle megabyte is not read
    weights.write_bytes(data)
    assert base_fingerprint(tmp_path) == first
    data[-1] ^= 1
    weights.write_bytes(data)
    assert base_fingerprint(tmp_path) != first


# -- archives ------------------------------------------------------------------------------------

def test_export_then_import_round_trips(registry, install, tmp_path):
    entry = install("lora")
    original = files_of(entry.path)
    archive = registry.export("lora", tmp_path / "lora.tar.gz")
    with tarfile.open(archive) as opened:
        assert {m.name.split("/")[0] for m in opened.getmembers()} == {"lora"}
    registry.remove("lora")
    imported = registry.import_archive(archive)
    assert imported.ok and files_of(imported.path) == original
    with pytest.raises(AdapterError, match="already exists"):
        registry.import_archive(archive)
    renamed = registry.import_archive(archive, store=c.STORE_PROJECT, name="lora-copy")
    assert renamed.store == c.STORE_PROJECT and read_card(renamed.path).name == "lora-copy"
    assert registry.export("lora", tmp_path).name == f"lora{c.ARCHIVE_SUFFIX}"


def _tar_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _malicious(path: Path, adapter: Path, evil: str, bad_first: bool = False) -> Path:
    """A gzip tar holding a complete adapter folder `x/` plus one hostile entry."""
    with tarfile.open(path, "w:gz") as tar:
        def add_bad():
            if evil == "symlink":
                info = tarfile.TarInfo("x/link")
                info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
                tar.addfile(info)
            elif evil == "hardlink":
                info = tarfile.TarInfo("x/hard")
                info.type, info.linkname = tarfile.LNKTYPE, "x/adapter_config.json"
                tar.addfile(info)
            elif evil == "device":
                info = tarfile.TarInfo("x/dev")
                info.type = tarfile.CHRTYPE
                tar.addfile(info)
            else:
                _tar_bytes(tar, evil, b"pwned")
        if bad_first:
            add_bad()
        for file in sorted(adapter.iterdir()):
            _tar_bytes(tar, f"x/{file.name}", file.read_bytes())
        if not bad_first:
            add_bad()
    return path


@pytest.mark.parametrize("evil, message", [
    ("ABSOLUTE", "absolute path"),
    ("x/../../evil", "outside its folder"),
    ("../evil", "outside its folder"),
    ("symlink", "holds a link"),
    ("hardlink", "holds a link"),
    ("device", "special file"),
    ("x/pytorch_model.bin", "pickle weights are never loaded"),
    ("y/other.txt", "more than one top-level folder"),
])
@pytest.mark.parametrize("bad_first", [False, True])
def test_malicious_archives_are_refused(registry, install, tmp_path, capsys, evil, message, bad_first):
    adapter = shutil.copytree(install("x").path, tmp_path / "x-files")  # a complete adapter with a card
    registry.remove("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    if evil == "ABSOLUTE":
        evil = str(outside / "evil")
    archive = _malicious(tmp_path / "bad.tar.gz", adapter, evil, bad_first)
    with pytest.raises(AdapterError, match=message):
        registry.import_archive(archive)
    assert list(outside.iterdir()) == []
    assert not (tmp_path / "evil").exists() and not (registry.store_dir(c.STORE_USER).parent / "evil").exists()
    store = registry.store_dir(c.STORE_USER)
    assert not store.exists() or list(store.iterdir()) == []
    code, out, err = run(capsys, "adapters", "import", str(archive))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and re.search(message, err)


def test_archives_over_the_size_limit_are_refused(registry, install, tmp_path, monkeypatch):
    install("big")
    archive = registry.export("big", tmp_path / "big.tar.gz")
    registry.remove("big")
    monkeypatch.setattr(c, "MAX_ARCHIVE_BYTES", 1000)
    with pytest.raises(AdapterError, match="unpacks to more than"):
        registry.import_archive(archive)
    assert list(registry.store_dir(c.STORE_USER).iterdir()) == []


def test_a_file_that_is_not_an_archive_is_refused(registry, tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball at all")
    with pytest.raises(AdapterError, match="is not a .tar.gz adapter archive"):
        registry.import_archive(junk)


# -- the command line ----------------------------------------------------------------------------

def test_cli_list_show_use_remove(install, project, capsys, monkeypatch):
    monkeypatch.chdir(project)
    install("lora-bank")
    install("ia3-bank", method=c.IA3, store=c.STORE_PROJECT)
    code, out, err = run(capsys, "adapters", "list")
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "METHOD", "STORE", "BASE", "MODEL", "LANGUAGES", "CREATED"]
    assert rows[0].split()[:5] == ["ia3-bank", "ia3", "project", "tiny-base", "python"]
    assert rows[1].split()[:5] == ["lora-bank", "lora", "user", "tiny-base", "python"]

    code, out, _ = run(capsys, "adapters", "list", "--json")
    assert code == 0 and [e["name"] for e in json.loads(out)] == ["ia3-bank", "lora-bank"]

    code, out, _ = run(capsys, "adapters", "show", "lora-bank")
    assert code == 0 and "method:         lora" in out and "repository: example/bank" in out
    code, out, _ = run(capsys, "adapters", "show", "lora-bank", "--json")
    assert json.loads(out)["card"]["name"] == "lora-bank"

    code, out, _ = run(capsys, "adapters", "use", "lora-bank")
    assert code == 0 and 'adapter = "lora-bank"' in (project / "unitune.toml").read_text()

    code, out, _ = run(capsys, "adapters", "remove", "ia3-bank")
    assert code == 0 and "removed adapter 'ia3-bank' from the project store" in out
    code, out, _ = run(capsys, "adapters", "list", "--json")
    assert [e["name"] for e in json.loads(out)] == ["lora-bank"]


def test_cli_use_with_project_option(install, tmp_path, capsys):
    other = tmp_path / "elsewhere"
    other.mkdir()
    install("lora-bank")
    code, _, err = run(capsys, "adapters", "use", "lora-bank", "--project", str(other))
    assert code == 0, err
    assert (other / "unitune.toml").read_text() == 'adapter = "lora-bank"\n'


def test_cli_export_import(install, project, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(project)
    original = files_of(install("lora-bank").path)
    archive = tmp_path / "shared.tar.gz"
    code, out, err = run(capsys, "adapters", "export", "lora-bank", str(archive))
    assert code == 0 and out.strip() == str(archive), err
    code, out, err = run(capsys, "adapters", "import", str(archive), "--name", "team-lora", "--project")
    assert code == 0, err
    installed = project / c.PROJECT_STORE / "team-lora"
    assert "into the project store" in out and installed.is_dir()
    assert {k: v for k, v in files_of(installed).items() if k != c.CARD_FILE} == \
        {k: v for k, v in original.items() if k != c.CARD_FILE}
    code, _, err = run(capsys, "adapters", "import", str(archive))
    assert code == 2 and "already exists" in err  # lora-bank is still in the user store
    assert "choose another name with --name, or replace it with --overwrite" in err


@pytest.mark.parametrize("argv, message", [
    (["adapters", "show", "Bad Name"], "not a valid adapter name"),
    (["adapters", "show", "missing"], "no adapter named 'missing'"),
    (["adapters", "use", "missing"], "no adapter named 'missing'"),
    (["adapters", "remove", "missing"], "no adapter named 'missing'"),
    (["adapters", "export", "missing", "out.tar.gz"], "no adapter named 'missing'"),
    (["adapters", "import", "missing.tar.gz"], "does not exist"),
    (["adapters", "import", "a-folder"], "a-folder is a folder; give an archive made by `unitune adapters export`"),
    (["adapters", "import", "a-pipe"], "a-pipe is not a regular file"),
    (["adapters", "import", "notes.txt"], "is not a .tar.gz adapter archive (not a tar archive)"),
    (["adapters", "list", "--project", "no/such/dir"], "no such folder"),
])
def test_cli_bad_input_exits_2_with_one_line(project, capsys, monkeypatch, argv, message):
    import os

    monkeypatch.chdir(project)
    (project / "a-folder").mkdir()
    os.mkfifo(project / "a-pipe")
    (project / "notes.txt").write_text("not an archive\n")
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("unitune: ") and message in err


def test_cli_show_of_a_damaged_adapter_shows_the_card_and_fails(install, project, capsys, monkeypatch):
    monkeypatch.chdir(project)
    _truncate_weights(install("cut").path)
    code, out, err = run(capsys, "adapters", "show", "cut")
    assert code == 2 and "method:         lora" in out
    assert "adapter_model.safetensors" in err and len(err.strip().splitlines()) == 1


# -- hostile adapter folders and archives ---------------------------------------------------------

def _string_offset(folder: Path) -> None:
    weights = folder / c.ADAPTER_WEIGHTS_FILE
    data = weights.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + size])
    key = next(k for k in header if k != "__metadata__")
    header[key]["data_offsets"] = [0, "12"]
    text = json.dumps(header).encode()
    weights.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + size:])


def _deep(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("damage", [
    _string_offset,
    lambda folder: (folder / c.CARD_FILE).write_text(_deep()),
    lambda folder: (folder / c.ADAPTER_CONFIG_FILE).write_text('{"peft_type": ' + _deep() + "}"),
], ids=["string-offset", "deep-card", "deep-config"])
def test_one_hostile_adapter_is_listed_as_broken_and_hides_no_other(install, project, capsys, monkeypatch, damage):
    monkeypatch.chdir(project)
    install("good")
    bad = install("bad", store=c.STORE_PROJECT)
    damage(bad.path)
    code, out, err = run(capsys, "adapters", "list")
    assert code == 0 and "Traceback" not in err
    assert "good" in out and "bad" in out
    code, out, err = run(capsys, "adapters", "show", "bad")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    code, out, err = run(capsys, "adapters", "show", "good")
    assert code == 0


def _archive_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]], compress: bool = True) -> bytes:
    import io

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if compress else "w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def test_an_archive_with_a_flipped_byte_is_refused(registry, install, tmp_path):
    install("crc")
    archive = registry.export("crc", tmp_path / "crc.tar.gz")
    registry.remove("crc")
    data = bytearray(archive.read_bytes())
    data[-12] ^= 0xFF  # the gzip CRC-32 of the unpacked stream
    archive.write_bytes(bytes(data))
    with pytest.raises(AdapterError, match="is damaged"):
        registry.import_archive(archive)
    assert list(registry.store_dir(c.STORE_USER).iterdir()) == []


@pytest.mark.slow
def test_header_bombs_many_members_and_compression_bombs_are_refused_before_unpacking(registry, tmp_path):
    pax = tarfile.TarInfo("x/adapter_config.json")
    pax.pax_headers = {"comment": "x" * (8 << 20)}  # an 8 MiB extended header
    pax.size = 2
    bombs = {
        "pax": ([(pax, b"{}")], "extended header"),
        "members": ([(tarfile.TarInfo(f"x/f{i}"), b"") for i in range(c.MAX_ARCHIVE_MEMBERS + 1)], "more than 1000 entries"),
    }
    zeros = tarfile.TarInfo("x/adapter_model.safetensors")
    zeros.size = 200 << 20  # 200 MiB of zeros: a few hundred KiB compressed
    bombs["ratio"] = ([(zeros, b"\0" * zeros.size)], "unpacks to more than")
    for name, (members, message) in bombs.items():
        archive = tmp_path / f"{name}.tar.gz"
        archive.write_bytes(_archive_bytes(members))
        with pytest.raises(AdapterError, match=message):
            registry.import_archive(archive)
    # the ratio bomb again, with 2 MiB of random bytes after the tar's end: the archive grows past the
    # size at which 200 MiB unpacked is within the ratio, so only what follows the end can give it away
    import gzip

    padded = tmp_path / "padded.tar.gz"
    padded.write_bytes(gzip.compress(_archive_bytes(bombs["ratio"][0], compress=False) + os.urandom(2 << 20)))
    assert zeros.size < c.MAX_ARCHIVE_RATIO * padded.stat().st_size
    with pytest.raises(AdapterError, match="holds data after the end of its tar archive"):
        registry.import_archive(padded)
    store = registry.store_dir(c.STORE_USER)
    assert not store.exists() or list(store.iterdir()) == []


@pytest.mark.parametrize("folder", ["/", "/usr"])
def test_an_adapter_setting_pointing_at_a_system_folder_is_refused_at_once(registry, folder, monkeypatch):
    """`adapter = "/"` (or a store linked there) once walked the whole disk looking for pickles."""
    import pathlib

    listed = []
    real_scandir, real_iterdir = os.scandir, pathlib.Path.iterdir
    monkeypatch.setattr(os, "scandir", lambda path=".": listed.append(path) or real_scandir(path))
    monkeypatch.setattr(pathlib.Path, "iterdir", lambda self: listed.append(self) or real_iterdir(self))
    with pytest.raises(CorruptAdapterError, match="is missing unitune-adapter.json"):
        registry.find_verified(folder)
    assert len(listed) <= 2, listed[:10]  # a look at the folder itself, not a walk of the disk


def test_a_folder_with_a_card_but_thousands_of_files_is_not_walked_in_full(tmp_path):
    from unitune.adapters.verification import MAX_ADAPTER_DEPTH, adapter_files

    deep = tmp_path / "adapter"
    path = deep
    for _ in range(MAX_ADAPTER_DEPTH + 2):
        path = path / "d"
    path.mkdir(parents=True)
    with pytest.raises(CorruptAdapterError, match="levels deep: it is not an adapter folder"):
        adapter_files(deep)


def test_control_characters_in_a_card_are_printed_as_escapes(registry, install, project, capsys, monkeypatch):
    """A card's fields and an adapter's folder name come from files anyone may write: an escape sequence
    that retitles and clears the terminal, or a newline that fakes a line of output, is shown escaped."""
    monkeypatch.chdir(project)
    entry = install("plain")
    card = json.loads((entry.path / c.CARD_FILE).read_text())
    card["base_model"]["id"] = "tiny\x1b]0;owned\x07\x1b[2J\nfake line"
    (entry.path / c.CARD_FILE).write_text(json.dumps(card))
    for command in (["adapters", "list"], ["adapters", "show", "plain"]):
        code, out, err = run(capsys, *command)
        assert code == 0, err
        assert "\x1b" not in out and "\x07" not in out
        assert "tiny\\x1b]0;owned\\x07\\x1b[2J\\nfake line" in out
        assert not any(line.startswith("fake line") for line in out.splitlines())


def test_an_error_quoting_a_hostile_name_prints_it_escaped(project, capsys, monkeypatch):
    monkeypatch.chdir(project)
    code, out, err = run(capsys, "adapters", "show", "evil\x1b[2J\x1b]0;owned\x07")
    assert code == 2 and "\x1b" not in err and "\x07" not in err
    assert "evil\\x1b[2J" in err


def test_an_archive_member_thousands_of_folders_deep_is_refused(registry, tmp_path):
    deep = tarfile.TarInfo("x/" + "d/" * 2000 + "adapter_config.json")
    deep.size = 2
    archive = tmp_path / "deep.tar.gz"
    archive.write_bytes(_archive_bytes([(deep, b"{}")]))
    with pytest.raises(AdapterError, match="2002 folders deep"):
        registry.import_archive(archive)


def test_an_adapter_holding_a_folder_too_deep_for_rmtree_is_removed(registry, install):
    entry = install("deep-inside")
    here = os.getcwd()
    try:
        os.chdir(entry.path)
        for _ in range(1200):
            os.mkdir("d")
            os.chdir("d")
    finally:
        os.chdir(here)
    registry.remove("deep-inside")
    assert not entry.path.exists()
    assert list(entry.path.parent.iterdir()) == []
