"""Names of new tests and test classes.

Test names: Python `test_<focal name in snake case>`, Java `test<FocalName>` (a constructor's focal
name is its class name); a coverage round's test, for lines that raise, says so
(`test_parse_raises_value_error`, `testParseThrowsIllegalArgumentException`). Test classes: Python
`Test<Class>`, Java `<OutermostClass>Test`.
"""

from __future__ import annotations

import re

from unitune.focal import Function
from unitune.languages import PYTHON


def snake_case(name: str) -> str:
    """`getHTTPValue` -> `get_http_value`; leading and trailing underscores dropped."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name.strip("_"))
    return re.sub(r"_+", "_", spaced).lower()


def test_name_for(function: Function) -> str:
    """The name of a new test of `function`: `test_deposit` (Python), `testDeposit` (Java)."""
    if function.language == PYTHON:
        stem = snake_case(function.name)
        return f"test_{stem}" if stem else "test"
    return "test" + function.name[:1].upper() + function.name[1:]


#: The exception an unrun line raises: `raise ValueError(...)`, `throw new IllegalStateException(...)`.
_RAISED = re.compile(r"^\s*(?:raise\s+(?:[\w.]+\.)?(\w+)|throw\s+new\s+(?:[\w.]+\.)?(\w+))\b")


def coverage_test_name(function: Function, uncovered: list[str]) -> str:
    """The name of a coverage round's test of `function`, given the source lines no test runs yet.
    When some of them raise, the name says which exception (the one most of them raise, the first on
    a tie): a small model writes the body a name promises (`pytest.raises`, `assertThrows`) far more
    often than it follows a comment, and without it the round tends to write the first round's
    happy-path test again."""
    name = test_name_for(function)
    group = 1 if function.language == PYTHON else 2
    raised = [match.group(group) for match in map(_RAISED.match, uncovered) if match and match.group(group)]
    if not raised:
        return name
    exception = max(raised, key=raised.count)  # max keeps the first of equals
    return f"{name}_raises_{snake_case(exception)}" if function.language == PYTHON else f"{name}Throws{exception}"


def test_class_name(function: Function) -> str:
    """The test class of `function`: `TestAccount` (Python), `AccountTest` (Java, outermost class)."""
    if function.language == PYTHON:
        subject = function.class_path[-1] if function.class_path else function.name
        return "Test" + "".join(part[:1].upper() + part[1:] for part in snake_case(subject).split("_"))
    return (function.class_path[0] if function.class_path else function.name) + "Test"


# These helpers are named after what they make (tests), not tests themselves: keep pytest from
# collecting them wherever they are imported into a test module.
for _helper in (test_name_for, coverage_test_name, test_class_name):
    _helper.__test__ = False
del _helper
