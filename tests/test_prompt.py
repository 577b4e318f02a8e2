"""Prompt shape for each framework, training pairs, and where generation stops."""

from pathlib import Path

import pytest

from unitune.context import render_context
from unitune.errors import BadSettingError, UnituneError
from unitune.focal import functions
from unitune.prompt import (
    PROMPT_FORMAT_VERSION,
    StopScanner,
    build_prompt,
    parse_framework,
    split_test,
    test_class_name,
    test_has_ended,
    test_name_for,
    training_example,
)
from unitune.source import SourceFile

FIXTURES = Path(__file__).parent / "fixtures" / "context"

EXISTING_UNITTEST = '''import unittest
from unittest import mock

from bank import Account


class TestAccount(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.shared = 1

    def setUp(self):
        self.account = Account("ann", 10)

    def test_old(self):
        self.assertEqual(self.account.balance, 10)
'''

EXISTING_PYTEST = '''import pytest
from bank import interest


@pytest.fixture
def account():
    return Account("a")


def helper():
    return 1


def test_old(account):
    assert account
'''

EXISTING_JUNIT = '''package com.example.shapes;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

class ShapesTest {
    private Shapes shapes;

    @BeforeEach
    void setUp() {
        shapes = new Shapes(java.util.List.of("a"));
    }

    @Test
    void testOld() {
        assertNotNull(shapes);
    }
}
'''


def load(name):
    file = SourceFile.from_path(FIXTURES / name)
    return file, {function.qualified_name: function for function in functions(file)}


@pytest.fixture(scope="module")
def bank():
    return load("bank.py")


@pytest.fixture(scope="module")
def shapes():
    return load("Shapes.java")


def after_context(prompt, file, function):
    """The part of the prompt after the focal context: the test file header and the opening."""
    context = render_context(file, function, prompt.level).rstrip("\n")
    assert prompt.text.startswith(context)
    return prompt.text[len(context):]


# -- names and settings --------------------------------------------------------------------------

def test_test_names_follow_each_language_convention(bank, shapes):
    _, py = bank
    _, java = shapes
    assert test_name_for(py["Account.deposit"]) == "test_deposit"
    assert test_name_for(py["Account.__init__"]) == "test_init"
    assert test_name_for(java["Shapes.circleArea"]) == "testCircleArea"
    assert test_class_name(py["Account.Ledger.add"]) == "TestLedger"
    assert test_class_name(py["interest"]) == "TestInterest"
    assert test_class_name(java["Shapes.Point.manhattan"]) == "ShapesTest"


def test_framework_must_fit_the_language():
    assert parse_framework("JUnit5", "java") == "junit5"
    with pytest.raises(BadSettingError) as error:
        parse_framework("pytest", "java")
    assert "'pytest'" in str(error.value) and "junit5, junit4" in str(error.value)


# -- Python prompts ------------------------------------------------------------------------------

def test_pytest_new_file_prompt_ends_at_the_test_parameters(bank):
    file, found = bank
    prompt = build_prompt(file, found["Account.deposit"], framework="pytest", module_import="bank")
    assert after_context(prompt, file, found["Account.deposit"]) == (
        "\n\n\nimport pytest\n\nfrom bank import Account\n\n\ndef test_deposit("
    )
    assert (prompt.test_name, prompt.prefix, prompt.indent, prompt.def_indent) == (
        "test_deposit", "def test_deposit(", "    ", 0,
    )
    assert prompt.version == PROMPT_FORMAT_VERSION
    assert prompt.text.startswith("from __future__ import annotations\n")  # the default, richest context


def test_pytest_imports_the_function_itself_for_a_top_level_focal(bank):
    file, found = bank
    prompt = build_prompt(file, found["interest"], framework="pytest", module_import="pkg.bank", level="fm")
    assert prompt.text.endswith("from pkg.bank import interest\n\n\ndef test_interest(")


