"""The test file header of a prompt, for Python and Java: what of an existing test file a new test is
shown after (imports, pytest fixtures, the test class's header with its attributes or fields and its
set-up/tear-down methods), or what a new test file starts with. `unitune.prompt.header_for_test_file`
chooses between the two languages.
"""

from __future__ import annotations

import re

from tree_sitter import Node

from unitune.code_spans import definition_header, flatten_span, module_imports, reindent_span
from unitune.context import INDENT
from unitune.frameworks import JUNIT4, JUNIT5, PYTEST, UNITTEST
from unitune.source import SourceFile
from unitune.test_names import class_name_for_tests

_JUNIT_IMPORTS = {
    JUNIT5: ("import org.junit.jupiter.api.Test;", "import static org.junit.jupiter.api.Assertions.*;"),
    JUNIT4: ("import org.junit.Test;", "import static org.junit.Assert.*;"),
}
_PY_LIFECYCLE = frozenset({
    "setUp", "tearDown", "setUpClass", "tearDownClass", "asyncSetUp", "asyncTearDown",
    "setup_method", "teardown_method", "setup_class", "teardown_class", "setup", "teardown",
})
_JAVA_LIFECYCLE = frozenset({
    "BeforeEach", "AfterEach", "BeforeAll", "AfterAll", "Before", "After", "BeforeClass", "AfterClass",
})


def python_test_header(framework, focal, focal_file, module_import, existing, test_class) -> str:
    """The header of a pytest or unittest file: `existing`'s imports (with those the test needs),
    fixtures and test class, or a new file's imports and class."""
    subject = focal.class_path[0] if focal.class_path else focal.name
    module = module_import or (focal_file.path.stem if focal_file.path else None)
    focal_import = f"from {module} import {subject}" if module else None
    in_class = framework == UNITTEST or test_class is not None
    class_name = test_class or class_name_for_tests(focal)
    blocks: list[str] = []
    if existing is None:
        imports = ["import pytest" if framework == PYTEST else "import unittest"]
        if focal_import:
            imports += ["", focal_import]
        blocks.append("\n".join(imports))
        class_node = None
    else:
        imports = module_imports(existing)
        if framework == UNITTEST and not any(re.search(r"\bunittest\b", line) for line in imports):
            imports.insert(0, "import unittest")
        if focal_import and not any(re.search(rf"\b{re.escape(subject)}\b", line) for line in imports):
            imports.append(focal_import)
        if imports:
            blocks.append("\n".join(imports))
        blocks.extend(_python_fixtures(existing))
        class_node = _python_test_class(existing, test_class, class_name) if in_class else None
    if in_class:
        if class_node is None:
            base = "(unittest.TestCase)" if framework == UNITTEST else ""
            blocks.append(f"class {class_name}{base}:")
        else:
            blocks.append(_python_class_block(existing, class_node))
    return "\n\n\n".join(blocks)


def _python_fixtures(file: SourceFile) -> list[str]:
    """The module-level pytest fixtures of a test file, in full."""
    return [
        reindent_span(file, node, node.start_byte, node.end_byte, "")
        for node in file.tree.root_node.named_children
        if _is_fixture(file, node)
    ]


def _is_fixture(file: SourceFile, node: Node) -> bool:
    return node.type == "decorated_definition" and any(
        _decorator_name(file, d).endswith("fixture") for d in node.named_children if d.type == "decorator"
    )


def _decorator_name(file: SourceFile, decorator: Node) -> str:
    return file.node_text(decorator).lstrip("@").split("(", 1)[0].strip()


def _python_test_class(file: SourceFile, exact: str | None, preferred: str) -> Node | None:
    """The class named `exact`; without one, the class named `preferred`, else the first `TestCase`
    subclass; None when there is no such class (a new one is written)."""
    classes = []
    for node in file.tree.root_node.named_children:
        definition = node.child_by_field_name("definition") if node.type == "decorated_definition" else node
        if definition is not None and definition.type == "class_definition":
            classes.append((file.node_text(definition.child_by_field_name("name")), definition))
    for name, node in classes:
        if name == (exact or preferred):
            return node
    if exact is not None:
        return None
    for _, node in classes:
        superclasses = node.child_by_field_name("superclasses")
        if superclasses is not None and "TestCase" in file.node_text(superclasses):
            return node
    return None


