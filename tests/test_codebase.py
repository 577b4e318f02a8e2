"""The codebase stays easy to enter: every module says what it owns, and none grows past ~400 lines."""

import ast
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
#: every source folder pyproject.toml maps into the package
PACKAGES = tuple(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"].values())
MAX_LINES = 420
MODULES = sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("module", MODULES, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_each_module_has_a_docstring_and_stays_small(module):
    text = module.read_text("utf-8")
    if module.name != "__init__.py" or text.strip():
        assert ast.get_docstring(ast.parse(text)), f"{module.relative_to(ROOT)} does not say what it owns"
    assert len(text.splitlines()) <= MAX_LINES, f"{module.relative_to(ROOT)} has grown past {MAX_LINES} lines: split it"


def test_the_linter_finds_nothing():
    """ruff, with the rules pyproject.toml selects (unused imports and names, undefined names, syntax
    errors, mutable defaults), over every Python file of the repository."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--quiet", str(ROOT)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
