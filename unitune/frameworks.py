"""Test frameworks: the names unitune uses for them and which language each belongs to."""

from __future__ import annotations

from unitune.errors import BadSettingError
from unitune.languages import JAVA, PYTHON

PYTEST = "pytest"
UNITTEST = "unittest"
JUNIT5 = "junit5"
JUNIT4 = "junit4"
#: The frameworks unitune writes tests for (the `framework` setting).
FRAMEWORKS: tuple[str, ...] = (PYTEST, UNITTEST, JUNIT5, JUNIT4)
FRAMEWORKS_BY_LANGUAGE: dict[str, tuple[str, ...]] = {PYTHON: (PYTEST, UNITTEST), JAVA: (JUNIT5, JUNIT4)}
DEFAULT_FRAMEWORK: dict[str, str] = {PYTHON: PYTEST, JAVA: JUNIT5}
# Styles of existing tests that listing reports but unitune does not write: JUnit 3 (`TestCase`
# subclasses, run by JUnit 4) and TestNG.
JUNIT3 = "junit3"
TESTNG = "testng"


def parse_framework(text: str, language: str) -> str:
    """The test framework named by `text` for `language`, or `BadSettingError`."""
    framework = str(text).strip().lower()
    allowed = FRAMEWORKS_BY_LANGUAGE.get(language, ())
    if framework not in allowed:
        raise BadSettingError(f"framework {text!r} is not one of: {', '.join(allowed)} (for {language})")
    return framework
