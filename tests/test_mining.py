"""Tests of `unitune mine`: which files are read, which tests pair with which functions, the examples
the pairs make, splits, duplicates, the command line and its errors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from unitune.cli import main
from unitune.focal import functions
from unitune.listing import list_tests
from unitune.prompt import training_example
from unitune.source import SourceFile
from unitune.training.discovery import discover_files, is_git_work_tree
from unitune.training.mining import REQUIRED_KEYS, Pair, mine
from unitune.training.pairs import (
    MIN_GROUPS_TO_HOLD_OUT, SPLITS, TRAIN, assign_splits, without_duplicates,
)
from unitune.training.test_headers import header_source

REPOS = Path(__file__).parent / "fixtures" / "repos"

PY_PYTEST_PAIRS = {
    ("shop/pricing_test.py", "test_discount_half"): ("shop/pricing.py", "discount"),
    ("shop/pricing_test.py", "test_apply_coupon_unknown_code"): ("shop/pricing.py", "apply_coupon"),
    ("shop/pricing_test.py", "test_timed"): ("shop/pricing.py", "apply_coupon"),  # passed by reference
    ("tests/test_cart.py", "test_add_item_appends"): ("shop/cart.py", "add_item"),
    ("tests/test_cart.py", "test_total_empty"): ("shop/cart.py", "total"),  # not Cart.total: it calls total()
    ("tests/test_cart.py", "test__round_half_up"): ("shop/cart.py", "_round"),
    ("tests/test_cart.py", "test_sums_prices_with_tax"): ("shop/cart.py", "total"),  # by call; build_items is a helper
    ("tests/test_cart.py", "TestCart.test_add"): ("shop/cart.py", "Cart.add"),
    ("tests/test_cart.py", "TestCart.test_total_after_add"): ("shop/cart.py", "Cart.total"),
}
PY_PYTEST_UNMATCHED = {
    ("shop/pricing_test.py", "test_prices_combined"): "calls several (apply_coupon, discount)",
    ("tests/test_cart.py", "test_items"): "named after no function of shop/cart.py",
    ("tests/test_cart.py", "test_arithmetic"): "calls no function of the repository",
    ("tests/test_cart.py", "TestCart.test_chained"): "calls several (Cart.add, Cart.total)",
}
PY_UNITTEST_PAIRS = {
    ("tests/test_api.py", "ApiTest.test_doubles_value"): ("src/pkg/sub.py", "func"),  # through pkg's re-export
    ("tests/test_geometry.py", "TestPoint.test_distance"): ("src/pkg/geometry.py", "Point.distance"),
    ("tests/test_geometry.py", "TestPoint.test_moved_keeps_original"): ("src/pkg/geometry.py", "Point.moved"),
    ("tests/test_geometry.py", "TestPoint.test_from_origin"): ("src/pkg/geometry.py", "Point.distance"),
    ("tests/test_sub.py", "SubTest.test_triples"): ("src/pkg/sub.py", "scale"),
    ("tests/test_sub.py", "SubTest.test__clamp_high"): ("src/pkg/sub.py", "_clamp"),
}
PY_UNITTEST_UNMATCHED = {
    ("tests/test_api.py", "ApiTest.test_combined"): "calls several (scale, func)",
    ("tests/test_api.py", "ApiTest.test_constant"): "no module found for the test file",
}
JAVA_TEST = "src/test/java/com/acme/CalcTest.java"
JAVA_FOCAL = "src/main/java/com/acme/Calc.java"
JAVA_PAIRS = {
    (JAVA_TEST, "CalcTest.testAdd"): (JAVA_FOCAL, "Calc.add"),
    (JAVA_TEST, "CalcTest.subtractGivesDifference"): (JAVA_FOCAL, "Calc.subtract"),
    (JAVA_TEST, "CalcTest.squaresNumbers"): (JAVA_FOCAL, "Calc.square"),
    (JAVA_TEST, "CalcTest.handlesNegatives"): (JAVA_FOCAL, "Calc.add"),  # by call; twice() is a helper
}
JAVA_UNMATCHED = {(JAVA_TEST, "CalcTest.remembersValue"): "invokes several (store, recall)"}

EXPECTED = {
    "py_pytest": (PY_PYTEST_PAIRS, PY_PYTEST_UNMATCHED),
    "py_unittest_src": (PY_UNITTEST_PAIRS, PY_UNITTEST_UNMATCHED),
    "java_maven": (JAVA_PAIRS, JAVA_UNMATCHED),
}
# Fixtures, helpers and set-up methods of the fixture repositories' test files.
NEVER_FOCAL = {"items", "build_items", "cart", "make_items", "price", "setUp", "twice"}


def copy_repo(name: str, tmp_path: Path) -> Path:
    return Path(shutil.copytree(REPOS / name, tmp_path / name))


@pytest.fixture(scope="module")
def mined():
    return {name: mine(REPOS / name) for name in EXPECTED}


def pair_map(result) -> dict:
    return {(p.test_file, p.test_name): (p.focal_file, p.focal_qualified_name) for p in result.pairs}


# -- pairing --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_fixture_repository_gives_exactly_the_expected_pairs(mined, name):
    expected_pairs, expected_unmatched = EXPECTED[name]
    result = mined[name]
    assert pair_map(result) == expected_pairs
    unmatched = {(u.test_file, u.test_name): u.reason for u in result.unmatched}
    assert set(unmatched) == set(expected_unmatched)
    for key, fragment in expected_unmatched.items():
        assert fragment in unmatched[key]


CHECKED_MODULE = """
def depends(factory):
    return ("dependency", factory)


