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
    end_of_test,
    training_example,
)
from unitune.source import SourceFile
from unitune.test_names import class_name_for_tests, name_for_test

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
    assert name_for_test(py["Account.deposit"]) == "test_deposit"
    assert name_for_test(py["Account.__init__"]) == "test_init"
    assert name_for_test(java["Shapes.circleArea"]) == "testCircleArea"
    assert class_name_for_tests(py["Account.Ledger.add"]) == "TestLedger"
    assert class_name_for_tests(py["interest"]) == "TestInterest"
    assert class_name_for_tests(java["Shapes.Point.manhattan"]) == "ShapesTest"


def test_framework_must_fit_the_language():
    assert parse_framework("JUnit5", "java") == "junit5"
    with pytest.raises(BadSettingError) as error:
        parse_framework("pytest", "java")
    assert "'pytest'" in str(error.value) and "junit5, junit4" in str(error.value)


# -- Python prompts ------------------------------------------------------------------------------

def test_pytest_new_file_prompt_ends_with_the_whole_def_line(bank):
    """Without fixtures to ask for, the test takes no parameters: the model writes only the body."""
    file, found = bank
    prompt = build_prompt(file, found["Account.deposit"], framework="pytest", module_import="bank")
    assert after_context(prompt, file, found["Account.deposit"]) == (
        "\n\n\nimport pytest\n\nfrom bank import Account\n\n\ndef test_deposit():\n"
    )
    assert (prompt.test_name, prompt.prefix, prompt.indent, prompt.def_indent, prompt.in_signature) == (
        "test_deposit", "def test_deposit():\n", "    ", 0, False,
    )
    assert prompt.version == PROMPT_FORMAT_VERSION
    assert prompt.text.startswith("from __future__ import annotations\n")  # the default, richest context


def test_pytest_imports_the_function_itself_for_a_top_level_focal(bank):
    file, found = bank
    prompt = build_prompt(file, found["interest"], framework="pytest", module_import="pkg.bank", level="fm")
    assert prompt.text.endswith("from pkg.bank import interest\n\n\ndef test_interest():\n")


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
    assert prompt.in_signature  # the model may ask for the fixture


def test_unittest_new_file_prompt_is_a_method_of_a_testcase(bank):
    file, found = bank
    prompt = build_prompt(file, found["Account.deposit"], framework="unittest", module_import="bank", level="fm")
    assert after_context(prompt, file, found["Account.deposit"]) == (
        "\n\n\nimport unittest\n\nfrom bank import Account\n\n\n"
        "class TestAccount(unittest.TestCase):\n"
        "    def test_deposit(self):\n"
    )
    assert (prompt.indent, prompt.def_indent, prompt.test_class, prompt.in_signature) == (
        "        ", 4, "TestAccount", False,
    )


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
        "    def test_deposit(self):\n"
    )
    assert "test_old" not in prompt.text  # other tests are not part of the header


PYTEST_CLASS_WITH_FIXTURE = '''from pytest import fixture

from bank import Account


class TestAccount:
    @fixture(scope="class")
    def account(self):
        return Account("a")

    def test_old(self, account):
        assert account
'''


def test_pytest_prompt_leaves_the_parameters_open_where_the_test_file_has_fixtures(bank):
    """Only a test file with fixtures ends the prompt inside `def test_x(`, so the model can use them."""
    file, found = bank
    prompt = build_prompt(
        file, found["Account.deposit"], framework="pytest", module_import="bank",
        existing_test_source=EXISTING_PYTEST, level="fm",
    )
    assert (prompt.prefix, prompt.in_signature, prompt.def_indent) == ("def test_deposit(", True, 0)
    completion = "account):\n    assert account.deposit(5) == 5\n\n\ndef test_other():\n"
    assert prompt.test_source(completion) == "def test_deposit(account):\n    assert account.deposit(5) == 5\n"

    in_class = build_prompt(
        file, found["Account.deposit"], framework="pytest", module_import="bank",
        existing_test_source=PYTEST_CLASS_WITH_FIXTURE, test_class="TestAccount", level="fm",
    )
    assert in_class.text.endswith('        return Account("a")\n\n    def test_deposit(self')
    assert (in_class.prefix, in_class.in_signature, in_class.def_indent) == ("    def test_deposit(self", True, 4)
    completion = ", account):\n        assert account.deposit(5) == 5\n\n    def test_other(self):\n"
    assert in_class.test_source(completion) == (
        "    def test_deposit(self, account):\n        assert account.deposit(5) == 5\n"
    )


