"""Settings: precedence of flags, project and user files; bad values reported, defaults kept."""

from __future__ import annotations

import pytest

from unitune.settings import DEFAULT_MODEL, Settings, load_settings, write_project_setting


@pytest.fixture(autouse=True)
def user_config(tmp_path, monkeypatch):
    path = tmp_path / "user" / "config.toml"
    path.parent.mkdir()
    monkeypatch.setenv("UNITUNE_CONFIG", str(path))
    return path


def test_defaults_without_any_file(tmp_path):
    loaded = load_settings(tmp_path)
    assert loaded.settings == Settings()
    assert loaded.settings.model == DEFAULT_MODEL and loaded.problems == []


def test_precedence_flag_over_project_over_user(tmp_path, user_config):
    user_config.write_text('model = "user/model"\ncandidates = 3\ndevice = "cpu"\n')
    (tmp_path / "unitune.toml").write_text('model = "project/model"\ncandidates = 2\n')
    loaded = load_settings(tmp_path, {"candidates": 5})
    assert loaded.settings.model == "project/model"
    assert loaded.settings.candidates == 5
    assert loaded.settings.device == "cpu"
    assert loaded.sources["device"] == str(user_config)


def test_pyproject_tool_table_wins_over_unitune_toml(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.unitune]\nadapter = "mine"\n')
    (tmp_path / "unitune.toml").write_text('adapter = "other"\n')
    assert load_settings(tmp_path).settings.adapter == "mine"


@pytest.mark.parametrize(
    "values, key, fragment",
    [
        ({"quantization": "3bit"}, "quantization", "is not one of auto, 4bit, 8bit, none"),
        ({"candidates": 0}, "candidates", "whole number from 1 to 64"),
        ({"candidates": "two"}, "candidates", "whole number"),
        ({"context": "all"}, "context", "fm+fc+c+m+f"),
        ({"trust_remote_code": "yes"}, "trust_remote_code", "true or false"),
        ({"colour": "red"}, "colour", "unknown setting"),
    ],
)
def test_bad_values_are_reported_and_defaults_used(tmp_path, values, key, fragment):
    loaded = load_settings(tmp_path, values)
    assert loaded.settings == Settings()
    assert len(loaded.problems) == 1
    assert key in loaded.problems[0] and fragment in loaded.problems[0]


def test_broken_project_file_is_reported_not_fatal(tmp_path):
    (tmp_path / "unitune.toml").write_text("model = \n")
    loaded = load_settings(tmp_path)
    assert loaded.settings == Settings() and "cannot read settings" in loaded.problems[0]


def test_write_project_setting_keeps_the_rest_of_pyproject(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\n\n[tool.unitune]\nmodel = "m"\n\n[tool.other]\nkey = 1\n')
    write_project_setting(tmp_path, "adapter", "team-lora")
    text = pyproject.read_text()
    assert '[tool.other]\nkey = 1' in text and 'name = "x"' in text
    assert load_settings(tmp_path).settings.adapter == "team-lora"
    write_project_setting(tmp_path, "adapter", "other")
    assert load_settings(tmp_path).settings.adapter == "other"
    assert text.count("adapter") == 1
    write_project_setting(tmp_path, "adapter", None)
    assert load_settings(tmp_path).settings.adapter is None


def test_write_project_setting_creates_unitune_toml(tmp_path):
    path = write_project_setting(tmp_path, "adapter", "x")
    assert path.name == "unitune.toml" and load_settings(tmp_path).settings.adapter == "x"


PROJECT = '[project]\nname = "x"  # keep me\n\n'


@pytest.mark.parametrize("document", [
    "# my project\n" + PROJECT + '[tool.unitune]  # unitune settings\nmodel = "m"  # the base\n',
    '# my project\ntool.unitune = { model = "m" }\n' + PROJECT,
    "# my project\n" + PROJECT + '[tool]\nunitune = { model = "m" }\n',
])
def test_write_project_setting_edits_any_toml_layout_keeping_comments(tmp_path, document):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(document)
    write_project_setting(tmp_path, "adapter", "team-lora")
    text = pyproject.read_text()
    assert "# my project" in text and 'name = "x"  # keep me' in text
    settings = load_settings(tmp_path).settings
    assert settings.adapter == "team-lora" and settings.model == "m"
    write_project_setting(tmp_path, "adapter", None)
    assert load_settings(tmp_path).settings.adapter is None and "team-lora" not in pyproject.read_text()


def test_settings_read_on_the_python_the_package_allows():
    """`requires-python` and the TOML reader agree: tomllib from 3.11, tomli before (a dependency)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    floor = re.search(r'requires-python = ">=3\.(\d+)"', (root / "pyproject.toml").read_text()).group(1)
    requirements = (root / "requirements.txt").read_text()
    assert int(floor) >= 11 or 'tomli==2.5.0; python_version < "3.11"' in requirements


def test_a_unitune_toml_shadowed_by_pyproject_is_reported(tmp_path):
    (tmp_path / "unitune.toml").write_text('adapter = "written-by-adapters-use"\n')
    (tmp_path / "pyproject.toml").write_text('[tool.unitune]\nmodel = "m"\n')
    loaded = load_settings(tmp_path)
    assert loaded.settings.adapter is None
    assert any("unitune.toml is ignored" in problem and "[tool.unitune], which wins" in problem
               for problem in loaded.problems)


def test_every_setting_has_a_flag_on_generate_and_a_bad_flag_value_is_refused(tmp_path, capsys):
    """The flags come from the settings schema: a new setting gets one without further code."""
    import argparse

    from unitune.commands.generate import add_generate_parser
    from unitune.cli import main
    from unitune.cli_options import flag_of, setting_overrides
    from unitune.settings import KEYS

    parser = argparse.ArgumentParser()
    add_generate_parser(parser.add_subparsers())
    help_text = " ".join(parser._subparsers._group_actions[0].choices["generate"].format_help().split())
    for key in KEYS:
        assert flag_of(key) in help_text and f"setting `{key}`" in help_text, key
    args = parser.parse_args(["generate", "a.py", "--line", "1", "--candidates", "3", "--trust-remote-code"])
    assert setting_overrides(args) == {"candidates": 3, "trust_remote_code": True}

    source = tmp_path / "a.py"
    source.write_text("def f():\n    return 1\n")
    assert main(["generate", str(source), "--line", "1", "--validate", "always"]) == 2
    assert "validate = 'always' is not one of none, syntax, run" in capsys.readouterr().err
