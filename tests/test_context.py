"""The focal context shown to the model at each level, for Python and Java."""

from pathlib import Path

import pytest

from unitune.code_spans import module_imports, signature
from unitune.context import (
    CONTEXT_LEVELS,
    DEFAULT_CONTEXT,
    parse_context_level,
    render_context,
)
from unitune.errors import BadSettingError
from unitune.focal import functions
from unitune.source import SourceFile

FIXTURES = Path(__file__).parent / "fixtures" / "context"

BANK_IMPORTS = (
    "from __future__ import annotations\n"
    "import logging\n"
    "from typing import TYPE_CHECKING\n"
    "from decimal import (Decimal, Context)\n"
    "import ujson as json\n"
    "import json\n"
)
DEPOSIT = (
    "    def deposit(self, amount: int) -> int:\n"
    '        """Add money."""\n'
    '        note = """\n'
    "kept as is\n"
    '"""\n'
    "        self.balance += amount\n"
    "        return self.balance\n"
)
SHAPES_HEADER = (
    "package com.example.shapes;\n"
    "\n"
    "import java.util.List;\n"
    "import static java.lang.Math.PI;\n"
    "\n"
    '@SuppressWarnings("unused") public class Shapes extends Base implements Comparable<Shapes> {\n'
    "\n"
)
CIRCLE_AREA = (
    "    @Deprecated\n"
    "    public static double circleArea(double radius) {\n"
    '        String s = "}"; // not a brace that counts\n'
    "        return PI * radius * radius;\n"
    "    }\n"
)


def load(name):
    file = SourceFile.from_path(FIXTURES / name)
    return file, {function.qualified_name: function for function in functions(file)}


@pytest.fixture(scope="module")
def bank():
    return load("bank.py")


@pytest.fixture(scope="module")
def shapes():
    return load("Shapes.java")


# -- levels --------------------------------------------------------------------------------------

def test_levels_are_the_methods2test_ones_and_default_is_the_richest():
    assert CONTEXT_LEVELS == ("fm", "fm+fc", "fm+fc+c", "fm+fc+c+m", "fm+fc+c+m+f")
    assert DEFAULT_CONTEXT == "fm+fc+c+m+f"


def test_level_parsing_ignores_case_and_spaces():
    assert parse_context_level(" FM + FC ") == "fm+fc"


def test_bad_level_names_the_value_and_the_allowed_ones():
    with pytest.raises(BadSettingError) as error:
        parse_context_level("fm+x")
    assert "'fm+x'" in str(error.value)
    assert "fm+fc+c+m+f" in str(error.value)


def test_render_rejects_a_bad_level(bank):
    file, found = bank
    with pytest.raises(BadSettingError):
        render_context(file, found["Account.deposit"], "everything")


# -- Python method in a class --------------------------------------------------------------------

def test_python_fm_is_the_method_alone_dedented(bank):
    file, found = bank
    assert render_context(file, found["Account.deposit"], "fm") == (
        "def deposit(self, amount: int) -> int:\n"
        '    """Add money."""\n'
        '    note = """\n'
        "kept as is\n"  # inside a multi-line string: left as it is
        '"""\n'
        "    self.balance += amount\n"
        "    return self.balance\n"
    )


def test_python_fm_fc_adds_imports_and_class_header(bank):
    file, found = bank
    assert render_context(file, found["Account.deposit"], "fm+fc") == (
        BANK_IMPORTS + "\n\nclass Account(object):\n" + DEPOSIT
    )


def test_python_constructor_level_adds_init_signature(bank):
    file, found = bank
    assert render_context(file, found["Account.deposit"], "fm+fc+c") == (
        BANK_IMPORTS + "\n\nclass Account(object):\n"
        "    def __init__(self, owner: str, balance: int = 0) -> None: ...\n\n" + DEPOSIT
    )


def test_python_method_level_adds_other_signatures_with_decorators(bank):
    file, found = bank
    text = render_context(file, found["Account.deposit"], "fm+fc+c+m")
    assert "    @property\n    def rich(self) -> bool: ...\n" in text
    # A multi-line signature with a comment is shown on one line, comment and trailing comma gone.
    assert text.endswith(DEPOSIT + "\n    def withdraw(self, amount: int) -> int: ...\n")
    assert "Ledger" not in text  # members of nested classes are not the focal class's