def resolve(handler):
    if handler is None:
        raise TypeError("no handler")
    return {"x": handler()}


def describe(value):
    return str(value)
"""
CHECKED_TESTS = """
import unittest

import pytest

from pkg.deps import depends, describe, resolve


def test_resolution_sees_the_dependency():
    marker = depends(int)
    resolved = resolve(lambda: 2)
    assert resolved["x"] == 2


def test_a_missing_handler_is_refused():
    depends(None)
    with pytest.raises(TypeError):
        resolve(None)


def test_both_results_checked():
    assert describe(resolve(lambda: 1)) == "{'x': 1}"


class TestFlow(unittest.TestCase):
    def test_flow(self):
        depends(int)
        self.assertEqual(resolve(lambda: 3), {"x": 3})

    def test_by_reference(self):
        depends(int)
        self.assertRaises(TypeError, resolve, None)
"""


def test_a_test_calling_several_functions_pairs_with_the_one_whose_result_it_checks(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "deps.py").write_text(CHECKED_MODULE)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_flow.py").write_text(CHECKED_TESTS)

    result = mine(tmp_path)

    # the calls that build the input (`depends`) are set-up; the checked call is the focal function
    assert {p.test_name: (p.focal_qualified_name, p.match) for p in result.pairs} == {
        "test_resolution_sees_the_dependency": ("resolve", "checked"),
        "test_a_missing_handler_is_refused": ("resolve", "checked"),
        "TestFlow.test_flow": ("resolve", "checked"),
        "TestFlow.test_by_reference": ("resolve", "checked"),
    }
    (unmatched,) = result.unmatched
    assert unmatched.test_name == "test_both_results_checked"
    assert "checking several (describe, resolve)" in unmatched.reason or "checking several (resolve, describe)" in unmatched.reason


@pytest.mark.parametrize("name", list(EXPECTED))
def test_fixtures_and_helpers_are_never_focal(mined, name):
    for pair in mined[name].pairs:
        assert pair.focal_name not in NEVER_FOCAL
        assert "test" not in Path(pair.focal_file).parts[0] and not Path(pair.focal_file).name.startswith("test_")


def test_summary_counts_by_language_and_split(mined):
    summary = mined["py_pytest"].summary
    assert (summary.test_files, summary.tests_found, summary.pairs, summary.unmatched) == (2, 13, 9, 4)
    assert summary.source_files == 6 and summary.files_scanned == 7  # pyproject.toml is scanned too
    assert summary.by_language["python"].pairs == 9 and summary.by_language["java"].tests == 0
    assert summary.by_split == {"train": 9, "valid": 0, "test": 0}
    assert summary.split_by == "none" and summary.split_note.startswith("9 pairs are too few to hold any out")
    java = mined["java_maven"].summary
    assert (java.by_language["java"].tests, java.by_language["java"].pairs, java.by_language["java"].unmatched) == (5, 4, 1)


def test_language_option_limits_mining(mined):
    assert mine(REPOS / "java_maven", language="python").summary.tests_found == 0
    assert mine(REPOS / "py_pytest", language="python").summary.pairs == mined["py_pytest"].summary.pairs


def test_pairs_carry_the_required_fields_with_relative_paths(mined):
    for result in mined.values():
        for pair in result.pairs:
            record = pair.to_json()
            assert list(record)[: len(REQUIRED_KEYS)] == list(REQUIRED_KEYS)
            assert not Path(pair.test_file).is_absolute() and "\\" not in pair.test_file
            assert pair.split in SPLITS and pair.match in ("name", "call")
    by_test = {p.test_name: p for p in mined["java_maven"].pairs}
    assert by_test["CalcTest.testAdd"].framework == "junit5"
    assert {p.framework for p in mined["py_unittest_src"].pairs} == {"unittest"}


# -- the training examples ------------------------------------------------------------------------

def _focal_function(root: Path, pair: Pair):
    file = SourceFile.from_path(root / pair.focal_file)
    return file, next(f for f in functions(file) if f.qualified_name == pair.focal_qualified_name)


def _module_import(pair: Pair) -> str:
    if pair.language == "java":
        return "com.acme.Calc"
    return {"shop/cart.py": "shop.cart", "shop/pricing.py": "shop.pricing", "src/pkg/sub.py": "pkg.sub",
            "src/pkg/geometry.py": "pkg.geometry"}[pair.focal_file]


@pytest.mark.parametrize("name", list(EXPECTED))
def test_prompt_and_completion_are_what_the_prompt_module_builds(mined, name):
    root = REPOS / name
    for pair in mined[name].pairs:
        test_file = SourceFile.from_path(root / pair.test_file)
        tests = list_tests(test_file)
        test = next(t for t in tests if t.qualified_name == pair.test_name)
        lines = test_file.text.splitlines(keepends=True)
        without_the_test = "".join(lines[: test.start_line - 1] + lines[test.end_line:])
        focal_file, function = _focal_function(root, pair)
        options = dict(framework=pair.framework, module_import=_module_import(pair), test_class=pair.test_class,
                       project_root=root)
        # The header of the test file minus this test equals the one mining builds from less text.
        assert training_example(focal_file, function, pair.test_code, existing_test_source=without_the_test, **options) \
            == (pair.prompt, pair.completion)
        existing = header_source(test_file, tests, pair.test_class)
        assert training_example(focal_file, function, pair.test_code, existing_test_source=existing, **options) \
            == (pair.prompt, pair.completion)
        body = test.source(test_file).rstrip().splitlines()[-1].strip()
        assert (pair.prompt + pair.completion).rstrip().endswith(body)
        assert pair.completion.strip() not in pair.prompt  # its own test is never the prompt's example
        assert pair.focal_code == function.source(focal_file)


def test_prompt_shows_the_test_files_header_but_no_other_test(mined):
    pair = next(p for p in mined["py_pytest"].pairs if p.test_name == "TestCart.test_add")
    assert "@pytest.fixture\ndef items():" in pair.prompt
    assert pair.prompt.endswith("class TestCart:\n    def test_add(self")
    assert "test_total_empty" not in pair.prompt and "build_items" not in pair.prompt
    assert pair.completion.startswith(", cart):")


# -- splits and duplicates ------------------------------------------------------------------------

def _pairs_for(files: list[str]) -> list[Pair]:
    return [Pair("python", f"tests/test_{i}.py", f"test_{k}", name, "f", "f", "", "", f"p{i}{k}", "c")
            for i, name in enumerate(files) for k in range(2)]


def test_splits_are_deterministic_and_follow_the_focal_file():
    files = [f"pkg/module_{index}.py" for index in range(60)]
    first, second = _pairs_for(files), _pairs_for(list(reversed(files)))
    assign_splits(first)
    assign_splits(second)
    by_file = {}
    for pair in first + second:
        assert by_file.setdefault(pair.focal_file, pair.split) == pair.split  # one split per file, either order
    counts = {split: list(by_file.values()).count(split) for split in SPLITS}
    assert counts == {TRAIN: 48, "valid": 6, "test": 6}  # 80/10/10 of equal groups


def test_a_method_with_many_tests_leaves_each_split_its_share_of_the_pairs():
    """One method with forty tests beside forty with one: picking groups by hash alone could leave the
    test split one pair, or give it forty-one."""
    pairs = [Pair("python", "tests/test_m.py", f"test_big_{k}", "m.py", "big", "big", "", "", f"pbig{k}", "c")
             for k in range(40)]
    pairs += [Pair("python", "tests/test_m.py", f"test_f{index}", "m.py", f"f{index}", f"f{index}", "", "",
                   f"p{index}", "c") for index in range(40)]
    by, _ = assign_splits(pairs, "method")
    counts = {split: sum(pair.split == split for pair in pairs) for split in SPLITS}
    assert by == "method" and counts[TRAIN] >= 60 and 6 <= counts["valid"] <= 10 and 6 <= counts["test"] <= 10, counts


def test_a_small_repository_still_gets_valid_and_test_pairs_and_is_told_how():
    pairs = _pairs_for([f"m{index}.py" for index in range(MIN_GROUPS_TO_HOLD_OUT - 1)])  # 9 files, 18 pairs
    by, note = assign_splits(pairs)
    assert by == "pair" and "9 focal files are too few to split by file" in note
    splits = [pair.split for pair in pairs]
    assert splits.count("valid") >= 1 and splits.count("test") >= 1 and splits.count(TRAIN) >= 10


def test_split_by_method_keeps_a_methods_tests_together():
    pairs = [Pair("python", "tests/test_m.py", f"test_{name}_{k}", "m.py", name, name, "", "", f"p{name}{k}", "c")
             for name in (f"f{index}" for index in range(12)) for k in range(3)]
    by, _ = assign_splits(pairs)  # one focal file, twelve methods
    assert by == "method"
    by_method: dict[str, set[str]] = {}
    for pair in pairs:
        by_method.setdefault(pair.focal_name, set()).add(pair.split)
    assert all(len(splits) == 1 for splits in by_method.values())
    assert {split for splits in by_method.values() for split in splits} == set(SPLITS)


@pytest.mark.parametrize("files", [3, 5])
def test_split_by_file_on_few_files_holds_one_out_for_valid_and_one_for_test(files):
    pairs = _pairs_for([f"m{index}.py" for index in range(files)])
    assert assign_splits(pairs, "file") == ("file", "")
    by_file = {pair.focal_file: pair.split for pair in pairs}
    assert sorted(by_file.values()).count("valid") == 1 and sorted(by_file.values()).count("test") == 1


def test_too_few_pairs_train_on_everything_and_none_means_none():
    pairs = _pairs_for(["a.py", "b.py"])  # four pairs
    by, note = assign_splits(pairs)
    assert by == "none" and "4 pairs are too few" in note and {pair.split for pair in pairs} == {TRAIN}
    many = _pairs_for([f"m{index}.py" for index in range(40)])
    assert assign_splits(many, "none")[0] == "none" and {pair.split for pair in many} == {TRAIN}


def test_train_is_never_empty():
    pairs = _pairs_for([f"x{index}.py" for index in range(3)])  # three files: one each, train first
    assign_splits(pairs, "file")
    assert {pair.split for pair in pairs} == set(SPLITS)


def test_duplicate_examples_are_removed(tmp_path, mined):
    repo = copy_repo("py_pytest", tmp_path)
    shutil.copy(repo / "tests" / "test_cart.py", repo / "tests" / "test_cart_again.py")
    result = mine(repo)
    assert result.summary.duplicates == 6  # the copy's six pairs, each identical to one of the original's
    assert pair_map(result) == PY_PYTEST_PAIRS
    kept, dropped = without_duplicates(result.pairs + result.pairs[:2])
    assert (len(kept), dropped) == (len(result.pairs), 2)
    # the same test and focal method found twice (another header, another class path): one pair
    import dataclasses

    again = dataclasses.replace(result.pairs[0], prompt=result.pairs[0].prompt + "\n# seen again\n")
    kept, dropped = without_duplicates(result.pairs + [again])
    assert (len(kept), dropped) == (len(result.pairs), 1)


# -- files ----------------------------------------------------------------------------------------

def _relative(root: Path, files) -> set[str]:
    return {path.relative_to(root.resolve()).as_posix() for path in files}


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_discovery_respects_gitignore(tmp_path):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "code.py").write_text("def f():\n    return 1\n")
    (repo / "pkg" / "generated.py").write_text("def g():\n    return 2\n")
    (repo / "notes.py").write_text("x = 1\n")
    (repo / ".gitignore").write_text("pkg/generated.py\nscratch/\n")
    (repo / "scratch").mkdir()
    (repo / "scratch" / "test_wip.py").write_text("def test_wip():\n    pass\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "pkg/code.py", ".gitignore"], check=True)
    found = _relative(repo, discover_files(repo))
    assert found == {".gitignore", "pkg/code.py", "notes.py"}  # tracked and untracked, not ignored


def test_walk_skips_environments_dependencies_build_output_binaries_and_huge_files(tmp_path):
    if is_git_work_tree(tmp_path):
        pytest.skip("the temporary folder is inside a git work tree, so git lists the files")
    repo = tmp_path / "plain"
    for folder in ("pkg", "pkg/build", "venv/lib", ".venv", "myenv", "node_modules/x", "build", "target", "vendor",
                   "third_party", "__pycache__", ".tox", "site-packages"):
        (repo / folder).mkdir(parents=True, exist_ok=True)
        (repo / folder / "mod.py").write_text("def f():\n    pass\n")
    (repo / "pyproject.toml").write_text("[project]\nname = 'plain'\n")  # makes `build` and `target` build output
    (repo / "myenv" / "pyvenv.cfg").write_text("home = /usr\n")
    (repo / "pkg" / "blob.py").write_bytes(b"def f():\x00\n")
    (repo / "pkg" / "huge.py").write_text("x = 1\n" * 200_000)
    found = _relative(repo, discover_files(repo))
    assert found == {"pkg/mod.py", "pkg/build/mod.py", "pyproject.toml"}  # a package may be named `build`


def test_unreadable_files_are_reported_and_skipped(tmp_path):
    repo = copy_repo("py_pytest", tmp_path)
    (repo / "tests" / "test_latin.py").write_bytes("# caf\xe9\ndef test_total():\n    pass\n".encode("latin-1"))
    result = mine(repo)
    assert result.unreadable.keys() == {"tests/test_latin.py"} and result.summary.unreadable == 1
    assert pair_map(result) == PY_PYTEST_PAIRS


def test_progress_reports_each_test_file(tmp_path):
    seen = []
    mine(REPOS / "py_pytest", on_progress=lambda done, total, path: seen.append((done, total, path)))
    assert seen == [(1, 2, "shop/pricing_test.py"), (2, 2, "tests/test_cart.py")]


# -- the command line -----------------------------------------------------------------------------

def test_cli_writes_the_pairs_and_prints_the_summary(tmp_path, capsys):
    repo = copy_repo("py_unittest_src", tmp_path)
    assert main(["mine", str(repo)]) == 0
    out = capsys.readouterr().out
    for label in ("files scanned", "tests found", "pairs", "unmatched", "python", "train", "valid"):
        assert label in out
    assert "ApiTest.test_combined" in out  # unmatched tests are listed with their reason
    assert "6 pairs are too few to hold any out" in out  # says why nothing is held out
    written = repo / ".unitune" / "pairs.jsonl"
    records = [json.loads(line) for line in written.read_text("utf-8").splitlines()]
    assert len(records) == 6 and all(set(REQUIRED_KEYS) <= set(record) for record in records)
    assert not list(written.parent.glob("*.tmp"))


def test_cli_json_output_and_out_option(tmp_path, capsys):
    out_file = tmp_path / "data" / "java.jsonl"
    assert main(["mine", str(REPOS / "java_maven"), "--out", str(out_file), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["summary"]["pairs"] == 4 and report["summary"]["by_split"]["train"] == 4
    assert report["pairs_file"] == str(out_file)
    assert [u["test_name"] for u in report["unmatched"]] == ["CalcTest.remembersValue"]
    assert len(out_file.read_text("utf-8").splitlines()) == 4


def _sources_without_tests(repo: Path) -> None:
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "code.py").write_text("def f():\n    return 1\n")


def _tests_without_pairs(repo: Path) -> None:
    _sources_without_tests(repo)
    (repo / "tests").mkdir()
    (repo / "tests" / "test_other.py").write_text("def test_nothing():\n    assert True\n")


@pytest.mark.parametrize("setup, exit_code, message", [
    ("missing", 2, "no such directory"),
    ("file", 2, "is a file"),
    ("empty", 2, "no Python or Java source files"),
    ("no tests", 2, "no tests found"),
    ("no pairs", 1, "none of the 1 tests could be paired"),
])
def test_cli_bad_input_gives_one_line_and_writes_nothing(tmp_path, capsys, setup, exit_code, message):
    repo = tmp_path / "repo"
    if setup == "file":
        repo.write_text("not a folder\n")
    elif setup != "missing":
        repo.mkdir()
        if setup == "no tests":
            _sources_without_tests(repo)
        elif setup == "no pairs":
            _tests_without_pairs(repo)
    out_file = tmp_path / "out" / "pairs.jsonl"
    assert main(["mine", str(repo), "--out", str(out_file)]) == exit_code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and message in captured.err and "Traceback" not in captured.err
    assert not out_file.exists() and not out_file.parent.exists()
    assert not (tmp_path / "repo" / ".unitune").exists()


def test_cli_refuses_an_unknown_language(tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["mine", str(REPOS / "py_pytest"), "--language", "cobol"])
    assert stopped.value.code == 2