def test_pytest_existing_file_keeps_imports_and_fixtures_only(bank):
    file, found = bank
    prompt = build_prompt(
        file, found["Account.deposit"], framework="pytest", module_import="bank",
        existing_test_source=EXISTING_PYTEST, level="fm",
    )
    assert after_context(prompt, file, found["Account.deposit"]) == (
        "\n\n\nimport pytest\nfrom bank import interest\nfrom bank import Account\n"  # missing import added
        "\n\n@pytest.fixture\ndef account():\n    return Account(\"a\")\n"
        "\n\ndef test_deposit("
    )


def test_unittest_new_file_prompt_is_a_method_of_a_testcase(bank):
    file, found = bank
    prompt = build_prompt(file, found["Account.deposit"], framework="unittest", module_import="bank", level="fm")
    assert after_context(prompt, file, found["Account.deposit"]) == (
        "\n\n\nimport unittest\n\nfrom bank import Account\n\n\n"
        "class TestAccount(unittest.TestCase):\n"
        "    def test_deposit(self"
    )
    assert (prompt.indent, prompt.def_indent, prompt.test_class) == ("        ", 4, "TestAccount")


def test_unittest_existing_file_keeps_class_attributes_and_set_up(bank):
    file, found = bank
    prompt = build_prompt(
        file, found["Account.deposit"], framework="unittest", module_import="bank",
        existing_test_source=EXISTING_UNITTEST, level="fm",
    )
    assert after_context(prompt, file, found["Account.deposit"]) == (
        "\n\n\nimport unittest\nfrom unittest import mock\nfrom bank import Account\n\n\n"
        "class TestAccount(unittest.TestCase):\n"
        "    maxDiff = None\n"
        "\n"
        "    @classmethod\n"
        "    def setUpClass(cls):\n"
        "        cls.shared = 1\n"
        "\n"
        "    def setUp(self):\n"
        '        self.account = Account("ann", 10)\n'
        "\n"
        "    def test_deposit(self"
    )
    assert "test_old" not in prompt.text  # other tests are not part of the header


# -- Java prompts --------------------------------------------------------------------------------

def test_junit5_new_file_prompt_mirrors_the_study(shapes):
    file, found = shapes
    prompt = build_prompt(file, found["Shapes.circleArea"], framework="junit5", module_import=None, level="fm+fc")
    assert after_context(prompt, file, found["Shapes.circleArea"]) == (
        "\n\npackage com.example.shapes;\n\n"
        "import org.junit.jupiter.api.Test;\n\n"
        "import static org.junit.jupiter.api.Assertions.*;\n\n"
        "class ShapesTest {\n\n"
        "    @Test\n"
        "    public void testCircleArea() throws Exception {\n"
    )
    assert (prompt.indent, prompt.def_indent) == ("        ", 4)
    assert prompt.text.endswith("}\n\n}\n\npackage com.example.shapes;" + prompt.text.split("package com.example.shapes;")[-1])


def test_junit4_differs_by_imports_and_a_public_class(shapes):
    file, found = shapes
    prompt = build_prompt(
        file, found["Shapes.circleArea"], framework="junit4", module_import="com.example.shapes.Shapes", level="fm",
    )
    assert after_context(prompt, file, found["Shapes.circleArea"]) == (
        "\n\npackage com.example.shapes;\n\n"
        "import org.junit.Test;\nimport com.example.shapes.Shapes;\n\n"
        "import static org.junit.Assert.*;\n\n"
        "public class ShapesTest {\n\n"
        "    @Test\n"
        "    public void testCircleArea() throws Exception {\n"
    )


def test_junit_existing_file_keeps_fields_and_set_up(shapes):
    file, found = shapes
    prompt = build_prompt(
        file, found["Shapes.circleArea"], framework="junit5", module_import=None,
        existing_test_source=EXISTING_JUNIT, level="fm",
    )
    assert after_context(prompt, file, found["Shapes.circleArea"]) == (
        "\n\npackage com.example.shapes;\n\n"
        "import org.junit.jupiter.api.BeforeEach;\nimport org.junit.jupiter.api.Test;\n\n"
        "class ShapesTest {\n\n"
        "    private Shapes shapes;\n\n"
        "    @BeforeEach\n"
        "    void setUp() {\n"
        '        shapes = new Shapes(java.util.List.of("a"));\n'
        "    }\n\n"
        "    @Test\n"
        "    public void testCircleArea() throws Exception {\n"
    )


