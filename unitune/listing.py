"""Listing what a file holds: its testable functions and its tests.

Repository mining pairs each test with the function it tests, and test placement reads an existing
test file's style; both start here. A *test* is what the test runner would collect:

Python (pytest's and unittest's default collection rules)
  - module-level functions whose name starts with `test`;
  - methods starting with `test` of classes named `Test*` that define no `__init__` (nested `Test*`
    classes included) and do not set `__test__ = False`;
  - methods starting with `test` of classes deriving from a `*TestCase` base (`unittest.TestCase`,
    `IsolatedAsyncioTestCase`, Django's `SimpleTestCase`, ...), also through a base class defined in
    the same file.
  Fixtures (`@pytest.fixture`) are never tests, whatever their name.

Java
  - methods annotated `@Test` (JUnit 4 and 5, TestNG), `@ParameterizedTest`, `@RepeatedTest`,
    `@TestFactory`, `@TestTemplate`, or JUnit 4's `@Theory`;
  - JUnit 3: `public void test*()` without parameters in a class deriving from `TestCase` (directly or
    through a class of the same file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from tree_sitter import Node

from unitune.focal import Function, functions
from unitune.languages import JAVA, PYTHON
from unitune.frameworks import JUNIT3, JUNIT4, JUNIT5, PYTEST, TESTNG, UNITTEST, java_import_framework
from unitune.project_layout import looks_like_test_file
from unitune.source import SourceFile
from unitune.syntax_walk import descendants

_PY_TEST_PREFIX = "test"
_PY_FIXTURE_DECORATORS = frozenset({"pytest.fixture", "fixture", "pytest_asyncio.fixture"})
# Decorators that run one test function over several inputs.
_PY_PARAMETERIZE_RE = re.compile(r"(^|\.)(parametrize|parameterize|parameterized|expand|named_parameters|parameters)$")

_JAVA_TEST_ANNOTATIONS = frozenset({"Test", "ParameterizedTest", "RepeatedTest", "TestFactory", "TestTemplate", "Theory"})
_JAVA_JUNIT5_ONLY = frozenset({"ParameterizedTest", "RepeatedTest", "TestFactory", "TestTemplate"})
_JAVA_PARAMETERIZED = frozenset({"ParameterizedTest", "Theory", "Parameters"})  # Parameters: JUnitParams
_JAVA_CLASSES = frozenset({"class_declaration", "interface_declaration", "enum_declaration", "record_declaration"})


@dataclass(eq=False)
class TestFunction:
    """One test of a test file, with where it sits."""

    __test__ = False  # a data class, not a pytest test class

    language: str
    name: str
    qualified_name: str  # e.g. `TestAccount.test_deposit`, `AccountTest.Nested.deposits`
    class_name: str | None  # innermost enclosing class
    framework: str  # a guess: PYTEST, UNITTEST, JUNIT5, JUNIT4, JUNIT3 or TESTNG
    start_line: int  # 1-based, inclusive; decorators/annotations included
    end_line: int
    start_byte: int
    end_byte: int
    parameterized: bool
    decorators: tuple[str, ...]  # decorator / annotation names without `@`
    node: Node = field(repr=False)
    function: Function = field(repr=False)

    def source(self, file: SourceFile) -> str:
        """The test's text, from the start of its first line (so indentation is kept)."""
        return self.function.source(file)

    def to_json(self, file: SourceFile) -> dict:
        return {
            "language": self.language,
            "name": self.name,
            "qualified_name": self.qualified_name,
            "class_name": self.class_name,
            "framework": self.framework,
            "parameterized": self.parameterized,
            "start_line": self.start_line,
            "end_line": self.end_line,
            "source": self.source(file),
        }


def list_tests(file: SourceFile) -> list[TestFunction]:
    """Every test of `file`, in document order."""
    if file.language == PYTHON:
        return _python_tests(file)
    if file.language == JAVA:
        return _java_tests(file)
    return []


# -- test files ----------------------------------------------------------------------------------

def is_test_file(path: str | Path, file: SourceFile | None = None) -> bool:
    """Whether `path` is a file of tests rather than code under test.

    By name or place, as the runners pick files (see `project_layout.looks_like_test_file`). With the parsed
    `file`, also a file holding unittest or JUnit tests, or a Python file with tests inside a
    `tests`/`test` folder (pytest-style functions elsewhere are not collected by default)."""
    path = Path(path)
    if looks_like_test_file(path):
        return True
    if file is None:
        return False
    tests = list_tests(file)
    if not tests:
        return False
    if file.language == PYTHON and {"tests", "test"} & {part.lower() for part in path.parts[:-1]}:
        return True
    return any(test.framework != PYTEST for test in tests)


