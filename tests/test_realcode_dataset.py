"""The real-code dataset: listings of `path.py::Qualified.name` lines and their errors, the built-in
definition, and pinned wheels fetched with pip (here from a local folder, no network), checked
against their sha256, unpacked without metadata and handed out as fresh copies."""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from unitune.cli import main
from unitune.evaluation.evaluation import EvaluationError
from unitune.evaluation.function_listing import ListedFunction, locate, parse_listing, read_listing
from unitune.evaluation.realcode_dataset import (
    PackageDataset, PinnedPackage, fetch_wheel, fresh_copy, load_definition, prepare_projects,
)
from unitune.evaluation.realcode_eval import function_targets, is_function_dataset

CORE = '''"""Tiny helpers."""


def sign(x):
    if x < 0:
        return -1
    return 1 if x else 0


class Meter:
    def __init__(self, total=0):
        self.total = total

    def add(self, amount):
        if amount < 0:
            raise ValueError("negative")
        self.total += amount
        return self.total
'''


def build_wheel(folder, name="tinypkg", version="1.0"):
    """A minimal pure-Python wheel, as pip and unitune read them."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}/__init__.py", "")
        archive.writestr(f"{name}/core.py", CORE)
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                          "Tag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    return path


def pinned(wheel, functions=("tinypkg/core.py::sign",), sha=None):
    return PinnedPackage("tinypkg", "1.0", sha or hashlib.sha256(wheel.read_bytes()).hexdigest(),
                         tuple(parse_listing("\n".join(functions), "test")))


def test_a_listing_names_functions_and_methods_with_comments_and_blank_lines():
    text = "# my functions\n\ntinypkg/core.py::sign   # the sign\n  tinypkg/core.py::Meter.add\n"
    assert parse_listing(text, "list.txt") == [ListedFunction("tinypkg/core.py", "sign"),
                                               ListedFunction("tinypkg/core.py", "Meter.add")]
    assert ListedFunction("tinypkg/core.py", "Meter.add").id == "tinypkg/core.py::Meter.add"
    assert ListedFunction("tinypkg/core.py", "sign").module_name == "tinypkg.core"
    assert ListedFunction("tinypkg/__init__.py", "sign").module_name == "tinypkg"


@pytest.mark.parametrize("line, says", [
    ("tinypkg/core.py sign", "is not `path/to/module.py::function_name`"),
    ("tinypkg/core.py::", "is not `path/to/module.py::function_name`"),
    ("tinypkg/core.txt::sign", "is not a Python file"),
    ("/abs/core.py::sign", "must be relative to the project folder"),
    ("../outside.py::sign", "must be relative to the project folder"),
    ("tinypkg/core.py::Meter.add()", "is not a qualified function name"),
])
def test_a_malformed_line_is_reported_with_its_file_and_line(line, says):
    with pytest.raises(EvaluationError) as raised:
        parse_listing(f"# first\n{line}\n", "list.txt")
    assert str(raised.value).startswith("list.txt:2: ") and says in str(raised.value)


def test_an_empty_listing_and_a_repeated_function_are_errors():
    with pytest.raises(EvaluationError, match="lists no function"):
        parse_listing("# nothing here\n\n", "list.txt")
    with pytest.raises(EvaluationError, match=r"list.txt:3: tinypkg/core.py::sign is already listed on line 1"):
        parse_listing("tinypkg/core.py::sign\ntinypkg/core.py::Meter.add\ntinypkg/core.py::sign\n", "list.txt")


def test_locating_a_listed_function_gives_its_span_or_says_what_the_file_has(tmp_path):
    (tmp_path / "tinypkg").mkdir()
    (tmp_path / "tinypkg" / "core.py").write_text(CORE)
    found = locate(tmp_path, ListedFunction("tinypkg/core.py", "Meter.add"))
    assert found.lines == (14, 18) and CORE.encode()[found.offset:].startswith(b"def add(")
    with pytest.raises(EvaluationError, match=r"defines no testable function 'Meter.sub' \(it has: sign, "
                                              r"Meter.__init__, Meter.add\)"):
        locate(tmp_path, ListedFunction("tinypkg/core.py", "Meter.sub"))
    with pytest.raises(EvaluationError, match="no file tinypkg/other.py"):
        locate(tmp_path, ListedFunction("tinypkg/other.py", "sign"))


def test_the_builtin_set_pins_four_packages_and_over_forty_functions():
    definition = load_definition()
    assert [p.name for p in definition.packages] == ["inflection", "humanize", "semver", "boltons"]
    assert definition.function_count >= 40
    assert all(len(p.wheel_sha256) == 64 and p.version[0].isdigit() for p in definition.packages)
    ids = [f.id for p in definition.packages for f in p.functions]
    assert len(ids) == len(set(ids))
    assert all(f.path.startswith("boltons/strutils.py") for f in definition.packages[3].functions)
    assert is_function_dataset("realcode") and not is_function_dataset("humaneval")


def test_a_wheel_is_fetched_once_checked_and_unpacked_without_metadata(tmp_path):
    wheel = build_wheel(tmp_path / "index")
    package = pinned(wheel)
    cache = tmp_path / "cache"
    fetched = fetch_wheel(package, cache, find_links=tmp_path / "index")
    assert fetched.parent == cache / "wheels" and fetched.read_bytes() == wheel.read_bytes()
    wheel.unlink()  # from now on the cached wheel serves: pip is not asked again
    projects = prepare_projects(PackageDataset("tiny", (package,)), cache, find_links=tmp_path / "index")
    project = projects["tinypkg"]
    assert (project / "tinypkg" / "core.py").read_text() == CORE
    assert not list(project.glob("*.dist-info"))
    assert 'name = "tinypkg"' in (project / "pyproject.toml").read_text()


def test_a_wheel_whose_hash_differs_is_refused_and_set_aside(tmp_path):
    wheel = build_wheel(tmp_path / "index")
    package = pinned(wheel, sha="0" * 64)
    with pytest.raises(EvaluationError) as raised:
        fetch_wheel(package, tmp_path / "cache", find_links=tmp_path / "index")
    message = str(raised.value)
    assert "the dataset pins " + "0" * 64 in message and "update wheel_sha256 of tinypkg" in message
    assert not list((tmp_path / "cache" / "wheels").glob("*.whl"))  # never used as if it were the pinned one
    assert list((tmp_path / "cache" / "wheels").glob("*.whl.rejected"))


def test_when_pip_cannot_fetch_the_error_says_what_to_do(tmp_path):
    (tmp_path / "empty-index").mkdir()
    package = PinnedPackage("tinypkg", "1.0", "0" * 64, ())
    with pytest.raises(EvaluationError) as raised:
        fetch_wheel(package, tmp_path / "cache", find_links=tmp_path / "empty-index")
    message = str(raised.value)
    assert message.startswith("tinypkg==1.0: pip could not fetch its wheel")
    assert "offline?" in message and str(tmp_path / "cache" / "wheels") in message


def test_each_run_gets_a_fresh_copy_and_the_cache_stays_pristine(tmp_path):
    wheel = build_wheel(tmp_path / "index")
    package = pinned(wheel)
    project = prepare_projects(PackageDataset("tiny", (package,)), tmp_path / "cache", tmp_path / "index")["tinypkg"]
    first = fresh_copy(project, tmp_path / "work" / "1")
    (first / "tests").mkdir()
    (first / "tests" / "test_core.py").write_text("written by a run\n")
    (first / "tinypkg" / "core.py").write_text("changed by a run\n")
    second = fresh_copy(project, tmp_path / "work" / "2")
    assert (second / "tinypkg" / "core.py").read_text() == CORE and not (second / "tests").exists()
    assert (project / "tinypkg" / "core.py").read_text() == CORE
    again = fresh_copy(project, first)  # the same folder again: what the last run left is gone
    assert not (again / "tests").exists()


def test_a_set_definition_and_a_listing_give_located_functions(tmp_path):
    wheel = build_wheel(tmp_path / "index")
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    definition = tmp_path / "tiny.toml"
    definition.write_text(f'name = "tiny"\n[[package]]\nname = "tinypkg"\nversion = "1.0"\nwheel_sha256 = "{sha}"\n'
                          'functions = ["tinypkg/core.py::sign", "tinypkg/core.py::Meter.add"]\n')
    targets = function_targets(str(definition), cache=tmp_path / "cache", find_links=tmp_path / "index", limit=1)
    assert [t.listed.id for t in targets] == ["tinypkg/core.py::sign"]
    assert targets[0].fresh_copy and targets[0].located.lines == (4, 7)

    repo = tmp_path / "repo"
    (repo / "tinypkg").mkdir(parents=True)
    (repo / "tinypkg" / "core.py").write_text(CORE)
    listing = tmp_path / "functions.txt"
    listing.write_text("tinypkg/core.py::Meter.add\n")
    targets = function_targets(str(listing), repo)
    assert [(t.listed.id, t.project, t.fresh_copy) for t in targets] == [("tinypkg/core.py::Meter.add", repo, False)]
    assert read_listing(listing) == [targets[0].listed]


def test_eval_with_a_wrong_listing_exits_2_before_any_generation(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("UNITUNE_CONFIG", str(tmp_path / "config.toml"))
    (tmp_path / "tinypkg").mkdir()
    (tmp_path / "tinypkg" / "core.py").write_text(CORE)
    listing = tmp_path / "functions.txt"
    listing.write_text("tinypkg/core.py::sign\ntinypkg/core.py::Meter.sub\n")
    code = main(["eval", "--base", "--dataset", str(listing), "--repo", str(tmp_path), "--model", "unitune-mini"])
    assert code == 2
    assert "tinypkg/core.py::Meter.sub: tinypkg/core.py defines no testable function 'Meter.sub'" in \
        capsys.readouterr().err
