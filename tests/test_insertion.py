"""Tests of unitune.insertion: where generated tests go, the imports they bring, and safe writing."""

from pathlib import Path

import pytest

from unitune.errors import BadFileError, UnituneError
from unitune.focal import functions
from unitune.insertion import (
    apply,
    existing_test_names,
    plan_insertion,
    write_insertion,
)
from unitune.placement import TestLocation
from unitune.prompt import build_prompt, header_for_test_file
from unitune.source import SourceFile
from unitune.text_layout import reindent_test

FIXTURES = Path(__file__).parent / "fixtures" / "generation"

PYTEST_TEST = ("test_deposit", "def test_deposit():\n    assert Wallet('a').deposit(1) == 1\n")
PYTEST_RAISES = (
    "test_deposit_2",
    "def test_deposit_2():\n    with pytest.raises(ValueError):\n        Wallet('a').deposit(0)\n",
)
UNITTEST_TEST = (
    "test_deposit", "    def test_deposit(self):\n        self.assertEqual(Wallet('a').deposit(1), 1)\n",
)
JUNIT_TEST = (
    "testDeposit",
    "    @Test\n    public void testDeposit() throws Exception {\n        assertEquals(1, new Wallet(0).deposit(1));\n    }\n",
)


def focal(file_name: str, qualified_name: str):
    focal_file = SourceFile.from_path(FIXTURES / file_name)
    return focal_file, next(f for f in functions(focal_file) if f.qualified_name == qualified_name)


def new_file_header(language: str, framework: str, test_class: str | None = None) -> str:
    if language == "python":
        focal_file, function = focal("wallet.py", "Wallet.deposit")
        return header_for_test_file(language, framework, function, focal_file, "wallet", None, test_class)
    focal_file, function = focal("Wallet.java", "Wallet.deposit")
    return header_for_test_file(language, framework, function, focal_file, None, None, test_class)


def location(path: Path, framework: str, test_class: str | None = None, exists: bool = False) -> TestLocation:
    module = "wallet" if path.suffix == ".py" else "com.example.wallet.Wallet"
    return TestLocation(path, exists, framework, module, test_class)


def plan(path, existing, tests, language, framework, test_class=None):
    header = new_file_header(language, framework, test_class)
    where = location(Path(path), framework, test_class, exists=existing is not None)
    insertion = plan_insertion(
        where, existing, tests, language=language, framework=framework, header=header, test_class=test_class,
    )
    return insertion, apply(existing, insertion)


def without_insertions(insertion) -> str:
    """The new text with every inserted piece taken out again, which must be the old text."""
    new_text = apply(insertion.original_text, insertion)
    shift, kept = 0, []
    cursor = 0
    for edit in insertion.edits:
        start = edit.offset + shift
        kept.append(new_text[cursor:start])
        cursor = start + len(edit.text)
        shift += len(edit.text)
    kept.append(new_text[cursor:])
    return "".join(kept)


# -- new files -----------------------------------------------------------------------------------

def test_new_pytest_file_is_the_header_and_the_tests():
    insertion, text = plan("tests/test_wallet.py", None, [PYTEST_TEST, PYTEST_RAISES], "python", "pytest")
    assert text == (
        "import pytest\n"
        "\n"
        "from wallet import Wallet\n"
        "\n"
        "\n"
        "def test_deposit():\n"
        "    assert Wallet('a').deposit(1) == 1\n"
        "\n"
        "\n"
        "def test_deposit_2():\n"
        "    with pytest.raises(ValueError):\n"
        "        Wallet('a').deposit(0)\n"
    )
    assert insertion.creates_file and (insertion.offset, insertion.line, insertion.character) == (0, 0, 0)
    assert insertion.imports == ()
    assert insertion.test_lines == (("test_deposit", 5), ("test_deposit_2", 9))


def test_new_unittest_file_puts_the_tests_in_the_class_the_header_opens():
    _, text = plan("tests/test_wallet.py", None, [UNITTEST_TEST], "python", "unittest", "TestWallet")
    assert text == (
        "import unittest\n"
        "\n"
        "from wallet import Wallet\n"
        "\n"
        "\n"
        "class TestWallet(unittest.TestCase):\n"
        "    def test_deposit(self):\n"
        "        self.assertEqual(Wallet('a').deposit(1), 1)\n"
    )


