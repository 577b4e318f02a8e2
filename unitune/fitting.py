"""Fitting a prompt's text into a token budget without losing what a test is written from.

A prompt is the focal context, the test file's header and the test's opening (`unitune.prompt`). When
it is too long for the budget, the test's opening is never touched and the focal method is kept
whole; the lines dropped are those farthest from both the focal method and the end of the code (the
test file's header sits right before the opening), each dropped run replaced by one `...` comment so
the model sees that code was left out. Training (`unitune.training.data`) fits mined pairs this way
rather than dropping them; inference first lowers the context level (`adapters.request.fit_prompt`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from unitune.languages import JAVA
from unitune.project_context import CODE_UNDER_TEST

_ELISION = {JAVA: "// ..."}
_PYTHON_ELISION = "# ..."


def focal_span(lines: list[str], language: str, focal_name: str) -> tuple[int, int] | None:
    """[first, last] line numbers (0-based) of the focal method's definition in `lines`, or None. A
    prompt's project block comes first and may show a definition of the same name: the search starts
    after it."""
    name = re.escape(focal_name.rsplit(".", 1)[-1])
    pattern = re.compile(rf"\bdef\s+{name}\s*\(" if language != JAVA else rf"\b{name}\s*\(")
    marker = re.compile(rf"^(#|//) {CODE_UNDER_TEST}, ")
    start = next((number + 1 for number, line in enumerate(lines) if marker.match(line)), 0)
    for first, line in enumerate(lines[start:], start):
        if pattern.search(line) and not line.lstrip().startswith(("#", "//", "*")):
            return first, (_java_end if language == JAVA else _python_end)(lines, first)
    return None


def _python_end(lines: list[str], first: int) -> int:
    indent = len(lines[first]) - len(lines[first].lstrip())
    last = first
    for number in range(first + 1, len(lines)):
        line = lines[number]
        if not line.strip():
            continue
        if len(line) - len(line.lstrip()) <= indent and not line.lstrip().startswith((")", "]", "}")):
            break
        last = number
    return last


def _java_end(lines: list[str], first: int) -> int:
    depth, opened = 0, False
    for number in range(first, len(lines)):
        for char in lines[number]:
            if char == "{":
                depth, opened = depth + 1, True
            elif char == "}":
                depth -= 1
        if opened and depth <= 0 or (not opened and lines[number].rstrip().endswith(";")):
            return number
    return len(lines) - 1


def fit_code(code: str, language: str, focal_name: str, budget: int, count: Callable[[str], int],
             line_cost: Callable[[str], int] | None = None) -> str | None:
    """`code` (a prompt's text before the test's opening) with the fewest lines dropped for
    `count(result) <= budget`, keeping the focal method whole; None when even the focal method and
    the code's last line do not fit. `count` measures a whole prompt (a chat rendering costs more than
    its code); `line_cost` estimates one line (default: `count`)."""
    total = count(code)
    if total <= budget:
        return code
    lines = code.split("\n")
    span = focal_span(lines, language, focal_name) or (len(lines) - 1, len(lines) - 1)
    end = len(lines) - 1

    def distance(number: int) -> int:
        to_focal = 0 if span[0] <= number <= span[1] else min(abs(number - span[0]), abs(number - span[1]))
        return min(to_focal, end - number)

    order = sorted((n for n in range(len(lines)) if distance(n) > 0), key=lambda n: (-distance(n), n))
    costs = [(line_cost or count)(line + "\n") for line in lines]
    excess = total - budget
    dropped: set[int] = set()
    for number in order:  # drop the farthest lines until the estimate fits, then check the real count
        dropped.add(number)
        excess -= costs[number]
        if excess <= 0:
            text = _without(lines, dropped, language)
            if count(text) <= budget:
                return text
            excess = count(text) - budget
    return None


def _without(lines: list[str], dropped: set[int], language: str) -> str:
    kept: list[str] = []
    marker = _ELISION.get(language, _PYTHON_ELISION)
    for number, line in enumerate(lines):
        if number not in dropped:
            kept.append(line)
        elif number == 0 or number - 1 not in dropped:  # one marker per dropped run, at the run's indentation
            following = next((lines[n] for n in range(number, len(lines)) if lines[n].strip()), "")
            kept.append(following[: len(following) - len(following.lstrip())] + marker)
    return "\n".join(kept)
