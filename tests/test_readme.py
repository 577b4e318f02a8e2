"""The README's first command, run as a newcomer would (the install step aside: this environment
has unitune installed): offline, with the default model, it must print a test of `Account.deposit`
that calls `deposit`, asserts something and passes."""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INSTALL = "pip install -e ."


def first_commands() -> list[str]:
    """The lines of the README's first bash block, their trailing comments removed."""
    text = (ROOT / "README.md").read_text("utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.S)
    assert block, "the README has no bash block"
    return [line.split("   #", 1)[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_the_readme_opens_with_install_and_generate_then_the_tests():
    main, tests = first_commands()[:2]
    assert main.startswith(INSTALL + " && ")
    assert " unitune generate " in f" {main} "
    assert "python -m pytest" in tests


@pytest.mark.slow
def test_the_readme_first_command_prints_a_passing_test_offline(tmp_path, real_model_home, example_project):
    steps = [step.strip() for step in first_commands()[0].split(" && ")]
    assert steps[0] == INSTALL and steps[-1].startswith("unitune generate "), steps
    # The session's home already holds the converted default model (the first use, tested on its own).
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "UNITUNE_HOME": str(real_model_home),
           "UNITUNE_CONFIG": str(tmp_path / "no-user-config.toml")}
    import llama_server

    built = llama_server.find()  # `engine install` finds the tests' build there instead of building again
    if built is not None:
        env["UNITUNE_LLAMA_SERVER"] = str(built)
    for step in steps[1:]:
        words = shlex.split(step)
        assert words[0] == "unitune", step
        if words[1:3] == ["engine", "install"] and built is None:
            continue  # no llama.cpp server built for the tests (see .ci/run): the model runs on torch
        # Run from the clone's root, as the README is read, with this interpreter's unitune.
        done = subprocess.run([sys.executable, "-m", "unitune", *words[1:]], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, step + "\n" + done.stderr
    tree = ast.parse(done.stdout)  # what it prints is Python that parses
    tests = [node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name.startswith("test")]
    assert tests, done.stdout
    calls = [node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute)]
    assert "deposit" in calls, done.stdout  # a test of the function under the cursor, not of something else
    assert any(isinstance(node, ast.Assert) for node in ast.walk(tree)) or "pytest.raises" in done.stdout
    # It passes, inserted where `--write` puts it (the example project's tests/test_account.py).
    test_file = example_project / "python" / "tests" / "test_account.py"
    test_file.parent.mkdir(exist_ok=True)
    test_file.write_text("import pytest\n\nfrom bank.account import Account\n\n\n" + done.stdout)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
                         cwd=example_project / "python", capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