def test_python_fields_are_class_attributes_and_first_self_assignments(bank):
    file, found = bank
    text = render_context(file, found["Account.deposit"], "fm+fc+c+m+f")
    assert text.startswith(
        BANK_IMPORTS + "\n\nclass Account(object):\n"
        '    kind = "checking"\n'
        "    limit: int = 100\n"
        "    HUGE = ...\n"  # a value too long to show
        "\n"
        "    def __init__(self, owner: str, balance: int = 0) -> None:\n"
        "        self.owner = owner\n"
        "        self.balance = balance\n"
        "        self.history, self.tags = [], set()\n"
        "\n"
        "    @property\n"
    )
    assert "balance + 0" not in text  # only the first assignment of each attribute
    assert "ValueError" not in text


def test_python_focal_init_is_shown_in_full_once(bank):
    file, found = bank
    text = render_context(file, found["Account.__init__"], "fm+fc+c+m+f")
    assert text.count("def __init__") == 1
    assert '            raise ValueError("negative")\n' in text
    assert "    def deposit(self, amount: int) -> int: ...\n" in text


def test_python_nested_class_is_wrapped_in_every_enclosing_header(bank):
    file, found = bank
    assert render_context(file, found["Account.Ledger.add"], "fm+fc+c+m+f") == (
        BANK_IMPORTS + "\n\n"
        "class Account(object):\n"
        "    class Ledger:\n"
        "        entries = []\n"
        "\n"
        "        def add(self, entry):\n"
        '            """Append an entry.\n'
        "\n"
        "            Returns the new count.\n"
        '            """\n'
        "            self.entries.append(entry)\n"
        "            return len(self.entries)\n"
        "\n"
        "        def clear(self): ...\n"
    )


def test_python_docstrings_move_with_the_code(bank):
    file, found = bank
    assert render_context(file, found["Account.Ledger.add"], "fm") == (
        "def add(self, entry):\n"
        '    """Append an entry.\n'
        "\n"
        "    Returns the new count.\n"
        '    """\n'
        "    self.entries.append(entry)\n"
        "    return len(self.entries)\n"
    )


# -- Python top-level function -------------------------------------------------------------------

def test_python_top_level_function_has_no_class_part(bank):
    file, found = bank
    assert render_context(file, found["interest"], "fm+fc+c") == (
        BANK_IMPORTS + "\n\n"
        "def interest(balance: float, years: int = 1) -> float:\n"
        "    return balance * (1 + RATE) ** years\n"
    )


def test_python_top_level_function_gets_other_functions_and_constants(bank):
    file, found = bank
    assert render_context(file, found["interest"]) == (
        BANK_IMPORTS + "\n\n"
        "log = logging.getLogger(__name__)\n"
        "RATE = 0.05\n"
        "BANNER = ...\n"  # multi-line values are elided
        "\n\n"
        "def interest(balance: float, years: int = 1) -> float:\n"
        "    return balance * (1 + RATE) ** years\n"
        "\n\n"
        "async def fetch(url): ...\n"
        "\n\n"
        "def square(x): ...\n"  # a named lambda is shown as the function it is
    )


def test_module_imports_include_type_checking_and_try_blocks(bank):
    file, _ = bank
    assert module_imports(file) == BANK_IMPORTS.splitlines()


def test_signatures_are_one_per_function(bank):
    file, found = bank
    assert signature(file, found["Account.rich"]) == "@property\ndef rich(self) -> bool: ..."
    assert signature(file, found["fetch"]) == "async def fetch(url): ..."


# -- Java ----------------------------------------------------------------------------------------

def test_java_fm_is_the_method_with_its_annotations(shapes):
    file, found = shapes
    assert render_context(file, found["Shapes.circleArea"], "fm") == "\n".join(
        line[4:] for line in CIRCLE_AREA.split("\n")
    )


def test_java_levels_follow_the_study_layout(shapes):
    file, found = shapes
    focal = found["Shapes.circleArea"]
    assert render_context(file, focal, "fm+fc") == SHAPES_HEADER + CIRCLE_AREA + "\n}\n"
    constructors = "    public Shapes(List<String> names);\n    Shapes() throws java.io.IOException;\n"
    assert render_context(file, focal, "fm+fc+c") == SHAPES_HEADER + CIRCLE_AREA + "\n" + constructors + "\n}\n"
    methods = "    @Override public int compareTo(Shapes other);\n    abstract void draw();\n"
    assert render_context(file, focal, "fm+fc+c+m") == (
        SHAPES_HEADER + CIRCLE_AREA + "\n" + constructors + "\n" + methods + "\n}\n"
    )
    fields = (
        "    private final List<String> names;\n"
        "    protected int count = 0, limit;\n"
        "    private static final int[] TABLE;\n"  # initializer too long to show
    )
    assert render_context(file, focal, "fm+fc+c+m+f") == (
        SHAPES_HEADER + CIRCLE_AREA + "\n" + constructors + "\n" + methods + "\n" + fields + "\n}\n"
    )


