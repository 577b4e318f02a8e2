"""Pytest-style variants of mined unittest pairs: extra training data in the other Python style.

`pytest_variant` / `pytest_variants`: a mined pair (`unitune.training.pairs.Pair.to_json()`) -> the
same pair as a pytest test (its test rewritten by `unitune.training.unittest_to_pytest`), its prompt
built by `unitune.prompt.training_example` exactly as inference builds a pytest prompt (header:
`import pytest` plus the original test file's imports).
"""

from __future__ import annotations

from pathlib import Path

from unitune.code_spans import module_imports
from unitune.errors import UnituneError
from unitune.focal import Function
from unitune.frameworks import PYTEST, UNITTEST
from unitune.languages import PYTHON
from unitune.project_layout import python_module_name
from unitune.prompt import training_example
from unitune.training.matching import ParsedFiles
from unitune.training.python_modules import primary_functions
from unitune.training.unittest_to_pytest import unittest_to_pytest


def pytest_variant(pair: dict, root: Path, cache: ParsedFiles | None = None) -> dict | None:
    """The pytest variant of a mined unittest pair (paths relative to `root`), or None when its test
    does not convert or its files cannot be read. `cache` shares parsed files between calls."""
    if pair.get("framework") != UNITTEST or pair.get("language") != PYTHON:
        return None
    converted = unittest_to_pytest(pair["test_code"])
    if converted is None:
        return None
    files = cache if cache is not None else ParsedFiles()
    focal_path = Path(root) / pair["focal_file"]
    function = _mined_function(files, focal_path, pair["focal_qualified_name"], pair["focal_code"])
    test_file = files.get(Path(root) / pair["test_file"])
    if function is None or test_file is None:
        return None
    imports = [line for line in module_imports(test_file) if line != "import pytest"]
    try:
        prompt, completion = training_example(
            files.get(focal_path), function, converted, framework=PYTEST,
            module_import=python_module_name(focal_path, root),
            existing_test_source="\n".join(["import pytest", *imports]) + "\n", test_class=None,
            project_root=Path(root), hidden_tests=(pair["test_code"],),  # the original is the same test
        )
    except UnituneError:
        return None
    variant = dict(pair)
    variant.update(
        framework=PYTEST, test_code=converted, test_name=pair["test_name"].rsplit(".", 1)[-1],
        test_class=None, prompt=prompt, completion=completion, variant_of=pair["test_name"],
    )
    return variant


def pytest_variants(pairs: list[dict], root: Path) -> tuple[list[dict], dict]:
    """The pytest variants of the unittest pairs among `pairs`, one per distinct (prompt,
    completion) as mining keeps them, and counts: `unittest_pairs`, `variants`, `not_convertible`
    and `duplicates` (variants identical to an earlier one)."""
    files = ParsedFiles()
    variants, seen = [], set()
    counts = {"unittest_pairs": 0, "variants": 0, "not_convertible": 0, "duplicates": 0}
    for pair in pairs:
        if pair.get("framework") != UNITTEST or pair.get("language") != PYTHON:
            continue
        counts["unittest_pairs"] += 1
        variant = pytest_variant(pair, root, files)
        key = (variant["prompt"], variant["completion"]) if variant is not None else None
        if variant is None:
            counts["not_convertible"] += 1
        elif key in seen:
            counts["duplicates"] += 1
        else:
            seen.add(key)
            variants.append(variant)
    counts["variants"] = len(variants)
    return variants, counts


def _mined_function(files: ParsedFiles, path: Path, qualified_name: str, code: str) -> Function | None:
    """The function mining paired: the definition of that name whose text is `code`, else the
    primary definition of the name."""
    file = files.get(path)
    if file is None:
        return None
    found = [f for f in files.functions(path) if f.qualified_name == qualified_name]
    same = [f for f in found if f.source(file) == code]
    return (same or primary_functions(found) or [None])[0]
