"""`unitune doctor`'s sandbox check: whether `validate = "run"` works here, and why not."""

from __future__ import annotations

import argparse
import json
import os

import pytest

from unitune.assured import sandbox
from unitune.commands import doctor
from unitune.assured.sandbox import SandboxError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the sandbox needs a POSIX system")


def test_the_sandbox_check_runs_a_real_test(tmp_path):
    name, ok, detail = doctor._check_sandbox(tmp_path, "run")
    assert (name, ok) == ("sandbox", True), detail
    assert detail.startswith('validate = "run" works: a test passed in the sandbox in ')
    assert sandbox.project_python(tmp_path) in detail
    assert "coverage is not measured" not in detail  # coverage.py is a dev dependency


def test_the_sandbox_check_says_why_validate_run_does_not_work(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise SandboxError("the sandbox cannot run tests as `nobody` with /root/venv/bin/python: ...")

    monkeypatch.setattr(sandbox, "run_tests", refuse)
    name, ok, detail = doctor._check_sandbox(tmp_path, "run")
    assert (name, ok) == ("sandbox", False)  # the project validates by running: a missing need
    assert detail.startswith('validate = "run" does not work here: the sandbox cannot run tests as `nobody` with '
                             "/root/venv/bin/python: ... (the tests' interpreter is ")
    assert detail.endswith("generated tests will be checked for syntax only")
    assert doctor._check_sandbox(tmp_path, "syntax")[1] is True  # not needed there: reported, not failed


def test_a_test_that_does_not_pass_in_the_sandbox_is_reported_with_its_reason(tmp_path, monkeypatch):
    error = sandbox.SandboxResult(status="error", returncode=3, output=(
        "[unitune sandbox] cannot start the tests' interpreter /x/bin/python as nobody: [Errno 13] Permission denied\n"))
    monkeypatch.setattr(sandbox, "run_tests", lambda *args, **kwargs: error)
    name, ok, detail = doctor._check_sandbox(tmp_path, "run")
    assert not ok and "cannot start the tests' interpreter /x/bin/python as nobody" in detail


def test_doctor_reports_the_sandbox(tmp_path, monkeypatch, capsys):
    (tmp_path / "unitune.toml").write_text('validate = "run"\n')
    monkeypatch.setenv("UNITUNE_CONFIG", str(tmp_path / "no-user-config.toml"))
    monkeypatch.setattr(doctor, "_check_model", lambda model: ("model", True, model))
    doctor.run_doctor(argparse.Namespace(project=tmp_path, json=True))
    checks = {check["check"]: check for check in json.loads(capsys.readouterr().out)}
    assert checks["sandbox"]["ok"] is True, checks["sandbox"]
    assert checks["sandbox"]["detail"].startswith('validate = "run" works')


@pytest.mark.slow
def test_the_tests_run_with_the_projects_interpreter(tmp_path, monkeypatch):
    """The `python` setting, else an active virtual environment, else the project's .venv/ or venv/,
    else unitune's own interpreter; doctor says which and why."""
    import sys

    monkeypatch.delenv("VIRTUAL_ENV", raising=False)
    assert sandbox.which_python(tmp_path) == (sys.executable, "the interpreter unitune runs on")
    venv_python = tmp_path / "venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    # a stand-in for the project's own venv: it starts this interpreter, which has pytest (a symlink
    # would lose a virtual environment's pyvenv.cfg)
    venv_python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    venv_python.chmod(0o755)
    assert sandbox.which_python(tmp_path) == (str(venv_python), "the project's venv/")
    active = tmp_path / "active"
    (active / "bin").mkdir(parents=True)
    (active / "bin" / "python").symlink_to(sys.executable)
    monkeypatch.setenv("VIRTUAL_ENV", str(active))
    assert sandbox.which_python(tmp_path)[1] == "the active virtual environment ($VIRTUAL_ENV)"
    assert sandbox.which_python(tmp_path, "/opt/py/bin/python3") == ("/opt/py/bin/python3", "the `python` setting")

    monkeypatch.delenv("VIRTUAL_ENV")
    name, ok, detail = doctor._check_sandbox(tmp_path, "run")
    assert ok, detail
    assert f"run by {venv_python} (the project's venv/)" in detail


def test_doctor_checks_bitsandbytes_by_quantizing_a_layer(capfd):
    name, ok, detail = doctor._check_bitsandbytes()
    assert name == "bitsandbytes" and ok
    assert "8-bit and 4-bit work on cpu (a layer was quantized and run)" in detail
    captured = capfd.readouterr()
    assert "kernels" not in captured.err and "kernels" not in captured.out


def test_doctor_says_when_quantizing_fails(monkeypatch):
    import bitsandbytes

    def broken(*args, **kwargs):
        raise RuntimeError("no kernel for this CPU")

    monkeypatch.setattr(bitsandbytes.nn, "Linear8bitLt", broken)
    monkeypatch.setattr(bitsandbytes.nn, "Linear4bit", broken)
    name, ok, detail = doctor._check_bitsandbytes()
    assert "quantizing failed on cpu: 8-bit (RuntimeError), 4-bit (RuntimeError); quantization = none only" in detail


def test_doctor_names_the_user_the_tests_run_as_not_the_namespaces_root(monkeypatch):
    """For a user other than root the run is root only inside its own user namespace: doctor once said the
    tests ran "as root"."""
    import getpass

    monkeypatch.setattr(doctor.os, "getuid", lambda: 1000)
    assert doctor._tests_user({"uid": 0, "user": "root"}).startswith(f"{getpass.getuser()} (root only inside")
    assert doctor._tests_user({"uid": 65534, "user": "nobody"}) == "nobody"
