"""What unitune prints of text it did not write itself (adapter names and card fields, archive member
names, folder names, messages quoting them): control characters are shown as escapes, so nothing read
from a file can move the cursor, retitle or clear the terminal, or start a line of its own."""

from __future__ import annotations

import re

_CONTROLS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROLS_BUT_NEWLINE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str, keep_newlines: bool = False) -> str:
    """`text` with its control characters (C0, DEL, C1, the Unicode line separators) as `\\x1b`-style
    escapes; tabs stay, and newlines too with `keep_newlines` (text whose lines are unitune's own)."""
    pattern = _CONTROLS_BUT_NEWLINE if keep_newlines else _CONTROLS
    return pattern.sub(lambda match: match.group().encode("unicode_escape").decode("ascii"), text)
