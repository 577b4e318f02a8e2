"""What a new round is told when none of the tests of the round before survived: the most telling
reason, short (`failure_hint`), as a comment in the retry prompt (`failure_note`)."""

from __future__ import annotations

import pytest

from unitune.assured.delivery import failure_hint
from unitune.prompt import RETRY_PROMPT, RETRY_PROMPT_VERSION, failure_note


@pytest.mark.parametrize("reasons, expected", [
    (["asserts nothing", "does not call deposit"],
     "the test did not call deposit: the next one calls it and checks what it returns"),
    (["cut off before its end (line 3: syntax error at `cases = [`), and nothing that asserts was left"],
     "the test was too long and was cut off: the next one is short, a few direct assertions"),
    (["uses undefined names fp, msg"], "the test uses undefined names fp, msg: the next one uses only names the code "
                                       "defines"),
    (["failed when run: TypeError: expected string or bytes-like object, got 'bool' (nothing could be repaired)"],
     "the test failed when run: TypeError: expected string or bytes-like object, got 'bool' (nothing could be "
     "repaired)"),
])
def test_the_most_telling_reason_is_shown(reasons, expected):
    assert failure_hint(reasons, "deposit") == expected


def test_the_note_says_what_went_wrong_and_what_the_next_test_does():
    note = failure_note("python", failure_hint(["does not call deposit"], "deposit"))
    assert note == ("# A test written before was dropped: the test did not call deposit\n"
                    "# The next test calls it and checks what it returns.")
    assert failure_note("java", "the test failed when run: boom").startswith("// A test written before was dropped")


def test_a_retry_prompt_carries_the_note_before_the_test(bank_prompt_parts):
    from unitune.prompt import build_prompt

    file, function = bank_prompt_parts
    plain = build_prompt(file, function, framework="pytest", module_import="bank.account")
    retry = build_prompt(file, function, framework="pytest", module_import="bank.account",
                         failure="the test checked nothing: the next one asserts what deposit returns")
    assert (retry.kind, retry.version) == (RETRY_PROMPT, RETRY_PROMPT_VERSION)
    assert "# A test written before was dropped: the test checked nothing\n" in retry.text
    assert retry.text.endswith(plain.prefix) and retry.prefix == plain.prefix


@pytest.fixture
def bank_prompt_parts():
    from conftest import EXAMPLES, PY_FOCAL
    from unitune.focal import require_focal_at
    from unitune.source import SourceFile, cli_offset

    file = SourceFile.from_path(EXAMPLES / PY_FOCAL[0])
    return file, require_focal_at(file, cli_offset(file, PY_FOCAL[1], None))