# -- Python --------------------------------------------------------------------------------------

def _python_tests(file: SourceFile) -> list[TestFunction]:
    classes = _python_classes(file)
    testcase_names = _python_testcase_classes(classes)
    tests: list[TestFunction] = []
    for function in functions(file):
        if not function.name.startswith(_PY_TEST_PREFIX) or function.node.type != "function_definition":
            continue
        if any(d in _PY_FIXTURE_DECORATORS for d in function.decorators):
            continue
        framework = _python_test_framework(file, function, classes, testcase_names)
        if framework is None:
            continue
        class_marks = [mark for node in function.class_nodes for mark in _python_class_decorators(file, node)]
        parameterized = any(_PY_PARAMETERIZE_RE.search(d) for d in (*function.decorators, *class_marks))
        tests.append(_test(function, framework, parameterized))
    return tests


def _python_test_framework(file, function: Function, classes, testcase_names: set[str]) -> str | None:
    """PYTEST or UNITTEST when the runner would collect `function`, else None."""
    if not function.class_nodes:
        return PYTEST
    *outer, inner = function.class_nodes
    # Only pytest walks into nested classes, and only through `Test*` classes.
    if any(not _is_pytest_class(file, node, testcase_names) for node in outer):
        return None
    if _class_name(file, inner) in testcase_names:
        return UNITTEST
    if _is_pytest_class(file, inner, testcase_names):
        return PYTEST
    return None


def _is_pytest_class(file, node: Node, testcase_names: set[str]) -> bool:
    name = _class_name(file, node)
    if name in testcase_names or not name.startswith("Test"):
        return False
    body = node.child_by_field_name("body")
    for statement in body.named_children if body is not None else ():
        definition = statement.child_by_field_name("definition") if statement.type == "decorated_definition" else statement
        if definition is not None and definition.type == "function_definition" and _class_name(file, definition) == "__init__":
            return False  # pytest cannot instantiate it, and warns instead of collecting
        if statement.type == "expression_statement" and re.fullmatch(r"__test__\s*=\s*False", file.node_text(statement).strip()):
            return False
    return True


def _python_classes(file: SourceFile) -> dict[str, list[str]]:
    """Every class of the file (nested ones included) by name, with the names of its bases."""
    classes: dict[str, list[str]] = {}
    # Local classes (in functions and lambdas) are not collected.
    inside = descendants(file.tree.root_node, named_only=True,
                         descend_into=lambda node: node.type not in ("function_definition", "lambda"))
    for node in inside:
        if node.type == "class_definition":
            bases = node.child_by_field_name("superclasses")
            names = [file.node_text(base) for base in (bases.named_children if bases is not None else ())
                     if base.type in ("identifier", "attribute")]
            classes[_class_name(file, node)] = names  # a later class of the same name replaces it, as when run
    return classes