def test_new_unittest_file_adds_imports_its_tests_need_beyond_the_header():
    raises = ("test_raises", "    def test_raises(self):\n        with pytest.raises(ValueError):\n            Wallet('a').deposit(0)\n")
    _, text = plan("tests/test_wallet.py", None, [raises], "python", "unittest", "TestWallet")
    assert text.startswith("import unittest\n\nfrom wallet import Wallet\nimport pytest\n\n\nclass TestWallet(unittest.TestCase):\n")


def test_new_java_file_has_package_imports_and_the_class_wrapper():
    insertion, text = plan("src/test/java/com/example/wallet/WalletTest.java", None, [JUNIT_TEST], "java", "junit5", "WalletTest")
    assert text == (
        "package com.example.wallet;\n"
        "\n"
        "import org.junit.jupiter.api.Test;\n"
        "\n"
        "import static org.junit.jupiter.api.Assertions.*;\n"
        "\n"
        "class WalletTest {\n"
        "    @Test\n"
        "    public void testDeposit() throws Exception {\n"
        "        assertEquals(1, new Wallet(0).deposit(1));\n"
        "    }\n"
        "}\n"
    )
    assert insertion.test_lines == (("testDeposit", 7),)
    assert SourceFile(text, "java").tree.root_node.has_error is False


def test_new_file_without_a_header_class_gets_one():
    where = location(Path("tests/test_wallet.py"), "unittest", "TestWallet")
    insertion = plan_insertion(where, None, [UNITTEST_TEST], language="python", framework="unittest", header="")
    assert apply(None, insertion) == (
        "import unittest\n"
        "\n"
        "class TestWallet(unittest.TestCase):\n"
        "    def test_deposit(self):\n"
        "        self.assertEqual(Wallet('a').deposit(1), 1)\n"
    )


# -- existing files ------------------------------------------------------------------------------

EXISTING_PYTEST = (FIXTURES / "existing_test_wallet.txt").read_text()


def test_existing_pytest_file_keeps_every_line_and_gets_the_test_and_its_import():
    insertion, text = plan("tests/test_wallet.py", EXISTING_PYTEST, [PYTEST_TEST], "python", "pytest")
    assert text == (
        "import pytest\n"
        "\n"
        "from wallet import parse_amount\n"
        "from wallet import Wallet\n"
        "\n"
        "\n"
        "def test_parse_amount():\n"
        "    assert parse_amount(\" 3 \") == 3\n"
        "\n"
        "\n"
        "def test_deposit():\n"
        "    pass\n"
        "\n"
        "\n"
        "def test_deposit():\n"
        "    assert Wallet('a').deposit(1) == 1\n"
    )
    assert not insertion.creates_file
    assert [edit.text for edit in insertion.imports] == ["from wallet import Wallet\n"]
    assert without_insertions(insertion) == EXISTING_PYTEST
    assert insertion.test_lines == (("test_deposit", 14),)


@pytest.mark.parametrize("existing, expected_tail", [
    ("import pytest\n\nx = 1", "x = 1\n\n\ndef test_deposit():"),  # no newline at the end
    ("import pytest\n\nx = 1\n\n\n\n\n", "x = 1\n\n\n\n\ndef test_deposit():"),  # blank lines are kept
    ("import pytest\n\nx = 1\n   ", "x = 1\n   \n\ndef test_deposit():"),  # a whitespace-only last line
])
def test_pytest_tests_follow_two_blank_lines(existing, expected_tail):
    insertion, text = plan("tests/test_wallet.py", existing, [PYTEST_TEST], "python", "pytest")
    assert expected_tail in text
    assert without_insertions(insertion) == existing


def test_pytest_file_that_imports_the_focal_class_gets_no_second_import():
    existing = "from wallet import *\n\n\ndef test_a():\n    assert 1\n"
    insertion, _ = plan("tests/test_wallet.py", existing, [PYTEST_TEST, PYTEST_RAISES], "python", "pytest")
    assert [edit.text for edit in insertion.imports] == ["import pytest\n"]