# -- training pairs ------------------------------------------------------------------------------

def test_split_python_test_keeps_self_in_the_opening():
    opening, body = split_test("    @mark\n    def test_x(self, tmp_path):\n        assert tmp_path\n", "python")
    assert opening == "    @mark\n    def test_x(self"
    assert body == ", tmp_path):\n        assert tmp_path\n"


def test_split_reindents_without_touching_multiline_strings():
    source = '    def test_x(self):\n        s = """\nabc\n    """\n        assert s\n'
    assert split_test(source, "python", indent="") == ("def test_x(self", '):\n    s = """\nabc\n    """\n    assert s\n')


def test_split_java_test_at_the_opening_brace():
    opening, body = split_test("    @Test\n    void testA() {\n        assertEquals(1, f());\n    }\n", "java")
    assert opening == "    @Test\n    void testA() {\n"
    assert body == "        assertEquals(1, f());\n    }"
    one_liner = split_test("    @Test void testB() { g(); }", "java")
    assert one_liner == ("    @Test void testB() {\n", "        g(); }")


def test_training_pair_has_the_shape_of_an_inference_prompt(bank):
    file, found = bank
    focal = found["interest"]
    test = "def test_interest():\n    assert interest(100, 0) == 100\n"
    prompt, completion = training_example(file, focal, test, framework="pytest", module_import="bank")
    inference = build_prompt(file, focal, framework="pytest", module_import="bank")
    assert prompt == inference.text
    assert completion == "):\n    assert interest(100, 0) == 100\n"
    assert test_has_ended("python", completion + "def test_next():\n") == len(completion)


def test_training_pair_for_a_unittest_method_and_a_junit_test(bank, shapes):
    file, found = bank
    test = "    def test_deposit(self):\n        self.assertEqual(Account('a').deposit(1), 1)\n"
    prompt, completion = training_example(
        file, found["Account.deposit"], test, framework="unittest", module_import="bank",
        existing_test_source=EXISTING_UNITTEST,
    )
    assert prompt == build_prompt(
        file, found["Account.deposit"], framework="unittest", module_import="bank",
        existing_test_source=EXISTING_UNITTEST,
    ).text
    assert completion == "):\n        self.assertEqual(Account('a').deposit(1), 1)\n"

    java_file, java = shapes
    java_test = "    @Test\n    public void testCircleArea() throws Exception {\n        assertEquals(0.0, Shapes.circleArea(0));\n    }\n"
    prompt, completion = training_example(java_file, java["Shapes.circleArea"], java_test, framework="junit5", module_import=None)
    assert prompt == build_prompt(java_file, java["Shapes.circleArea"], framework="junit5", module_import=None).text
    assert completion == "        assertEquals(0.0, Shapes.circleArea(0));\n    }"
    assert test_has_ended("java", completion + "\n\n    @Test") == len(completion)


# -- stop rule: Python ---------------------------------------------------------------------------

def ends(text, indent=0, language="python"):
    """What `test_has_ended` keeps, checking that feeding character by character agrees."""
    end = test_has_ended(language, text, indent)
    scanner = StopScanner(language, indent)
    incremental = None
    for char in text:
        incremental = scanner.feed(char)
        if incremental is not None:
            break
    assert incremental == end
    return None if end is None else text[:end]


def test_python_test_ends_at_a_dedent_and_drops_trailing_blank_lines():
    assert ends("):\n    x = 1\n\n    y = 2\n\n\ndef test_next():\n") == "):\n    x = 1\n\n    y = 2\n"


def test_python_test_has_not_ended_while_the_body_goes_on():
    assert ends("):\n    x = 1\n\n    y = 2\n") is None
    assert ends("):\n    x = 1\n   ") is None  # indentation alone decides nothing yet


