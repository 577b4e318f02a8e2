"""Tests of unitune.listing: which functions of a file are tests, and of which framework."""

from textwrap import dedent

import pytest

from unitune.languages import JAVA, PYTHON
from unitune.focal import functions
from unitune.listing import is_test_file, list_tests, python_imports
from unitune.frameworks import JUNIT3, JUNIT4, JUNIT5, PYTEST, UNITTEST
from unitune.source import SourceFile


def python(text: str) -> SourceFile:
    return SourceFile(dedent(text), PYTHON)


def java(text: str) -> SourceFile:
    return SourceFile(dedent(text), JAVA)


def names(tests) -> list[str]:
    return [test.qualified_name for test in tests]


PYTEST_FILE = """\
    import pytest

    @pytest.fixture
    def test_data():
        return 1

    def helper():
        return 2

    def test_plain(test_data):
        assert test_data == 1

    @pytest.mark.parametrize("x", [1, 2])
    def test_many(x):
        assert x

    async def test_async():
        pass

    class TestAccount:
        def setup_method(self):
            pass

        def test_deposit(self):
            pass

        class TestNested:
            def test_inner(self):
                pass

    class TestWithInit:
        def __init__(self):
            pass

        def test_never(self):
            pass

    class TestOptedOut:
        __test__ = False

        def test_never(self):
            pass

    class Helper:
        def test_not_collected(self):
            pass

    @pytest.mark.parametrize("y", [1])
    class TestMarked:
        def test_marked(self, y):
            pass
"""


def test_pytest_functions_and_classes():
    tests = list_tests(python(PYTEST_FILE))
    assert names(tests) == [
        "test_plain", "test_many", "test_async", "TestAccount.test_deposit",
        "TestAccount.TestNested.test_inner", "TestMarked.test_marked",
    ]
    assert {test.framework for test in tests} == {PYTEST}


def test_parametrize_marks_parameterized_including_class_marks():
    tests = {test.qualified_name: test for test in list_tests(python(PYTEST_FILE))}
    assert tests["test_many"].parameterized
    assert tests["TestMarked.test_marked"].parameterized
    assert not tests["test_plain"].parameterized
    assert tests["test_many"].decorators == ("pytest.mark.parametrize",)


def test_spans_class_name_and_lines():
    file = python(PYTEST_FILE)
    test = next(t for t in list_tests(file) if t.name == "test_many")
    assert (test.start_line, test.end_line) == (13, 15)
    assert test.class_name is None
    assert test.source(file).startswith("@pytest.mark.parametrize")
    assert file.data[test.start_byte:test.end_byte].decode().endswith("assert x")
    deposit = next(t for t in list_tests(file) if t.name == "test_deposit")
    assert deposit.class_name == "TestAccount"
    assert deposit.node.type == "function_definition"
    assert deposit.to_json(file)["qualified_name"] == "TestAccount.test_deposit"


def test_unittest_methods_including_through_local_base_class():
    file = python("""\
        import unittest
        from unittest import IsolatedAsyncioTestCase

        class Base(unittest.TestCase):
            def helper(self):
                pass

        class AccountTests(Base):
            def setUp(self):
                pass

            def test_deposit(self):
                pass

        class Deeper(AccountTests):
            def test_more(self):
                pass

        class AsyncTests(IsolatedAsyncioTestCase):
            async def test_async(self):
                pass

        class DjangoStyle(TestCase):
            def test_view(self):
                pass

        class NotATest:
            def test_nothing(self):
                pass
    """)
    tests = list_tests(file)
    assert names(tests) == ["AccountTests.test_deposit", "Deeper.test_more", "AsyncTests.test_async", "DjangoStyle.test_view"]
    assert {test.framework for test in tests} == {UNITTEST}


def test_unittest_class_with_init_is_still_collected():
    tests = list_tests(python("""\
        import unittest
        class TestThing(unittest.TestCase):
            def __init__(self, *args):
                super().__init__(*args)
            def test_a(self):
                pass
    """))
    assert names(tests) == ["TestThing.test_a"]
    assert tests[0].framework == UNITTEST


def test_parameterized_library_decorators():
    tests = list_tests(python("""\
        import unittest
        from parameterized import parameterized
        class TestThing(unittest.TestCase):
            @parameterized.expand([(1,), (2,)])
            def test_a(self, x):
                pass
    """))
    assert tests[0].parameterized