def _python_testcase_classes(classes: dict[str, list[str]]) -> set[str]:
    """Names of the classes deriving from a `*TestCase` (`unittest.TestCase`, `IsolatedAsyncioTestCase`,
    `django.test.SimpleTestCase`, ...), directly or through other classes of the file."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, bases in classes.items():
            if name in found:
                continue
            if any(base.rsplit(".", 1)[-1].endswith("TestCase") or base in found for base in bases):
                found.add(name)
                changed = True
    return found


def _python_class_decorators(file, class_node: Node) -> list[str]:
    parent = class_node.parent
    if parent is None or parent.type != "decorated_definition":
        return []
    return [file.node_text(d).lstrip("@").split("(", 1)[0].strip() for d in parent.named_children if d.type == "decorator"]


def _class_name(file, node: Node) -> str:
    name = node.child_by_field_name("name")
    return file.node_text(name) if name is not None else ""


def python_imports(file: SourceFile) -> set[str]:
    """Top-level names of the modules `file` imports (`unittest`, `pytest`, `django`, ...)."""
    modules: set[str] = set()
    inside = descendants(file.tree.root_node, named_only=True,
                         descend_into=lambda node: node.type not in ("function_definition", "class_definition"))
    for node in inside:
        if node.type == "import_statement":
            for name in node.named_children:
                target = name.child_by_field_name("name") if name.type == "aliased_import" else name
                if target is not None:
                    modules.add(file.node_text(target).split(".", 1)[0])
        elif node.type == "import_from_statement":
            module = node.child_by_field_name("module_name")
            if module is not None and module.type == "dotted_name":
                modules.add(file.node_text(module).split(".", 1)[0])
    return modules


# -- Java ----------------------------------------------------------------------------------------

def _java_tests(file: SourceFile) -> list[TestFunction]:
    imports = java_imports(file)
    file_framework = java_import_framework(imports)
    junit3_classes = _java_junit3_classes(file)
    tests: list[TestFunction] = []
    for function in functions(file):
        if function.kind != "method":
            continue
        simple = {d.rsplit(".", 1)[-1] for d in function.decorators}
        if simple & _JAVA_TEST_ANNOTATIONS:
            framework = _java_annotated_framework(function.decorators, simple, file_framework)
        elif function.class_name in junit3_classes and _is_junit3_method(file, function):
            framework = JUNIT3
        else:
            continue
        class_marks = {a.rsplit(".", 1)[-1] for node in function.class_nodes for a in _java_annotations(file, node)}
        parameterized = bool(simple & _JAVA_PARAMETERIZED) or (
            "RunWith" in class_marks and _java_runs_parameterized(file, function.class_nodes)
        )
        tests.append(_test(function, framework, parameterized))
    return tests


def _java_annotated_framework(annotations, simple: set[str], file_framework: str | None) -> str:
    for annotation in annotations:
        if annotation.startswith("org.junit.jupiter."):
            return JUNIT5
        if annotation.startswith("org.testng."):
            return TESTNG
        if annotation.startswith("org.junit."):
            return JUNIT4
    if simple & _JAVA_JUNIT5_ONLY:
        return JUNIT5
    return file_framework or JUNIT5


def java_imports(file: SourceFile) -> list[str]:
    """The imported names of a Java file (`org.junit.Test`, `org.junit.jupiter.api.*`, static ones too)."""
    imports = []
    for node in file.tree.root_node.named_children:
        if node.type == "import_declaration":
            text = file.node_text(node).removeprefix("import").strip().rstrip(";").strip()
            imports.append(text.removeprefix("static").strip().replace(" ", ""))
    return imports


def java_package(file: SourceFile) -> str:
    """The package a Java file declares, or "" for the default package."""
    for node in file.tree.root_node.named_children:
        if node.type == "package_declaration":
            for child in node.named_children:
                if child.type in ("scoped_identifier", "identifier"):
                    return file.node_text(child)
    return ""


def _java_annotations(file, node: Node) -> list[str]:
    annotations = []
    for child in node.children:
        if child.type == "modifiers":
            for modifier in child.children:
                if modifier.type in ("marker_annotation", "annotation"):
                    annotations.append(_class_name(file, modifier))
    return annotations


def _java_runs_parameterized(file, class_nodes) -> bool:
    for node in class_nodes:
        for child in node.children:
            if child.type == "modifiers" and re.search(r"@(\w+\.)*RunWith\s*\(\s*(\w+\.)*(Parameterized|Theories|JUnitParamsRunner)\b", file.node_text(child)):
                return True
    return False


def _java_junit3_classes(file: SourceFile) -> set[str]:
    """Classes deriving from JUnit 3's `TestCase`, directly or through classes of the same file."""
    supers: dict[str, str] = {}
    for node in descendants(file.tree.root_node, named_only=True):
        if node.type in _JAVA_CLASSES:
            superclass = node.child_by_field_name("superclass")
            if superclass is not None:
                text = file.node_text(superclass).removeprefix("extends").strip()
                supers.setdefault(_class_name(file, node), text.split("<", 1)[0].strip().rsplit(".", 1)[-1])
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, base in supers.items():
            if name not in found and (base == "TestCase" or base in found):
                found.add(name)
                changed = True
    return found


def _is_junit3_method(file, function: Function) -> bool:
    node = function.node
    if not function.name.startswith("test") or function.is_static:
        return False
    modifiers = next((c for c in node.children if c.type == "modifiers"), None)
    parameters = node.child_by_field_name("parameters")
    return_type = node.child_by_field_name("type")
    return (
        modifiers is not None and any(c.type == "public" for c in modifiers.children)
        and return_type is not None and return_type.type == "void_type"
        and (parameters is None or parameters.named_child_count == 0)
    )


def _test(function: Function, framework: str, parameterized: bool) -> TestFunction:
    return TestFunction(
        language=function.language,
        name=function.name,
        qualified_name=function.qualified_name,
        class_name=function.class_name,
        framework=framework,
        start_line=function.start_line,
        end_line=function.end_line,
        start_byte=function.start_byte,
        end_byte=function.end_byte,
        parameterized=parameterized,
        decorators=tuple(d for d in function.decorators if d != "static"),  # `static` is a Java modifier
        node=function.node,
        function=function,
    )
