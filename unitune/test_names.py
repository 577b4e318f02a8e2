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


def name_for_test(function: Function) -> str:
    """The name of a new test of `function`: `test_deposit` (Python), `testDeposit` (Java)."""
    if function.language == PYTHON:
        stem = snake_case(function.name)
        return f"test_{stem}" if stem else "test"
    return "test" + function.name[:1].upper() + function.name[1:]


def class_name_for_tests(function: Function) -> str:
    """The test class of `function`: `TestAccount` (Python), `AccountTest` (Java, outermost class)."""
    if function.language == PYTHON:
        subject = function.class_path[-1] if function.class_path else function.name
        return "Test" + "".join(part[:1].upper() + part[1:] for part in snake_case(subject).split("_"))
    return (function.class_path[0] if function.class_path else function.name) + "Test"