def test_java_nested_class_members_are_the_innermost_class_only(shapes):
    file, found = shapes
    assert render_context(file, found["Shapes.Circle.diameter"]) == SHAPES_HEADER + (
        "    public static class Circle {\n"
        "\n"
        "        public double diameter() {\n"
        "            return 2 * radius;\n"
        "        }\n"
        "\n"
        "        public double circumference();\n"
        "\n"
        "        double radius;\n"
        "\n"
        "    }\n"
        "\n"
        "}\n"
    )


def test_java_record_shows_components_and_compact_constructor_as_canonical(shapes):
    file, found = shapes
    text = render_context(file, found["Shapes.Point.manhattan"])
    assert "    public record Point(int x, int y) implements Comparable<Point> {\n" in text
    assert "        public Point(int x, int y);\n" in text
    assert "        public int compareTo(Point other);\n" in text
    assert "        static final Point ORIGIN = new Point(0, 0);\n" in text


def test_java_top_level_record(shapes):
    file, found = load("Money.java")
    assert render_context(file, found["Money.plus"]) == (
        "package com.example.money;\n"
        "\n"
        "public record Money(long cents, String currency) {\n"
        "\n"
        "    public Money plus(Money other) {\n"
        "        return new Money(cents + other.cents, currency);\n"
        "    }\n"
        "\n"
        "    public Money(long cents, String currency);\n"
        "\n"
        '    public static final Money ZERO = new Money(0, "EUR");\n'
        "\n"
        "}\n"
    )


def test_java_enum_lists_its_constants_with_the_header(shapes):
    file, found = shapes
    text = render_context(file, found["Shapes.Color.code"], "fm+fc")
    assert text == SHAPES_HEADER + (
        "    enum Color {\n"
        "\n"
        '        RED("r"), GREEN("g"), BLUE("b");\n'
        "\n"
        "        String code() {\n"
        "            return letter.toUpperCase();\n"
        "        }\n"
        "\n"
        "    }\n"
        "\n"
        "}\n"
    )
    full = render_context(file, found["Shapes.Color.code"])
    assert "        Color(String letter);\n" in full
    assert "        private final String letter;\n" in full


def test_java_interface_default_method_with_abstract_methods_and_constants(shapes):
    file, found = shapes
    text = render_context(file, found["Shapes.Shape.describe"])
    assert "    interface Shape {\n\n        default String describe() {\n" in text
    assert "        double area();\n\n        int SIDES = 0;\n" in text


def test_java_signature_collapses_lines_and_drops_comments(shapes):
    file, found = shapes
    assert signature(file, found["Shapes.compareTo"]) == "@Override public int compareTo(Shapes other);"
    assert module_imports(file) == [
        "package com.example.shapes;", "import java.util.List;", "import static java.lang.Math.PI;",
    ]


def test_a_huge_module_renders_only_the_neighbours_a_prompt_can_show(monkeypatch):
    """A module of thousands of functions once had every one rendered as a signature (minutes and GBs for
    a 19 MB file) before all but the nearest few were thrown away."""
    from unitune import context
    from unitune.focal import require_focal_at

    source = SourceFile("".join(f"LIMIT_{i} = {i}\n\ndef f{i}(x):\n    return x + {i}\n\n" for i in range(3000)), "python")
    rendered = {"signatures": 0, "assignments": 0}
    real_signature, real_assignment = context.signature, context._python_assignment
    monkeypatch.setattr(context, "signature", lambda *a: rendered.__setitem__("signatures", rendered["signatures"] + 1)
                        or real_signature(*a))
    monkeypatch.setattr(context, "_python_assignment",
                        lambda *a: rendered.__setitem__("assignments", rendered["assignments"] + 1) or real_assignment(*a))
    focal = require_focal_at(source, source.text.index("def f1500("))
    text = render_context(source, focal, "fm+fc+c+m+f")
    assert "def f1499(x)" in text and "def f1501(x)" in text and "def f10(x)" not in text
    assert rendered["signatures"] <= context.MAX_MEMBERS and rendered["assignments"] <= context.MAX_MEMBERS
