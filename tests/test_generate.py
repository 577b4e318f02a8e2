"""`unitune generate` end to end, from the command line, on a local model folder."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import EXISTING_PY_TESTS, EXISTING_PY_TESTS_WITH_PYTEST, JAVA_FOCAL, PY_FOCAL

from unitune.cli import main

EXPECTED_PY_TEST = 'def test_deposit():\n    account = Account("ada")\n    assert account.deposit(5) == 5\n'
# what the model wrote leaves deposit's guard unrun: a call with another argument reaches it
EXPECTED_RAISES_TEST = ('def test_deposit_raises_value_error():\n    account = Account("ada")\n'
                        '    # raised when the code was run (regression oracle)\n'
                        '    with pytest.raises(ValueError):\n        account.deposit(0)\n')
EXPECTED_PY_TESTS = EXPECTED_PY_TEST + "\n" + EXPECTED_RAISES_TEST


@pytest.fixture(autouse=True)
def isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("UNITUNE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("UNITUNE_CONFIG", str(tmp_path / "config.toml"))


def generate(capsys, project, focal, *extra):
    relative, line = focal
    code = main(["generate", str(project / relative), "--line", str(line), *extra])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_prints_the_generated_test(capsys, example_project, trained_base):
    code, out, err = generate(capsys, example_project, PY_FOCAL, "--model", str(trained_base))
    assert code == 0, err
    assert out == EXPECTED_PY_TESTS


@pytest.mark.slow
def test_write_creates_the_test_file_and_the_test_passes(capsys, example_project, trained_base):
    code, out, err = generate(capsys, example_project, PY_FOCAL, "--model", str(trained_base), "--write")
    assert code == 0, err
    test_file = example_project / "python" / "tests" / "test_account.py"
    assert out.strip() == str(test_file)
    text = test_file.read_text()
    assert "from bank.account import Account" in text and EXPECTED_PY_TEST in text and EXPECTED_RAISES_TEST in text
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
                         cwd=example_project / "python", capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout


@pytest.mark.slow
def test_write_into_an_existing_test_file_keeps_every_line(capsys, example_project, trained_base):
    test_file = example_project / "python" / "tests" / "test_account.py"
    test_file.parent.mkdir()
    existing = EXISTING_PY_TESTS
    test_file.write_text(existing)
    code, _, err = generate(capsys, example_project, PY_FOCAL, "--model", str(trained_base), "--write")
    assert code == 0, err
    text = test_file.read_text()
    assert text.startswith(EXISTING_PY_TESTS_WITH_PYTEST)  # nothing before or inside the old content changed
    # the new tests got names of their own, after what they check
    assert "def test_deposit_5(" in text and "def test_deposit_raises_value_error(" in text
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)],
                         cwd=example_project / "python", capture_output=True, text=True)
    assert run.returncode == 0 and "4 passed" in run.stdout, run.stdout + run.stderr


def test_java_new_test_file_has_package_imports_and_class(capsys, example_project, trained_base):
    code, out, err = generate(capsys, example_project, JAVA_FOCAL, "--model", str(trained_base), "--write")
    assert code == 0, err
    test_file = example_project / "java/src/test/java/com/example/bank/AccountTest.java"
    assert out.strip() == str(test_file)
    text = test_file.read_text()
    assert text.startswith("package com.example.bank;")
    assert "import org.junit.jupiter.api.Test;" in text
    assert "class AccountTest {" in text and "@Test" in text
    assert 'assertEquals(5, account.deposit(5));' in text
    from unitune.languages import parser_for

    assert not parser_for("java").parse(text.encode("utf-8")).root_node.has_error  # the whole file parses


@pytest.mark.slow
def test_json_outcome(capsys, example_project, trained_base):
    code, out, _ = generate(capsys, example_project, PY_FOCAL, "--model", str(trained_base), "--json")
    assert code == 0
    record = json.loads(out)
    assert record["function"] == "Account.deposit"
    assert record["framework"] == "pytest" and record["creates_file"] is True
    assert record["tests"][0]["name"] == "test_deposit" and record["tests"][0]["valid"] is True
    assert record["written"] is None and record["request_id"] and record["ok"] is True
    assert record["tests"][0]["adds"].startswith("covers 3/4 lines")  # validate = "run", the default


@pytest.mark.slow
def test_json_says_why_when_no_test_survives(capsys, example_project, tiny_base):
    """A random tiny model writes nothing usable: exit 1, and a JSON answer on stdout for scripts."""
    code, out, err = generate(capsys, example_project, PY_FOCAL, "--model", str(tiny_base), "--json")
    assert code == 1
    record = json.loads(out)
    assert record["ok"] is False and record["exit_code"] == 1 and "for Account.deposit" in record["error"]


@pytest.mark.parametrize("flags, message", [
    (["--candidates", "0"], "candidates = 0 must be a whole number from 1 to 64"),
    (["--validate", "maybe"], "validate = 'maybe' is not one of none, syntax, run"),
    (["--time-budget", "1"], "time_budget = 1 must be a whole number from 5 to 3600"),
    (["--column", "400"], "column 400 is past the end of line 17"),
])
def test_a_bad_flag_value_is_an_error(capsys, example_project, flags, message):
    code, out, err = generate(capsys, example_project, PY_FOCAL, *flags)
    assert code == 2 and out == "" and message in err


def test_verbose_after_the_command(capsys):
    from unitune.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["focal", "x.py", "--line", "1", "-v"]).verbose is True
    assert parser.parse_args(["-v", "focal", "x.py", "--line", "1"]).verbose is True
    assert parser.parse_args(["focal", "x.py", "--line", "1"]).verbose is False
    assert parser.parse_args(["adapters", "list", "-v"]).verbose is True


def test_missing_model_is_one_line_exit_2(capsys, example_project, tmp_path):
    code, out, err = generate(capsys, example_project, PY_FOCAL, "--model", str(tmp_path / "nope"))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "neither a folder" in err


def test_unknown_adapter_is_one_line_exit_2(capsys, example_project, trained_base):
    code, _, err = generate(capsys, example_project, PY_FOCAL, "--model", str(trained_base), "--adapter", "ghost")
    assert code == 2 and "no adapter named 'ghost'" in err and err.count("\n") == 1


def test_wrong_base_adapter_is_refused_naming_both(capsys, example_project, trained_base, peft_adapters, tiny_base):
    from unitune.adapters.card import AdapterCard, BaseModelRef, base_fingerprint
    from unitune.adapters.registry import AdapterRegistry
    from unitune.prompt import PROMPT_FORMAT_VERSION

    card = AdapterCard(name="for-tiny", method="lora", prompt_format_version=PROMPT_FORMAT_VERSION,
                       base_model=BaseModelRef("tiny-base", None, base_fingerprint(tiny_base)))
    AdapterRegistry(None).save(peft_adapters["lora"], "for-tiny", card)
    code, _, err = generate(capsys, example_project, PY_FOCAL, "--model", str(trained_base), "--adapter", "for-tiny")
    assert code == 2 and "tiny-base" in err and "trained-base" in err


@pytest.mark.slow
def test_adapter_of_the_same_base_is_used(capsys, example_project, trained_base, tmp_path):
    import tinymodels

    from unitune.adapters.card import AdapterCard, BaseModelRef, base_fingerprint
    from unitune.adapters.registry import AdapterRegistry
    from unitune.prompt import PROMPT_FORMAT_VERSION

    # an (IA)³ adapter at its identity initialisation: it must load and leave the output unchanged
    from peft import IA3Config, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(trained_base),
                           IA3Config(target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"],
                                     task_type="CAUSAL_LM"))
    model.save_pretrained(tmp_path / "ia3")
    card = AdapterCard(name="same", method="ia3", prompt_format_version=PROMPT_FORMAT_VERSION,
                       base_model=BaseModelRef("trained-base", None, base_fingerprint(trained_base)))
    AdapterRegistry(None).save(tmp_path / "ia3", "same", card)
    assert tinymodels  # the tiny models module is what built `trained_base`
    code, out, err = generate(capsys, example_project, PY_FOCAL, "--model", str(trained_base), "--adapter", "same")
    assert code == 0, err
    assert out == EXPECTED_PY_TESTS
    # the same adapter with its scales at zero silences the layers it adapts: what it writes (if anything)
    # is no longer the base model's test, so the adapter really is applied, not only found
    for parameter_name, parameter in model.named_parameters():
        if "ia3_l" in parameter_name:
            parameter.data.zero_()
    model.save_pretrained(tmp_path / "ia3-zero")
    card.name = "zeroed"
    AdapterRegistry(None).save(tmp_path / "ia3-zero", "zeroed", card)
    code, out, err = generate(capsys, example_project, PY_FOCAL, "--model", str(trained_base), "--adapter", "zeroed")
    assert (code, out) != (0, EXPECTED_PY_TESTS), err


def test_every_setting_has_a_generate_flag():
    """The README says flags can set every setting: each key of the schema has one (`adapter` too)."""
    from unitune.cli import build_parser
    from unitune.settings import KEYS

    generate = build_parser()._subparsers._group_actions[0].choices["generate"]
    flags = {option for action in generate._actions for option in action.option_strings}
    assert {"--" + key.replace("_", "-") for key in KEYS} <= flags


def test_a_missing_configured_adapter_names_the_file_that_asked_for_it(capsys, example_project):
    settings_file = example_project / "python" / "unitune.toml"
    settings_file.write_text('adapter = "gone"\n')
    code, out, err = generate(capsys, example_project, PY_FOCAL)
    assert code == 2 and out == ""
    assert "no adapter named 'gone'" in err and f"(the adapter is named by {settings_file})" in err


@pytest.mark.parametrize("where, message", [
    (("python/bank/missing.py", 1), "no such file"),
    (("python/bank/account.py", 999), "past the end"),
])
def test_json_answers_every_failure_that_exits_2(capsys, example_project, where, message):
    """A missing file or a line past the end exited 2 with nothing on stdout, though `--json` promises an
    answer for every failure."""
    code, out, err = generate(capsys, example_project, where, "--json")
    assert code == 2 and message in err
    record = json.loads(out)
    assert record == {"ok": False, "error": record["error"], "exit_code": 2} and message in record["error"]
