"""Tidying the delivered tests (`unitune.adapters.assure_tidy`): the imports and notes the user reads."""

from __future__ import annotations

from unitune.adapters.assure_tidy import still_relevant, without_unused_imports
from unitune.adapters.postprocess import GeneratedTest

HEADER = "import pytest\nimport bank.account\nimport math\n\nfrom bank.account import Account\n"
# through the package, which re-exports its module's names (`semver.Version` of semver/version.py)
THROUGH_THE_PACKAGE = "def test_deposit():\n    assert bank.Account('a').deposit(5) == 5\n"


def test_an_import_of_the_focal_module_stays_while_a_test_reads_its_package():
    kept = [GeneratedTest("test_deposit", THROUGH_THE_PACKAGE, "python", True)]
    header = without_unused_imports(HEADER, ["import bank.account", "import math"], kept)
    assert header == "import pytest\nimport bank.account\n\nfrom bank.account import Account\n"


def test_the_note_about_an_added_import_stays_while_the_test_uses_it():
    notes = ["added `import bank.account`", "added `import math`"]
    assert still_relevant(notes, THROUGH_THE_PACKAGE) == ["added `import bank.account`"]