def test_pytest_class_grouping_is_kept():
    existing = (
        "from wallet import Wallet\n"
        "\n"
        "\n"
        "class TestWallet:\n"
        "    def test_old(self):\n"
        "        assert Wallet('a')\n"
        "\n"
        "\n"
        "def test_module_level():\n"
        "    assert True\n"
    )
    test = ("test_deposit", "    def test_deposit(self):\n        assert Wallet('a').deposit(1) == 1\n")
    insertion, text = plan("tests/test_wallet.py", existing, [test], "python", "pytest", "TestWallet")
    assert text == (
        "from wallet import Wallet\n"
        "\n"
        "\n"
        "class TestWallet:\n"
        "    def test_old(self):\n"
        "        assert Wallet('a')\n"
        "\n"
        "    def test_deposit(self):\n"
        "        assert Wallet('a').deposit(1) == 1\n"
        "\n"
        "\n"
        "def test_module_level():\n"
        "    assert True\n"
    )
    assert insertion.imports == ()


EXISTING_UNITTEST = (
    "import unittest\n"
    "\n"
    "from wallet import Wallet\n"
    "\n"
    "\n"
    "class TestWallet(unittest.TestCase):\n"
    "    def setUp(self):\n"
    "        self.wallet = Wallet('a')\n"
    "\n"
    "    def test_old(self):\n"
    "        self.assertTrue(self.wallet)\n"
    "\n"
    "\n"
    "if __name__ == '__main__':\n"
    "    unittest.main()\n"
)


def test_unittest_test_goes_at_the_end_of_the_class():
    insertion, text = plan("tests/test_wallet.py", EXISTING_UNITTEST, [UNITTEST_TEST], "python", "unittest", "TestWallet")
    assert text == EXISTING_UNITTEST.replace(
        "        self.assertTrue(self.wallet)\n",
        "        self.assertTrue(self.wallet)\n"
        "\n"
        "    def test_deposit(self):\n"
        "        self.assertEqual(Wallet('a').deposit(1), 1)\n",
    )
    assert insertion.imports == ()
    assert (insertion.line, insertion.character) == (11, 0)
    assert insertion.test_lines == (("test_deposit", 12),)


def test_unittest_without_the_named_class_uses_the_last_testcase():
    _, text = plan("tests/test_wallet.py", EXISTING_UNITTEST, [UNITTEST_TEST], "python", "unittest", "TestOther")
    assert "        self.assertTrue(self.wallet)\n\n    def test_deposit(self):\n" in text


def test_unittest_file_without_a_class_gets_one_before_the_main_block():
    existing = "import unittest\n\n\nif __name__ == '__main__':\n    unittest.main()\n"
    _, text = plan("tests/test_wallet.py", existing, [UNITTEST_TEST], "python", "unittest", "TestWallet")
    assert text == (
        "import unittest\n"
        "from wallet import Wallet\n"
        "\n"
        "\n"
        "class TestWallet(unittest.TestCase):\n"
        "    def test_deposit(self):\n"
        "        self.assertEqual(Wallet('a').deposit(1), 1)\n"
        "\n"
        "\n"
        "if __name__ == '__main__':\n"
        "    unittest.main()\n"
    )


def test_tests_follow_the_files_indentation():
    existing = "import unittest\n\nclass TestWallet(unittest.TestCase):\n  def test_old(self):\n    if True:\n      pass\n"
    test = ("test_deposit", "    def test_deposit(self):\n        if True:\n            assert 1\n")
    _, text = plan("tests/test_wallet.py", existing, [test], "python", "unittest", "TestWallet")
    assert text.endswith("      pass\n\n  def test_deposit(self):\n    if True:\n      assert 1\n")


def test_reindent_keeps_multiline_string_values():
    source = '    def test_x(self):\n        text = """\nfirst\n    second\n"""\n        assert text\n'
    assert reindent_test(source, "python", "") == 'def test_x(self):\n    text = """\nfirst\n    second\n"""\n    assert text\n'.rstrip("\n")


EXISTING_JUNIT = (FIXTURES / "ExistingWalletTest.txt").read_text()


