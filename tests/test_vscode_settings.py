"""The VS Code extension's settings (`editors/vscode/package.json`, `src/settings.ts`) are the Python
settings schema's: every key, its default, its allowed values and its range (the extension's own
`node --test` suite checks the two files against each other)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from unitune import settings as schema

EXTENSION = Path(__file__).resolve().parents[1] / "editors" / "vscode"
CLIENT_KEYS = {"server", "trace"}  # the extension's own: how to start the server, protocol tracing
PROPERTIES = json.loads((EXTENSION / "package.json").read_text("utf-8"))["contributes"]["configuration"]["properties"]
FIELDS = {field.name: field for field in dataclasses.fields(schema.Settings)}


def test_the_same_keys():
    contributed = {name.removeprefix("unitune.").split(".")[0] for name in PROPERTIES}
    assert contributed - CLIENT_KEYS == set(FIELDS)


@pytest.mark.parametrize("key", sorted(FIELDS))
def test_each_setting_has_the_schemas_default_values_and_range(key):
    prop = PROPERTIES[f"unitune.{key}"]
    assert prop["default"] == FIELDS[key].default, key
    if key in schema.CHOICES:
        assert [value for value in prop["enum"] if value is not None] == list(schema.CHOICES[key]), key
    if key in schema.RANGES:
        assert (prop["minimum"], prop["maximum"]) == schema.RANGES[key], key


def test_settings_ts_has_the_schemas_keys_and_defaults():
    source = (EXTENSION / "src" / "settings.ts").read_text("utf-8")
    keys = re.search(r"SETTING_KEYS = \[(.*?)\]", source, re.S).group(1)
    assert re.findall(r"'(\w+)'", keys) == list(FIELDS)
    defaults = re.search(r"DEFAULTS[^=]*= \{(.*?)\};", source, re.S).group(1)
    for key, field in FIELDS.items():
        value = json.dumps(field.default).replace('"', "'")
        assert re.search(rf"\b{key}: {re.escape(value)},", defaults), f"{key}: {value} in settings.ts DEFAULTS"