def _python_class_block(file: SourceFile, class_node: Node) -> str:
    """A test class's header, class attributes, set-up/tear-down methods and fixtures."""
    lines = [definition_header(file, class_node)]
    body = class_node.child_by_field_name("body")
    members: list[str] = []
    attributes: list[str] = []
    for node in body.named_children if body is not None else []:
        definition = node.child_by_field_name("definition") if node.type == "decorated_definition" else node
        if node.type == "expression_statement" and node.named_child_count == 1 and node.named_children[0].type == "assignment":
            attributes.append(INDENT + flatten_span(file, node, node.start_byte, node.end_byte))
        elif definition is not None and definition.type == "function_definition":
            if file.node_text(definition.child_by_field_name("name")) in _PY_LIFECYCLE or _is_fixture(file, node):
                members.append(reindent_span(file, node, node.start_byte, node.end_byte, INDENT))
    if attributes:
        members.insert(0, "\n".join(attributes))
    return "\n".join(lines) + ("\n" + "\n\n".join(members) if members else "")


def java_test_header(framework, focal, focal_file, module_import, existing, test_class) -> str:
    """The header of a JUnit file: `existing`'s package and imports (with those the test needs), then
    its test class opened, with its fields and lifecycle methods; or a new file's."""
    class_name = test_class or class_name_for_tests(focal)
    test_import, assert_import = _JUNIT_IMPORTS[framework]
    # A class in the default package cannot be imported (nor needs to be, from a test in that package).
    focal_import = f"import {module_import};" if module_import and "." in module_import else None
    if existing is None:
        package = [line for line in module_imports(focal_file) if line.startswith("package ")]
        imports = [test_import] + ([focal_import] if focal_import else [])
        blocks = package + ["\n".join(imports), assert_import]
        public = "public " if framework == JUNIT4 else ""
        blocks.append(f"{public}class {class_name} {{")
        return "\n\n".join(blocks)
    lines = module_imports(existing)
    if not any(line.endswith(".Test;") or line.endswith(".api.*;") or line == "import org.junit.*;" for line in lines):
        lines.append(test_import)
    if focal_import and focal_import not in lines:
        lines.append(focal_import)
    package = [line for line in lines if line.startswith("package ")]
    imports = [line for line in lines if not line.startswith("package ")]
    blocks = package + (["\n".join(imports)] if imports else [])
    blocks.append(_java_class_block(existing, class_name, framework))
    return "\n\n".join(blocks)


def _java_class_block(file: SourceFile, class_name: str, framework: str) -> str:
    classes = [node for node in file.tree.root_node.named_children if node.type == "class_declaration"]
    chosen = next((node for node in classes if file.node_text(node.child_by_field_name("name")) == class_name), None)
    chosen = chosen or (classes[0] if classes else None)
    if chosen is None:
        return ("public " if framework == JUNIT4 else "") + f"class {class_name} {{"
    body = chosen.child_by_field_name("body")
    header = flatten_span(file, chosen, chosen.start_byte, body.start_byte if body is not None else chosen.end_byte) + " {"
    fields, methods = [], []
    for member in body.named_children if body is not None else []:
        if member.type == "field_declaration":
            fields.append(reindent_span(file, member, member.start_byte, member.end_byte, INDENT))
        elif member.type == "method_declaration" and _is_java_lifecycle(file, member):
            methods.append(reindent_span(file, member, member.start_byte, member.end_byte, INDENT))
    groups = (["\n".join(fields)] if fields else []) + methods
    return header + ("\n\n" + "\n\n".join(groups) if groups else "")


def _is_java_lifecycle(file: SourceFile, method: Node) -> bool:
    name = file.node_text(method.child_by_field_name("name"))
    if name in ("setUp", "tearDown"):
        return True
    modifiers = next((child for child in method.children if child.type == "modifiers"), None)
    for annotation in modifiers.named_children if modifiers is not None else []:
        if annotation.type in ("marker_annotation", "annotation"):
            if file.node_text(annotation.child_by_field_name("name")).rsplit(".", 1)[-1] in _JAVA_LIFECYCLE:
                return True
    return False