def test_java_test_goes_before_the_class_closing_brace():
    insertion, text = plan("WalletTest.java", EXISTING_JUNIT, [JUNIT_TEST], "java", "junit5", "WalletTest")
    assert text == (
        "package com.example.wallet;\n"
        "\n"
        "import org.junit.jupiter.api.Test;\n"
        "import static org.junit.jupiter.api.Assertions.*;\n"
        "\n"
        "class WalletTest {\n"
        "    @Test\n"
        "    void testWallet() {\n"
        "        new Wallet(1);\n"
        "    }\n"
        "\n"
        "    @Test\n"
        "    public void testDeposit() throws Exception {\n"
        "        assertEquals(1, new Wallet(0).deposit(1));\n"
        "    }\n"
        "}\n"
    )
    assert [edit.text for edit in insertion.imports] == ["import static org.junit.jupiter.api.Assertions.*;\n"]
    assert without_insertions(insertion) == EXISTING_JUNIT


def test_java_junit4_imports_are_not_doubled_with_junit5_ones():
    existing = "import org.junit.Test;\nimport static org.junit.Assert.assertEquals;\n\npublic class WalletTest {\n}\n"
    test = (JUNIT_TEST[0], JUNIT_TEST[1])
    insertion, text = plan("WalletTest.java", existing, [test], "java", "junit4", "WalletTest")
    assert insertion.imports == ()
    assert text == existing.replace("{\n}", "{\n" + JUNIT_TEST[1] + "}")


def test_java_class_with_code_before_its_closing_brace():
    existing = "class WalletTest { void helper() {} }"
    _, text = plan("WalletTest.java", existing, [JUNIT_TEST], "java", "junit5", "WalletTest")
    assert text.startswith("import org.junit.jupiter.api.Test;\nimport static org.junit.jupiter.api.Assertions.*;\n\n")
    assert text.endswith("class WalletTest { void helper() {} \n\n" + JUNIT_TEST[1] + "}")
    assert SourceFile(text, "java").tree.root_node.has_error is False


def test_java_class_without_closing_brace_is_refused():
    with pytest.raises(UnituneError, match="closing brace"):
        plan("WalletTest.java", "class WalletTest {\n    void a() {}\n", [JUNIT_TEST], "java", "junit5", "WalletTest")


@pytest.mark.parametrize("language, framework, path, existing, tests, test_class", [
    ("python", "pytest", "tests/test_wallet.py", EXISTING_PYTEST, [PYTEST_TEST, PYTEST_RAISES], None),
    ("python", "unittest", "tests/test_wallet.py", EXISTING_UNITTEST, [UNITTEST_TEST], "TestWallet"),
    ("java", "junit5", "WalletTest.java", EXISTING_JUNIT, [JUNIT_TEST], "WalletTest"),
])
def test_crlf_files_keep_crlf(language, framework, path, existing, tests, test_class):
    crlf = existing.replace("\n", "\r\n")
    insertion, text = plan(path, crlf, tests, language, framework, test_class)
    assert insertion.line_ending == "\r\n"
    assert "\n" not in text.replace("\r\n", "")
    assert text.replace("\r\n", "\n") == plan(path, existing, tests, language, framework, test_class)[1]
    assert without_insertions(insertion) == crlf


def test_edits_are_sorted_and_positions_match_offsets():
    insertion, _ = plan("tests/test_wallet.py", EXISTING_PYTEST, [PYTEST_TEST], "python", "pytest")
    offsets = [edit.offset for edit in insertion.edits]
    assert offsets == sorted(offsets)
    for edit in insertion.edits:
        lines = EXISTING_PYTEST[: edit.offset].split("\n")
        assert (edit.line, edit.character) == (len(lines) - 1, len(lines[-1]))


def test_bad_input_is_refused():
    where = location(Path("tests/test_wallet.py"), "pytest", exists=True)
    with pytest.raises(UnituneError):
        plan_insertion(where, None, [PYTEST_TEST], language="python", framework="pytest", header="")
    with pytest.raises(UnituneError):
        plan_insertion(where, "x = 1\n", [], language="python", framework="pytest", header="")
    insertion, _ = plan("tests/test_wallet.py", EXISTING_PYTEST, [PYTEST_TEST], "python", "pytest")
    with pytest.raises(UnituneError):
        apply(EXISTING_PYTEST + "# typed meanwhile\n", insertion)


