"""A non-editable install holds every module and data file of the source tree under its import name
(`pip install .` once left out `unitune.server.features`, and the server could not start), and a plain
install brings what running the tests it writes needs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> where its files land in the installed package, as pyproject.toml maps them
INSTALLED_AS = {folder: package.replace(".", "/") for package, folder in
                tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].items()}
DATA = ["unitune/evaluation/datasets/HumanEval.jsonl.gz", "unitune/evaluation/datasets/realcode.toml",
        "unitune/assured/java/UnituneCoverage.java"]


#: Run from the installed wheel alone: each packaged file found and read through the code that uses it.
LOAD_EACH_PACKAGED_FILE = """
import json
from pathlib import Path
import unitune
from unitune.runtime.loading import ModelSpec, load_model
from unitune.evaluation.evaluation import load_humaneval
from unitune.evaluation.java_eval import load_humaneval_java
from unitune.assured.java_runner import COVERAGE_PROGRAM
from unitune.evaluation.realcode_dataset import load_definition
from unitune.assured.sandbox.programs import DRIVER_FILE, DRIVER_RUN_FILE, NETWORK_GUARD_FILE
from unitune.training.pretrain_config import SHIPPED_FOLDER

loaded = load_model(ModelSpec(model="unitune-mini", device="cpu", quantization="none"))
print(json.dumps({
    "package": unitune.__file__,
    "model_folder": str(loaded.folder),
    "shipped_folder_has_config": (SHIPPED_FOLDER / "config.json").is_file(),
    "model_writes": loaded.tokenizer.decode(loaded.tokenizer("def test_add():")["input_ids"]),
    "humaneval": len(load_humaneval()),
    "humaneval_java": len(load_humaneval_java()),
    "realcode_packages": len(load_definition().packages),
    "java_coverage_program": "class UnituneCoverage" in COVERAGE_PROGRAM.read_text(),
    "sandbox_programs": all(path.read_text().strip() for path in (DRIVER_FILE, DRIVER_RUN_FILE, NETWORK_GUARD_FILE)),
}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"  # a clean copy: setuptools' build/ folder would keep files a build removed
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "node_modules",
                                                                "__pycache__", ".pytest_cache", "editors", "tests"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(work), str(source)], check=True, capture_output=True, timeout=300)
    return next(work.glob("unitune-*.whl"))


@pytest.mark.slow
def test_the_wheel_holds_every_module_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"{target}/{path.relative_to(ROOT / folder).as_posix()}"
                for folder, target in INSTALLED_AS.items()
                for path in (ROOT / folder).rglob("*.py") if "__pycache__" not in path.parts}
    assert {"unitune/server/features/generate.py", "unitune/assured/sandbox/driver.py"} <= expected
    assert not expected - names, sorted(expected - names)
    assert not set(DATA) - names


@pytest.mark.slow
def test_an_installed_wheel_finds_and_reads_every_file_it_ships(wheel, tmp_path):
    """Installed without `-e`, the source folders are gone: the shipped model, the datasets and the
    sandbox's programs must be found where the wheel put them (once, the bundled model was looked for in
    a `unitune/` folder beside `adapters/`, which only the source tree has)."""
    installed = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(installed), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    # the installed copy comes first on the path, before this checkout's editable install; run from an
    # empty folder so the checkout's own folders are not importable either
    env = {**os.environ, "PYTHONPATH": str(installed), "HF_HUB_OFFLINE": "1", "PYTHONNOUSERSITE": "1"}
    run = subprocess.run([sys.executable, "-c", LOAD_EACH_PACKAGED_FILE], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    found = json.loads(run.stdout.strip().splitlines()[-1])
    assert Path(found["package"]).is_relative_to(installed)
    assert Path(found["model_folder"]).is_relative_to(installed)
    assert found["shipped_folder_has_config"]
    assert found["model_writes"] == "def test_add():"
    assert found["humaneval"] == 164 and found["humaneval_java"] > 0
    assert found["realcode_packages"] >= 3
    assert found["java_coverage_program"] and found["sandbox_programs"]


def test_a_plain_install_brings_what_validate_run_needs_for_python():
    """`pip install -e .` alone (the README's first command) must run and measure the tests it writes:
    without pytest in that interpreter, validate = "run" falls back to a syntax check."""
    # pyproject.toml takes the plain install's dependencies from requirements.txt
    assert 'dependencies = { file = ["requirements.txt"] }' in (ROOT / "pyproject.toml").read_text()
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    plain = {re.split(r"[=<>~!; \[]", line, maxsplit=1)[0].lower() for line in lines
             if line.strip() and not line.startswith("#")}
    assert {"pytest", "coverage"} <= plain, sorted(plain)