def test_functions_listed_are_focal_functions():
    file = python(PYTEST_FILE)
    found = functions(file)
    assert "helper" in [f.name for f in found]
    assert "TestAccount.setup_method" in [f.qualified_name for f in found]


def test_python_imports():
    assert python_imports(python("import os.path\nimport unittest as u\nfrom pytest import raises\nfrom . import x\n")) == {"os", "unittest", "pytest"}


JUNIT5_FILE = """\
    package com.example;

    import org.junit.jupiter.api.Test;
    import org.junit.jupiter.params.ParameterizedTest;
    import org.junit.jupiter.params.provider.ValueSource;

    class AccountTest {
        @BeforeEach
        void setUp() {}

        @Test
        void deposits() {}

        @ParameterizedTest
        @ValueSource(ints = {1, 2})
        void depositsMany(int amount) {}

        @RepeatedTest(3)
        void repeats() {}

        @TestFactory
        Stream<DynamicTest> dynamic() { return Stream.empty(); }

        @Nested
        class WhenEmpty {
            @Test
            void isEmpty() {}
        }

        private void helper() {}
    }
"""


def test_junit5_annotations():
    tests = list_tests(java(JUNIT5_FILE))
    assert names(tests) == [
        "AccountTest.deposits", "AccountTest.depositsMany", "AccountTest.repeats",
        "AccountTest.dynamic", "AccountTest.WhenEmpty.isEmpty",
    ]
    assert {test.framework for test in tests} == {JUNIT5}
    by_name = {test.name: test for test in tests}
    assert by_name["depositsMany"].parameterized and not by_name["deposits"].parameterized
    assert by_name["depositsMany"].decorators == ("ParameterizedTest", "ValueSource")
    assert by_name["deposits"].start_line == 11 and by_name["deposits"].end_line == 12


def test_junit4_tests_and_parameterized_runner():
    tests = list_tests(java("""\
        import org.junit.Test;
        import org.junit.runner.RunWith;
        import org.junit.runners.Parameterized;

        @RunWith(Parameterized.class)
        public class CalcTest {
            @Test
            public void adds() {}

            @org.junit.Test
            public void subtracts() {}

            public void testNotAnnotated() {}
        }
    """))
    assert names(tests) == ["CalcTest.adds", "CalcTest.subtracts"]
    assert {test.framework for test in tests} == {JUNIT4}
    assert all(test.parameterized for test in tests)


def test_junit3_methods_including_through_local_base_class():
    tests = list_tests(java("""\
        import junit.framework.TestCase;

        abstract class Base extends TestCase {
            protected void setUp() {}
        }

        public class LegacyTest extends Base {
            public void testAdds() {}
            public void testTakesNothing(int x) {}
            void testNotPublic() {}
            public int testReturns() { return 1; }
            public static void testStatic() {}
            public void helper() {}
        }
    """))
    assert names(tests) == ["LegacyTest.testAdds"]
    assert tests[0].framework == JUNIT3


def test_junit_test_without_imports_defaults_to_junit5():
    tests = list_tests(java("class ATest { @Test void a() {} }"))
    assert [test.framework for test in tests] == [JUNIT5]


@pytest.mark.parametrize("path, expected", [
    ("tests/test_account.py", True),
    ("pkg/account_test.py", True),
    ("app/tests.py", True),
    ("tests/conftest.py", True),
    ("pkg/account.py", False),
    ("pkg/testing.py", False),
    ("src/test/java/com/x/Anything.java", True),
    ("src/main/java/com/x/AccountTest.java", True),
    ("src/main/java/com/x/AccountIT.java", True),
    ("src/main/java/com/x/TestAccount.java", True),
    ("src/main/java/com/x/Account.java", False),
    ("src/main/java/com/x/Testament.java", False),
])
def test_is_test_file_by_name(path, expected):
    assert is_test_file(path) is expected


def test_is_test_file_by_content():
    unittest_code = python("import unittest\nclass Checks(unittest.TestCase):\n    def test_a(self):\n        pass\n")
    pytest_code = python("def test_connection():\n    pass\n")
    assert is_test_file("pkg/checks.py", unittest_code)
    assert not is_test_file("pkg/net.py", pytest_code)
    assert is_test_file("tests/checks.py", pytest_code)
    assert is_test_file("Checks.java", java("class Checks { @Test void a() {} }"))
    assert not is_test_file("Plain.java", java("class Plain { void a() {} }"))
