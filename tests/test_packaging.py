"""A non-editable install holds every module and data file of the source tree under its import name
(`pip install .` once left out `unitune.server.features`, and the server could not start), and a plain
install brings what running the tests it writes needs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: source folder -> where its files land in the installed package
INSTALLED_AS = {"unitune": "unitune", "adapters": "unitune/adapters", "server": "unitune/server",
                "training": "unitune/training", "evaluation": "unitune/evaluation"}
DATA = ["unitune/evaluation/datasets/HumanEval.jsonl.gz", "unitune/evaluation/datasets/realcode.toml",
        "unitune/evaluation/java/UnituneCoverage.java"]


@pytest.mark.slow
def test_the_wheel_holds_every_module_and_data_file(tmp_path):
    source = tmp_path / "source"  # a clean copy: setuptools' build/ folder would keep files a build removed
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "node_modules",
                                                                "__pycache__", ".pytest_cache", "editors", "tests"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path), str(source)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("unitune-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"{target}/{path.relative_to(ROOT / folder).as_posix()}"
                for folder, target in INSTALLED_AS.items()
                for path in (ROOT / folder).rglob("*.py") if "__pycache__" not in path.parts}
    assert "unitune/server/features/generate.py" in expected
    assert not expected - names, sorted(expected - names)
    assert not set(DATA) - names


def test_a_plain_install_brings_what_validate_run_needs_for_python():
    """`pip install -e .` alone (the README's first command) must run and measure the tests it writes:
    without pytest in that interpreter, validate = "run" falls back to a syntax check."""
    # pyproject.toml takes the plain install's dependencies from requirements.txt
    assert 'dependencies = { file = ["requirements.txt"] }' in (ROOT / "pyproject.toml").read_text()
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    plain = {re.split(r"[=<>~!; \[]", line, maxsplit=1)[0].lower() for line in lines
             if line.strip() and not line.startswith("#")}
    assert {"pytest", "coverage"} <= plain, sorted(plain)