def test_python_dedented_line_inside_a_triple_quoted_string_does_not_end_the_test():
    text = '):\n    s = """\nnot the end\n"""\n    t = \'\'\'\nalso not\n\'\'\'\n    assert s\nprint(1)\n'
    assert ends(text) == text[: text.index("print")]


def test_python_brackets_continuations_and_multiline_parameters_do_not_end_the_test():
    text = "\n    tmp_path,\n):\n    x = (1,\n2)\n    y = 1 + \\\n2\n    assert x\nz = 3\n"
    assert ends(text) == text[: text.index("z = 3")]


def test_python_quotes_in_comments_and_strings_do_not_confuse_the_scanner():
    text = "):\n    a = 'x'  # it's \"\"\"\n    b = \"\"\"'''\"\"\"\n    c = \"\\\"\"\nZ\n"
    assert ends(text) == text[: text.index("Z")]


def test_python_comment_lines_do_not_end_a_test_but_a_trailing_run_is_left_out():
    assert ends("):\n    assert 1\n# note\n    assert 2\n") is None
    assert ends("):\n    assert 1\n\n# section\n\ndef test_b():\n") == "):\n    assert 1\n"


def test_python_method_test_ends_at_the_next_method():
    assert ends("):\n        assert 1\n\n    def test_b(self):\n", indent=4) == "):\n        assert 1\n"


def test_stop_scanner_handles_pieces_split_inside_triple_quotes():
    scanner = StopScanner("python", 0)
    for piece in ['):\n    s = "', '"', '"\nx\n"', '""\n', "    pass\n", "d", "ef"]:
        end = scanner.feed(piece)
    assert end == len('):\n    s = """\nx\n"""\n    pass\n')


# -- stop rule: Java -----------------------------------------------------------------------------

def test_java_test_ends_when_the_method_brace_closes():
    text = (
        '        String s = "}";\n'
        "        char c = '}';\n"
        "        char d = '\\'';\n"
        "        // }\n"
        "        /* } */\n"
        '        String t = """\n   }"}\n""";\n'
        "        if (x) { y(); }\n"
        "    }\n\n    @Test"
    )
    assert ends(text, language="java") == text[: text.index("    }\n\n") + 5]


def test_java_test_has_not_ended_with_open_braces():
    assert ends("        if (x) {\n            y();\n        }\n", language="java") is None


def test_prompt_turns_a_completion_into_the_whole_test(bank, shapes):
    file, found = bank
    prompt = build_prompt(file, found["interest"], framework="pytest", module_import="bank", level="fm")
    assert prompt.test_source("):\n    assert interest(1) > 1\n\n\ndef test_other():\n    pass\n") == (
        "def test_interest():\n    assert interest(1) > 1\n"
    )
    java_file, java = shapes
    prompt = build_prompt(java_file, java["Shapes.circleArea"], framework="junit5", module_import=None, level="fm")
    scanner = prompt.stop_scanner()
    completion = "        assertEquals(0.0, Shapes.circleArea(0));\n    }\n}\n"
    assert scanner.feed(completion) == completion.index("}") + 1
    assert prompt.test_source(completion) == (
        "    @Test\n    public void testCircleArea() throws Exception {\n"
        "        assertEquals(0.0, Shapes.circleArea(0));\n    }\n"
    )


def test_split_refuses_source_without_a_test_function():
    with pytest.raises(UnituneError) as error:
        split_test("x = 1\n", "python")
    assert "x = 1" in str(error.value)


def test_java_class_in_the_default_package_is_not_imported(tmp_path):
    from unitune.focal import functions
    from unitune.prompt import test_file_header
    from unitune.source import SourceFile

    file = SourceFile("class Solution {\n    int twice(int x) { return 2 * x; }\n}\n", "java", tmp_path / "Solution.java")
    header = test_file_header("java", "junit5", functions(file)[0], file, "Solution", None)
    assert "import Solution;" not in header and "import org.junit.jupiter.api.Test;" in header
