"""`unitune focal`: JSON fields, context levels, and one-line errors with the documented exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from unitune.cli import main

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "python" / "bank" / "account.py"
JAVA_EXAMPLE = (
    Path(__file__).resolve().parents[1] / "examples" / "java" / "src" / "main" / "java" / "com" / "example"
    / "bank" / "Account.java"
)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_has_the_documented_fields(capsys):
    code, out, err = run(capsys, "focal", str(EXAMPLE), "--line", "17", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["language"] == "python"
    assert record["name"] == "deposit"
    assert record["qualified_name"] == "Account.deposit"
    assert record["class_name"] == "Account"
    assert (record["start_line"], record["end_line"]) == (15, 19)
    assert record["source"].startswith("    def deposit(self, amount: int) -> int:")
    # the default context has the class header, the constructor, the other methods and the fields
    context = record["context"]
    assert "class Account:" in context
    assert "interest_rate = 0.01" in context
    assert "def __init__(self, owner: str, balance: int = 0):" in context
    assert "def withdraw(self, amount: int) -> int: ..." in context


def test_context_level_fm_is_the_method_alone(capsys):
    code, out, _ = run(capsys, "focal", str(EXAMPLE), "--line", "28", "--context", "fm", "--json")
    assert code == 0
    record = json.loads(out)
    assert record["qualified_name"] == "add" and record["class_name"] is None
    assert record["context"] == "def add(a: int, b: int) -> int:\n    return a + b\n"


def test_java_constructor_and_column(capsys):
    code, out, _ = run(capsys, "focal", str(JAVA_EXAMPLE), "--line", "8", "--column", "5", "--json")
    assert code == 0
    record = json.loads(out)
    assert record["qualified_name"] == "Account.Account"
    assert record["kind"] == "constructor"
    assert "public class Account {" in record["context"]


def test_plain_output_names_the_function(capsys):
    code, out, _ = run(capsys, "focal", str(EXAMPLE), "--line", "22")
    assert code == 0
    assert out.splitlines()[0] == "Account.withdraw (method, lines 21-25)"


def test_no_function_there_exits_1_with_one_line(capsys):
    code, out, err = run(capsys, "focal", str(EXAMPLE), "--line", "1")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and "no function or method here" in err


@pytest.mark.parametrize(
    "make, argv_line, expected",
    [
        (lambda d: d / "missing.py", "1", "no such file"),
        (lambda d: d, "1", "is a directory"),
        (lambda d: _write(d / "blob.py", b"\x00\x01\x02binary"), "1", "binary"),
        (lambda d: _write(d / "latin.py", "def f():\n    return 'caf\xe9'\n".encode("latin-1")), "1", "not UTF-8"),
        (lambda d: _write(d / "notes.txt", b"def f(): pass\n"), "1", "unsupported file type"),
        (lambda d: _write(d / "short.py", b"def f():\n    pass\n"), "40", "past the end"),
        (lambda d: _write(d / "short.py", b"def f():\n    pass\n"), "0", "lines start at 1"),
        (lambda d: _fifo(d / "pipe.py"), "1", "not a regular file"),
        (lambda d: _symlink(d / "zero.py", "/dev/zero"), "1", "not a regular file"),
    ],
    ids=["missing", "directory", "binary", "not-utf8", "unsupported", "line-past-end", "line-zero", "fifo",
         "dev-zero"],
)
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, make, argv_line, expected):
    path = make(tmp_path)
    code, out, err = run(capsys, "focal", str(path), "--line", argv_line)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err


def _fifo(path):
    import os

    os.mkfifo(path)  # nobody writes to it: reading it would wait forever
    return path


def _symlink(path, target):
    path.symlink_to(target)
    return path


def test_bad_context_level_exits_2(capsys):
    code, _, err = run(capsys, "focal", str(EXAMPLE), "--line", "17", "--context", "everything")
    assert code == 2 and "fm+fc+c+m+f" in err


def test_empty_file_has_no_focal_method(capsys, tmp_path):
    code, _, err = run(capsys, "focal", str(_write(tmp_path / "empty.py", b"")), "--line", "1")
    assert code == 1 and "no function" in err


def test_syntax_errors_still_find_the_function(capsys, tmp_path):
    path = _write(tmp_path / "broken.py", b"def ok(x):\n    return x +\n\ndef other(:\n    pass\n")
    code, out, _ = run(capsys, "focal", str(path), "--line", "2", "--json")
    assert code == 0 and json.loads(out)["name"] == "ok"


def test_console_script_help_lists_subcommands():
    result = subprocess.run([sys.executable, "-m", "unitune", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "focal" in result.stdout
    result = subprocess.run([sys.executable, "-m", "unitune", "focal", "--help"], capture_output=True, text=True)
    assert "--context" in result.stdout and "1-based" in result.stdout


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_the_context_is_the_projects_setting_unless_the_flag_says_otherwise(capsys, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "unitune.toml").write_text('context = "fm"\n')
    source = project / "account.py"
    source.write_text(EXAMPLE.read_text())
    code, out, err = run(capsys, "focal", str(source), "--line", "17", "--json")
    assert code == 0, err
    assert "class Account:" not in json.loads(out)["context"]  # the focal method alone, as `generate` would use
    code, out, err = run(capsys, "focal", str(source), "--line", "17", "--json", "--context", "fm+fc")
    assert code == 0, err
    assert "class Account:" in json.loads(out)["context"]