def test_python_prompt_closes_the_def_line_where_no_fixture_is_shown(bank):
    file, found = bank
    no_fixtures = EXISTING_PYTEST.replace("@pytest.fixture\n", "")  # `account` is a plain helper now
    prompt = build_prompt(
        file, found["Account.deposit"], framework="pytest", module_import="bank",
        existing_test_source=no_fixtures, level="fm",
    )
    assert prompt.text.endswith("\n\n\ndef test_deposit():\n") and not prompt.in_signature
    assert "def account():" not in prompt.text  # helpers are not part of the header

    in_class = build_prompt(
        file, found["Account.deposit"], framework="pytest", module_import="bank", test_class="TestAccount", level="fm",
    )
    assert in_class.text.endswith("\n\n\nclass TestAccount:\n    def test_deposit(self):\n")
    assert (in_class.in_signature, in_class.def_indent, in_class.indent) == (False, 4, "        ")

    # unittest methods cannot take fixtures, even where the test file defines some
    unittest_with_fixture = EXISTING_UNITTEST.replace("\n\nclass", "\n\n@pytest.fixture\ndef account():\n    return 1\n\n\nclass")
    prompt = build_prompt(
        file, found["Account.deposit"], framework="unittest", module_import="bank",
        existing_test_source=unittest_with_fixture, level="fm",
    )
    assert "@pytest.fixture" in prompt.text
    assert prompt.text.endswith("    def test_deposit(self):\n") and not prompt.in_signature


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


@pytest.mark.parametrize("source, opening, completion", [
    (  # no parameters: the whole `def` line is the opening, the body the completion
        "def test_x():\n    assert f()\n",
        "def test_x():\n", "    assert f()\n",
    ),
    (
        "    def test_x(self):\n        assert f()\n",
        "    def test_x(self):\n", "        assert f()\n",
    ),
    (  # decorators, a return annotation and a comment stay with the `def` line
        "@pytest.mark.slow\ndef test_x() -> None:  # slow\n    assert f()\n",
        "@pytest.mark.slow\ndef test_x() -> None:  # slow\n", "    assert f()\n",
    ),
    (  # a fixture parameter: the model is to write the parameters, as a fixture prompt asks it to
        "def test_x(tmp_path):\n    assert tmp_path\n",
        "def test_x(", "tmp_path):\n    assert tmp_path\n",
    ),
    (
        "    def test_x(self, tmp_path):\n        assert tmp_path\n",
        "    def test_x(self", ", tmp_path):\n        assert tmp_path\n",
    ),
    (  # a multi-line signature and a comment before the first statement
        "    def test_x(\n        self,\n    ):\n        # arrange\n        x = f()\n\n        assert x\n",
        "    def test_x(\n        self,\n    ):\n", "        # arrange\n        x = f()\n\n        assert x\n",
    ),
    (
        "def test_x(\n    tmp_path,  # a fixture\n) -> None:\n    # arrange\n    assert tmp_path\n",
        "def test_x(", "\n    tmp_path,  # a fixture\n) -> None:\n    # arrange\n    assert tmp_path\n",
    ),
])
def test_split_python_test_opens_like_a_new_test(source, opening, completion):
    assert split_test(source, "python") == (opening, completion)
    # The stop rule for that opening ends the completion exactly where the developer's test ended.
    indent = len(source) - len(source.lstrip(" "))
    following = completion + "\n\n" + " " * indent + "def test_y():\n    pass\n"
    in_signature = not opening.endswith("\n")
    assert end_of_test("python", following, indent, in_signature) == len(completion)


def test_split_parameterless_test_reindented_for_a_class():
    source = "def test_x():\n    # why\n    assert f()\n"
    assert split_test(source, "python", indent="    ") == ("    def test_x():\n", "        # why\n        assert f()\n")


def test_training_pair_for_a_test_with_a_fixture_matches_the_fixture_prompt(bank):
    file, found = bank
    test = "def test_deposit(account):\n    assert account.deposit(1) == 1\n"
    prompt, completion = training_example(
        file, found["Account.deposit"], test, framework="pytest", module_import="bank",
        existing_test_source=EXISTING_PYTEST,
    )
    inference = build_prompt(
        file, found["Account.deposit"], framework="pytest", module_import="bank", existing_test_source=EXISTING_PYTEST,
    )
    assert prompt == inference.text and prompt.endswith("\n\n\ndef test_deposit(")
    assert completion == "account):\n    assert account.deposit(1) == 1\n"
    assert inference.test_source(completion + "\n\ndef test_other():\n") == test