def test_existing_test_names():
    assert existing_test_names(EXISTING_PYTEST, "python") == {"test_parse_amount", "test_deposit"}
    assert existing_test_names(None, "python") == frozenset()


# -- writing -------------------------------------------------------------------------------------

def test_write_creates_missing_folders_and_the_file(tmp_path):
    path = tmp_path / "tests" / "unit" / "test_wallet.py"
    where = location(path, "pytest")
    insertion = plan_insertion(where, None, [PYTEST_TEST], language="python", framework="pytest",
                               header=new_file_header("python", "pytest"))
    assert write_insertion(insertion) == path
    assert path.read_text() == apply(None, insertion)
    assert sorted(p.name for p in path.parent.iterdir()) == ["test_wallet.py"]  # no temporary file left


def test_write_extends_the_file_it_was_planned_on(tmp_path):
    path = tmp_path / "test_wallet.py"
    path.write_bytes(EXISTING_PYTEST.replace("\n", "\r\n").encode())
    existing = path.read_bytes().decode()
    insertion = plan_insertion(location(path, "pytest", exists=True), existing, [PYTEST_TEST], language="python",
                               framework="pytest", header=new_file_header("python", "pytest"))
    write_insertion(insertion)
    written = path.read_bytes().decode()
    assert written == apply(existing, insertion) and written.startswith(existing[:40])
    assert "\n" not in written.replace("\r\n", "")


def test_write_refuses_when_the_file_changed_in_between(tmp_path):
    path = tmp_path / "test_wallet.py"
    path.write_text(EXISTING_PYTEST)
    insertion = plan_insertion(location(path, "pytest", exists=True), EXISTING_PYTEST, [PYTEST_TEST],
                               language="python", framework="pytest", header=new_file_header("python", "pytest"))
    path.write_text(EXISTING_PYTEST + "\n\ndef test_typed_meanwhile():\n    assert 1\n")
    with pytest.raises(UnituneError, match="changed"):
        write_insertion(insertion)
    assert path.read_text().endswith("test_typed_meanwhile():\n    assert 1\n")


def test_write_refuses_when_a_new_file_appeared_in_between(tmp_path):
    path = tmp_path / "test_wallet.py"
    insertion = plan_insertion(location(path, "pytest"), None, [PYTEST_TEST], language="python",
                               framework="pytest", header=new_file_header("python", "pytest"))
    path.write_text("# mine\n")
    with pytest.raises(UnituneError):
        write_insertion(insertion)
    assert path.read_text() == "# mine\n"


def test_write_keeps_a_byte_order_mark(tmp_path):
    path = tmp_path / "test_wallet.py"
    path.write_bytes(b"\xef\xbb\xbf" + EXISTING_PYTEST.encode())
    insertion = plan_insertion(location(path, "pytest", exists=True), EXISTING_PYTEST, [PYTEST_TEST],
                               language="python", framework="pytest", header=new_file_header("python", "pytest"))
    write_insertion(insertion)
    assert path.read_bytes().startswith(b"\xef\xbb\xbfimport pytest\n")


def test_prompt_and_insertion_agree_on_indentation():
    """A unittest test as post-processing hands it over (the prompt's indentation) lands unchanged."""
    focal_file, function = focal("wallet.py", "Wallet.deposit")
    prompt = build_prompt(focal_file, function, framework="unittest", module_import="wallet", level="fm",
                          existing_test_source=EXISTING_UNITTEST)
    source = prompt.test_source(prompt.indent + "self.assertTrue(True)\n")
    assert source == "    def test_deposit(self):\n        self.assertTrue(True)\n"
    _, text = plan("tests/test_wallet.py", EXISTING_UNITTEST, [("test_deposit", source)], "python", "unittest", prompt.test_class)
    assert source in text