def test_training_pair_without_parameters_in_a_fixture_file_stays_open_like_inference(bank):
    """Inference leaves the parameter list open where the header shows fixtures; training must too, or
    the model would only ever see that open form followed by a fixture it then invents."""
    file, found = bank
    test = "def test_deposit():\n    assert Account('a').deposit(1) == 1\n"
    prompt, completion = training_example(
        file, found["Account.deposit"], test, framework="pytest", module_import="bank",
        existing_test_source=EXISTING_PYTEST,
    )
    assert prompt.endswith("\n\n\ndef test_deposit(")
    assert completion == "):\n    assert Account('a').deposit(1) == 1\n"


def test_split_reindents_without_touching_multiline_strings():
    source = '    def test_x(self):\n        s = """\nabc\n    """\n        assert s\n'
    assert split_test(source, "python", indent="") == ("def test_x(self):\n", '    s = """\nabc\n    """\n    assert s\n')


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
    assert completion == "    assert interest(100, 0) == 100\n"
    assert end_of_test("python", completion + "def test_next():\n", in_signature=False) == len(completion)
    assert inference.test_source(completion + "def test_next():\n") == test


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
    assert completion == "        self.assertEqual(Account('a').deposit(1), 1)\n"

    java_file, java = shapes
    java_test = "    @Test\n    public void testCircleArea() throws Exception {\n        assertEquals(0.0, Shapes.circleArea(0));\n    }\n"
    prompt, completion = training_example(java_file, java["Shapes.circleArea"], java_test, framework="junit5", module_import=None)
    assert prompt == build_prompt(java_file, java["Shapes.circleArea"], framework="junit5", module_import=None).text
    assert completion == "        assertEquals(0.0, Shapes.circleArea(0));\n    }"
    assert end_of_test("java", completion + "\n\n    @Test") == len(completion)


# -- stop rule: Python ---------------------------------------------------------------------------

def ends(text, indent=0, language="python", in_signature=True):
    """What `end_of_test` keeps, checking that feeding character by character agrees."""
    end = end_of_test(language, text, indent, in_signature)
    scanner = StopScanner(language, indent, in_signature)
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


# A closed opening (`def test_x():` and a newline): the completion is the body, bracket depth 0.

def test_python_body_ends_at_a_dedented_def_and_drops_trailing_blank_lines():
    text = "    x = 1\n\n    y = 2\n\n\ndef test_other():\n    pass\n"
    assert ends(text, in_signature=False) == "    x = 1\n\n    y = 2\n"
    assert ends("        assert 1\n\n    def test_b(self):\n", indent=4, in_signature=False) == "        assert 1\n"


def test_python_body_has_not_ended_while_it_goes_on():
    assert ends("    x = 1\n\n    y = 2\n", in_signature=False) is None
    assert ends("\n    # arrange\n    x = 1\n", in_signature=False) is None  # a blank line first is fine
    assert ends("    x = 1\n   ", in_signature=False) is None  # indentation alone decides nothing yet


def test_python_body_dedented_line_inside_brackets_does_not_end_the_test():
    text = "    x = (1,\n2)\n    y = [\n  3,\n]\n    assert f(x,\ny)\ndef test_other():\n"
    assert ends(text, in_signature=False) == text[: text.index("def test_other")]
    text = '    s = """\nnot the end\n"""\n    t = 1 + \\\n2\n    assert s\nz = 3\n'
    assert ends(text, in_signature=False) == text[: text.index("z = 3")]


def test_python_body_comment_lines_do_not_end_it_but_a_trailing_run_is_left_out():
    assert ends("    assert 1\n# note\n    assert 2\n", in_signature=False) is None
    assert ends("    assert 1\n\n# section\n\ndef test_b():\n", in_signature=False) == "    assert 1\n"


def test_python_body_that_starts_dedented_is_empty():
    assert ends("def test_other():\n    pass\n", in_signature=False) == ""


def test_java_ignores_in_signature():
    text = "        f();\n    }\n\n    @Test"
    assert ends(text, indent=4, language="java", in_signature=False) == ends(text, indent=4, language="java")


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
    completion = "    assert interest(1) > 1\n    assert interest(\n2) > 2\n\n\ndef test_other():\n    pass\n"
    assert prompt.stop_scanner().feed(completion) == completion.index("\n\n\ndef") + 1
    assert prompt.test_source(completion) == (
        "def test_interest():\n    assert interest(1) > 1\n    assert interest(\n2) > 2\n"
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
    from unitune.prompt import header_for_test_file
    from unitune.source import SourceFile

    file = SourceFile("class Solution {\n    int twice(int x) { return 2 * x; }\n}\n", "java", tmp_path / "Solution.java")
    header = header_for_test_file("java", "junit5", functions(file)[0], file, "Solution", None)
    assert "import Solution;" not in header and "import org.junit.jupiter.api.Test;" in header