def test_generated_tests_go_in_as_post_processing_hands_them_over(tmp_path):
    from unitune.assured.postprocess import postprocess

    focal_file, function = focal("Wallet.java", "Wallet.deposit")
    prompt = build_prompt(focal_file, function, framework="junit5", module_import=None, level="fm",
                          existing_test_source=EXISTING_JUNIT)
    generated = postprocess(prompt, [
        "        assertEquals(1, new Wallet(0).deposit(1));\n",  # cut off before its closing brace
        "        assertEquals(2, new Wallet(1).deposit(1));\n    }\n}\n",
    ], existing_test_names(EXISTING_JUNIT, "java"))
    path = tmp_path / "WalletTest.java"
    path.write_text(EXISTING_JUNIT)
    insertion = plan_insertion(location(path, "junit5", "WalletTest", exists=True), EXISTING_JUNIT, generated,
                               language="java", framework="junit5", header=new_file_header("java", "junit5"),
                               test_class=prompt.test_class)
    text = write_insertion(insertion).read_text()
    assert SourceFile(text, "java").tree.root_node.has_error is False
    assert [name for name, _ in insertion.test_lines] == ["testDeposit", "testDeposit2"]
    lines = text.split("\n")
    assert [lines[line] for _, line in insertion.test_lines] == ["    @Test", "    @Test"]


def _planned(path):
    existing = path.read_text()
    return plan_insertion(location(path, "pytest", exists=True), existing, [PYTEST_TEST], language="python",
                          framework="pytest", header=new_file_header("python", "pytest"))


def test_write_refuses_a_read_only_test_file(tmp_path):
    import os

    path = tmp_path / "test_wallet.py"
    path.write_text(EXISTING_PYTEST)
    os.chmod(path, 0o444)
    with pytest.raises(BadFileError, match="the test file is read-only; nothing was written"):
        write_insertion(_planned(path))
    assert path.read_text() == EXISTING_PYTEST and (path.stat().st_mode & 0o777) == 0o444


def test_write_keeps_a_hard_link_and_the_owner(tmp_path):
    import os

    path = tmp_path / "test_wallet.py"
    path.write_text(EXISTING_PYTEST)
    link = tmp_path / "linked_copy.py"
    os.link(path, link)
    if os.getuid() == 0:
        os.chown(path, 65534, 65534)  # someone else's file, as root may find it
    before = path.stat()
    write_insertion(_planned(path))
    after = path.stat()
    assert link.read_text() == path.read_text() != EXISTING_PYTEST  # both names see the tests
    assert (after.st_ino, after.st_uid, after.st_gid, after.st_mode) == (
        before.st_ino, before.st_uid, before.st_gid, before.st_mode)


def test_write_keeps_the_owner_of_a_file_with_one_link(tmp_path):
    import os

    if os.getuid() != 0:
        pytest.skip("only root can write a file another user owns")
    path = tmp_path / "test_wallet.py"
    path.write_text(EXISTING_PYTEST)
    os.chown(path, 65534, 65534)
    write_insertion(_planned(path))
    assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534)


def test_a_file_with_cr_line_ends_is_read_as_lines_and_written_back_with_them(tmp_path):
    from unitune.focal import functions as functions_of
    from unitune.source import SourceFile

    code = tmp_path / "old_mac.py"
    code.write_bytes(b"def f():\r    return 1\r\r\rdef g(x):\r    return x\r")
    file = SourceFile.from_path(code)
    assert file.line_count == 7
    assert [(f.qualified_name, f.start_line, f.end_line) for f in functions_of(file)] == [("f", 1, 2), ("g", 5, 6)]

    path = tmp_path / "test_wallet.py"
    path.write_bytes(EXISTING_PYTEST.replace("\n", "\r").encode())
    write_insertion(_planned(path))
    written = path.read_bytes()
    assert b"\n" not in written and written.startswith(EXISTING_PYTEST.replace("\n", "\r").encode()[:40])
    assert b"def test_deposit" in written or len(written) > len(EXISTING_PYTEST)


def test_a_new_class_never_shadows_one_of_the_same_name_inside_a_block():
    """A `TestWallet` defined inside `if True:` is not a top-level class to add to; a second, top-level
    `TestWallet` would replace it when the module runs, and pytest would silently stop collecting its tests."""
    existing = ("import unittest\n\n\nif True:\n    class TestWallet(unittest.TestCase):\n"
                "        def test_existing(self):\n            self.assertTrue(True)\n")
    _, text = plan("tests/test_wallet.py", existing, [UNITTEST_TEST], "python", "unittest", "TestWallet")
    assert text.count("class TestWallet(") == 1 and "\nclass TestWallet2(unittest.TestCase):\n" in text
    assert "        def test_existing(self):" in text
