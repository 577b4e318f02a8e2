"""Pytest-style variants of mined unittest pairs: extra training data in the other Python style.

The standard library's tests (and many projects') are all unittest methods, so a model trained on
them writes `self.assertEqual(...)` even after a prompt that opens a pytest function. This module
owns the rewrite of a unittest test method into a module-level pytest function and the training
pairs built from it:

- `unittest_to_pytest`: one test method's text -> a pytest function's text, or None. Found in the
  syntax tree, only calls that are whole expression statements (`self.assertEqual(a, b)` ->
  `assert a == b`, `self.assertRaises(E, f, x)` -> `with pytest.raises(E):` + `f(x)`, `self.fail`,
  `self.skipTest`) or `with` items (`with self.assertRaises(E) as cm:` -> `with pytest.raises(E) as
  cm:`, and `cm.exception` -> `cm.value`) are rewritten; `eq = self.assertEqual` aliases are inlined
  first and unittest's skip decorators become marks. Operands get parentheses where precedence or
  a line break needs them. A test that still uses `self` afterwards (set-up state, helpers,
  `subTest`, asserts without a pytest spelling), takes parameters, is async, or does not parse and
  compile is not converted: a skipped test costs nothing, a wrong rewrite teaches a wrong test.
- `pytest_variant` / `pytest_variants`: a mined pair (`unitune.training.pairs.Pair.to_json()`) ->
  the same pair as a pytest test, its prompt built by `unitune.prompt.training_example` exactly as
  inference builds a pytest prompt (header: `import pytest` plus the original test file's imports).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from tree_sitter import Node

from unitune.context import module_imports, reindent_span
from unitune.errors import UnituneError
from unitune.focal import Function, functions
from unitune.frameworks import PYTEST, UNITTEST
from unitune.languages import PYTHON
from unitune.placement import python_module_name
from unitune.prompt import training_example
from unitune.source import SourceFile
from unitune.training.python_modules import primary_functions

# assert method -> its condition ({0}, {1}: the operands).
_UNARY = {
    "assertTrue": "{0}", "assert_": "{0}", "failUnless": "{0}",
    "assertFalse": "not {0}", "failIf": "not {0}",
    "assertIsNone": "{0} is None", "assertIsNotNone": "{0} is not None",
}
_COMPARISONS = {
    "assertEqual": "==", "assertEquals": "==", "failUnlessEqual": "==",
    "assertNotEqual": "!=", "assertNotEquals": "!=", "failIfEqual": "!=",
    "assertIs": "is", "assertIsNot": "is not", "assertIn": "in", "assertNotIn": "not in",
    "assertGreater": ">", "assertGreaterEqual": ">=", "assertLess": "<", "assertLessEqual": "<=",
}
_INSTANCE = {"assertIsInstance": "isinstance({0}, {1})", "assertNotIsInstance": "not isinstance({0}, {1})"}
# assertRaises-like method -> how many leading arguments go to `pytest.raises` (E, and the pattern).
_RAISES = {"assertRaises": 1, "failUnlessRaises": 1, "assertRaisesRegex": 2, "assertRaisesRegexp": 2}
_OUTCOMES = {"fail": "pytest.fail", "skipTest": "pytest.skip"}
_BROAD_EXCEPTIONS = frozenset({"Exception", "BaseException", "AssertionError", "unittest.SkipTest", "SkipTest"})
_FUNCTION_DECORATOR_PREFIXES = ("skip", "requires", "cpython_only", "impl_detail", "run_with_")
_STATEMENT_METHODS = frozenset(_UNARY) | frozenset(_COMPARISONS) | frozenset(_INSTANCE) | frozenset(_RAISES) | frozenset(_OUTCOMES)

# Binding strength of Python expressions (higher binds tighter); what is not listed gets parentheses.
_PRIMARY = 9
_LEVELS = {
    "lambda": 0, "conditional_expression": 1, "boolean_operator": 2, "not_operator": 3,
    "comparison_operator": 4, "binary_operator": 5, "unary_operator": 6,
}
_ATOMS = frozenset({
    "identifier", "attribute", "call", "subscript", "string", "concatenated_string", "integer", "float",
    "true", "false", "none", "ellipsis", "list", "tuple", "dictionary", "set", "list_comprehension",
    "set_comprehension", "dictionary_comprehension", "generator_expression", "parenthesized_expression",
})
_CALLABLE = frozenset({"identifier", "attribute", "call", "subscript", "parenthesized_expression"})
# Nodes whose line breaks are inside their own brackets (or inside a string literal).
_ENCLOSED = frozenset({
    "list", "tuple", "dictionary", "set", "list_comprehension", "set_comprehension",
    "dictionary_comprehension", "generator_expression", "parenthesized_expression", "argument_list", "string",
})
# Minimum binding strength of an operand: of `assert x`, of `not x`, of a comparison's sides.
_ANY, _NOT, _COMPARED = 0, 3, 5

Edit = tuple[int, int, str]  # bytes [start, end) and their replacement


def unittest_to_pytest(test_code: str) -> str | None:
    """A unittest test method (indented, maybe decorated) as a module-level pytest function at
    column 0 without `self`, or None when it cannot be rewritten faithfully."""
    source = SourceFile(test_code, PYTHON)
    for prepare in (_inline_aliases, _rename_context_targets, _rewrite):
        definition = _definition(source)
        if source.tree.root_node.has_error or definition is None or not _only_self_parameter(source, definition):
            return None
        edits = prepare(source, definition)
        if edits is None:
            return None
        if edits:
            source = SourceFile(_apply(source, edits), PYTHON)
    definition = _definition(source)
    if definition is None:
        return None
    span = _span(definition)
    start = source.offset(span.start_point.row, 0)
    rebased = SourceFile(source.bytes_text(start, span.end_byte), PYTHON)
    first = len(rebased.data) - len(rebased.data.lstrip(b" \t"))
    result = reindent_span(rebased, rebased.tree.root_node, first, len(rebased.data), "").rstrip() + "\n"
    return result if _is_valid(result) else None


# -- the method ----------------------------------------------------------------------------------

def _walk(node: Node):
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def _definition(source: SourceFile) -> Node | None:
    """The test's function definition: the file's only top-level statement; None for async tests."""
    statements = [n for n in source.tree.root_node.named_children if n.type != "comment"]
    if len(statements) != 1:
        return None
    node = statements[0]
    node = node.child_by_field_name("definition") if node.type == "decorated_definition" else node
    if node is None or node.type != "function_definition" or any(c.type == "async" for c in node.children):
        return None
    return node


def _span(definition: Node) -> Node:
    parent = definition.parent
    return parent if parent is not None and parent.type == "decorated_definition" else definition


def _only_self_parameter(source: SourceFile, definition: Node) -> bool:
    parameters = [p for p in definition.child_by_field_name("parameters").named_children if p.type != "comment"]
    return len(parameters) == 1 and parameters[0].type == "identifier" and source.node_text(parameters[0]) == "self"


def _self_attribute(source: SourceFile, node: Node | None) -> str | None:
    """`assertEqual` for `self.assertEqual`, else None."""
    if node is None or node.type != "attribute":
        return None
    target = node.child_by_field_name("object")
    if target.type != "identifier" or source.node_text(target) != "self":
        return None
    return source.node_text(node.child_by_field_name("attribute"))


def _self_method(source: SourceFile, call: Node | None) -> str | None:
    """`assertEqual` for a call `self.assertEqual(...)`, else None."""
    return _self_attribute(source, call.child_by_field_name("function")) if call is not None and call.type == "call" else None


def _is_field_name(node: Node) -> bool:
    """Whether an identifier names an attribute (`x.name`) or a keyword argument (`f(name=1)`)
    rather than a variable."""
    parent = node.parent
    return (parent.type == "attribute" and parent.child_by_field_name("attribute") == node) or (
        parent.type == "keyword_argument" and parent.child_by_field_name("name") == node)


def _arguments(source: SourceFile, call: Node) -> tuple[list[Node], dict[str, Node]] | None:
    """(positional, keyword) arguments of a call; None when it splats or passes a bare generator."""
    arguments = call.child_by_field_name("arguments")
    if arguments is None or arguments.type != "argument_list":
        return None
    positional, keywords = [], {}
    for argument in arguments.named_children:
        if argument.type == "comment":
            continue
        if argument.type in ("list_splat", "dictionary_splat") or (keywords and argument.type != "keyword_argument"):
            return None
        if argument.type == "keyword_argument":
            keywords[source.node_text(argument.child_by_field_name("name"))] = argument.child_by_field_name("value")
        else:
            positional.append(argument)
    return positional, keywords


def _line_bounds(source: SourceFile, node: Node) -> tuple[str, str, int]:
    """(text before `node` on its first line, text after it on its last line, end of that line
    including its line break)."""
    line_start = source.offset(node.start_point.row, 0)
    last = node.end_point.row
    line_end = source.offset(last, 0) + len(source.line_bytes(last))
    following = source.offset(last + 1, 0) if last + 1 < source.line_count else len(source.data)
    return source.bytes_text(line_start, node.start_byte), source.bytes_text(node.end_byte, line_end), following


# -- preparation: aliases and context targets ----------------------------------------------------

def _inline_aliases(source: SourceFile, definition: Node) -> list[Edit]:
    """Edits removing `eq = self.assertEqual` (a statement of the test's body on lines of its own)
    and spelling its calls `self.assertEqual(...)`, when every use of `eq` is such a call statement."""
    aliases: dict[str, Node] = {}
    for statement in definition.child_by_field_name("body").named_children:
        assignment = statement.named_children[0] if statement.type == "expression_statement" and statement.named_child_count == 1 else None
        if assignment is None or assignment.type != "assignment":
            continue
        left, right = assignment.child_by_field_name("left"), assignment.child_by_field_name("right")
        before, after, _ = _line_bounds(source, statement)
        if left is not None and left.type == "identifier" and _self_attribute(source, right) in _STATEMENT_METHODS \
                and not before.strip() and not after.strip():
            aliases.setdefault(source.node_text(left), statement)
    uses: dict[str, list[Node]] = {name: [] for name in aliases}
    for node in _walk(definition):
        name = source.node_text(node) if node.type == "identifier" else None
        if name not in uses or _is_field_name(node) or node.parent == aliases[name].named_children[0]:
            continue
        call = node.parent
        if call.type == "call" and call.child_by_field_name("function") == node \
                and call.parent.type == "expression_statement" and call.parent.named_child_count == 1:
            uses[name].append(node)
        else:
            uses[name].append(None)  # used another way (or assigned again): left alone
    edits = []
    for name, statement in aliases.items():
        if not uses[name] or None in uses[name]:
            continue
        method = source.node_text(statement.named_children[0].child_by_field_name("right"))
        edits += [(node.start_byte, node.end_byte, method) for node in uses[name]]
        edits.append((source.offset(statement.start_point.row, 0), _line_bounds(source, statement)[2], ""))
    return edits


def _rename_context_targets(source: SourceFile, definition: Node) -> list[Edit] | None:
    """Edits spelling `cm.exception` as `cm.value` for every `with self.assertRaises(...) as cm`;
    None when such a `cm` is used any other way (pytest's `ExceptionInfo` has no equivalent)."""
    targets: dict[str, set[int]] = {}
    for node in _walk(definition):
        if node.type == "as_pattern" and node.parent is not None and node.parent.type == "with_item":
            alias = node.child_by_field_name("alias")
            name = alias.named_children[0] if alias is not None and alias.named_children else None
            if name is not None and name.type == "identifier" and _self_method(source, node.named_children[0]) in _RAISES:
                targets.setdefault(source.node_text(name), set()).add(name.start_byte)
    edits = []
    for node in _walk(definition) if targets else ():
        name = source.node_text(node) if node.type == "identifier" else None
        if name not in targets or node.start_byte in targets[name] or _is_field_name(node):
            continue
        parent = node.parent
        attribute = parent.child_by_field_name("attribute") if parent.type == "attribute" else None
        if attribute is None or parent.child_by_field_name("object") != node or source.node_text(attribute) != "exception":
            return None
        edits.append((attribute.start_byte, attribute.end_byte, "value"))
    return edits


# -- rewrites ------------------------------------------------------------------------------------

def _rewrite(source: SourceFile, definition: Node) -> list[Edit] | None:
    """Edits rewriting the asserts, `pytest.raises` items, skip decorators and the parameters; None
    for a decorator that may expect a method (`@support.bigmemtest` wraps `def wrapper(self)`)."""
    parameters = definition.child_by_field_name("parameters")
    edits = [(parameters.start_byte, parameters.end_byte, "()")]
    span = _span(definition)
    for node in _walk(span):
        replacement = None
        if node.type == "expression_statement" and node.named_child_count == 1:
            replacement = _statement(source, node)
        elif node.type == "with_item":
            call = node.child_by_field_name("value")
            node = call.named_children[0] if call is not None and call.type == "as_pattern" else call
            replacement = _raises_call(source, node)
        elif node.type == "decorator" and node.parent == span:  # the test's own, not in its body
            replacement = _decorator(source, node)
            if replacement is None and not _keeps_working_on_a_function(source, node):
                return None
        if replacement is not None:
            edits.append((node.start_byte, node.end_byte, replacement))
    return edits


def _statement(source: SourceFile, statement: Node) -> str | None:
    """The rewrite of a statement `self.assertX(...)`, or None to leave it as it is."""
    call = statement.named_children[0]
    method = _self_method(source, call)
    if method in _RAISES:
        return _raises_statement(source, statement, call, _RAISES[method])
    parsed = _arguments(source, call) if method in _STATEMENT_METHODS else None
    if parsed is None:
        return None
    positional, keywords = parsed
    if method in _OUTCOMES:
        if _may_be_caught(source, statement):
            return None  # unittest raises an Exception here, pytest a BaseException: not the same test
        name = "msg" if method == "fail" else "reason"
        arguments = positional + [keywords.pop(name)] if name in keywords else positional
        if keywords or len(arguments) > 1 or (method == "skipTest" and not arguments):
            return None
        return f"{_OUTCOMES[method]}({source.node_text(arguments[0]) if arguments else ''})"
    wanted = 1 if method in _UNARY else 2
    if set(keywords) - {"msg"} or len(positional) < wanted or len(positional) + len(keywords) > wanted + 1:
        return None
    operands, rest = positional[:wanted], positional[wanted:] + list(keywords.values())
    if method in _UNARY:
        template = _UNARY[method]
        minimum = _ANY if template == "{0}" else _NOT if template.startswith("not ") else _COMPARED
        condition = template.format(_operand(source, operands[0], minimum))
    elif method in _COMPARISONS:
        left, right = (_operand(source, operand, _COMPARED) for operand in operands)
        condition = f"{left} {_COMPARISONS[method]} {right}"
    else:
        condition = _INSTANCE[method].format(*(source.node_text(operand) for operand in operands))
    message = f", {_operand(source, rest[0], _ANY)}" if rest else ""
    return f"assert {condition}{message}"


def _may_be_caught(source: SourceFile, statement: Node) -> bool:
    """Whether an exception raised by `statement` may be caught inside the test: it is in the body
    of a `try`, or of a `with self.assertRaises(...)` of something broader than one named class."""
    child, node = statement, statement.parent
    while node is not None and node.type != "function_definition":
        if node.type == "try_statement" and node.child_by_field_name("body") == child:
            return True
        if node.type == "with_statement":
            for item in node.named_children[0].named_children if node.named_children[0].type == "with_clause" else ():
                call = item.child_by_field_name("value")
                call = call.named_children[0] if call is not None and call.type == "as_pattern" else call
                parsed = _arguments(source, call) if _self_method(source, call) in _RAISES else None
                if parsed is not None and (not parsed[0] or parsed[0][0].type not in ("identifier", "attribute")
                                           or source.node_text(parsed[0][0]) in _BROAD_EXCEPTIONS):
                    return True
        child, node = node, node.parent
    return False


def _raises_call(source: SourceFile, call: Node | None) -> str | None:
    """`pytest.raises(E)` / `pytest.raises(E, match=pattern)` for a `with` item's assertRaises call."""
    method = _self_method(source, call)
    parsed = _arguments(source, call) if method in _RAISES else None
    if parsed is None or parsed[1] or len(parsed[0]) != _RAISES[method]:
        return None  # e.g. `msg=`: pytest.raises has no message
    return _pytest_raises(source, parsed[0])


def _pytest_raises(source: SourceFile, arguments: list[Node]) -> str:
    match = f", match={source.node_text(arguments[1])}" if len(arguments) == 2 else ""
    return f"pytest.raises({source.node_text(arguments[0])}{match})"


def _raises_statement(source: SourceFile, statement: Node, call: Node, leading: int) -> str | None:
    """`self.assertRaises(E, f, *args, **kw)` on a line of its own -> `with pytest.raises(E):` and
    `f(*args, **kw)` on the next line (`lambda: expr` -> `expr`)."""
    arguments = call.child_by_field_name("arguments")
    if arguments is None or arguments.type != "argument_list" or statement.parent.type != "block":
        return None
    items = [a for a in arguments.named_children if a.type != "comment"]
    if len(items) <= leading or any(a.type in ("keyword_argument", "list_splat", "dictionary_splat") for a in items[:leading + 1]):
        return None
    indent, after, _ = _line_bounds(source, statement)
    if indent.strip() or (after.strip() and not after.strip().startswith("#")):
        return None  # not on a line of its own: a `with` cannot go there
    function, extra = items[leading], items[leading + 1:]
    if function.type == "lambda" and function.child_by_field_name("parameters") is None and not extra:
        invocation = _operand(source, function.child_by_field_name("body"), _ANY)
    else:
        invocation = f"{_operand(source, function, _PRIMARY)}({', '.join(source.node_text(a) for a in extra)})"
    step = "\t" if "\t" in indent else "    "
    return f"with {_pytest_raises(source, items[:leading])}:\n{indent}{step}{invocation}"


def _decorator(source: SourceFile, decorator: Node) -> str | None:
    """unittest's skip decorators as pytest marks; other decorators stay as they are."""
    expression = decorator.named_children[0] if decorator.named_children else None
    if expression is not None and source.node_text(expression) == "unittest.expectedFailure":
        return "@pytest.mark.xfail(strict=True)"
    if expression is None or expression.type != "call":
        return None
    name = source.node_text(expression.child_by_field_name("function"))
    parsed = _arguments(source, expression)
    if parsed is None or parsed[1]:
        return None
    arguments = parsed[0]
    if name == "unittest.skip" and len(arguments) == 1:
        return f"@pytest.mark.skip(reason={source.node_text(arguments[0])})"
    if name in ("unittest.skipIf", "unittest.skipUnless") and len(arguments) == 2:
        condition = source.node_text(arguments[0]) if name.endswith("If") else "not " + _operand(source, arguments[0], _NOT)
        return f"@pytest.mark.skipif({condition}, reason={source.node_text(arguments[1])})"
    return None


def _keeps_working_on_a_function(source: SourceFile, decorator: Node) -> bool:
    """Whether a decorator kept as it is does the same to a function as to a method: by its name,
    one that skips (`@skip_unless_symlink`, `@requires_zlib`, `@cpython_only`) or wraps any callable
    (`@run_with_tz(...)`). Other decorators are unknown, and the test is not converted."""
    expression = decorator.named_children[0] if decorator.named_children else None
    if expression is not None and expression.type == "call":
        expression = expression.child_by_field_name("function")
    if expression is None or expression.type not in ("identifier", "attribute"):
        return False
    return source.node_text(expression).rsplit(".", 1)[-1].startswith(_FUNCTION_DECORATOR_PREFIXES)


def _operand(source: SourceFile, node: Node, minimum: int) -> str:
    """The text of `node`, in parentheses when it binds more loosely than `minimum` (`_PRIMARY`:
    something to call) or has a line break that only the call's brackets made legal."""
    text = source.node_text(node)
    level = _PRIMARY if node.type in _ATOMS else _LEVELS.get(node.type, -1)
    if level < minimum or (minimum == _PRIMARY and node.type not in _CALLABLE) or _bare_line_break(source, node):
        return f"({text})"
    return text


def _bare_line_break(source: SourceFile, node: Node) -> bool:
    """Whether `node` spans lines outside brackets of its own (legal inside the assert call's
    argument list, a syntax error or another statement once it starts a line)."""
    if node.type in _ENCLOSED:
        return False
    cursor = node.start_byte
    for child in node.children:
        if "\n" in source.bytes_text(cursor, child.start_byte) or _bare_line_break(source, child):
            return True
        cursor = child.end_byte
    return "\n" in source.bytes_text(cursor, node.end_byte)


def _apply(source: SourceFile, edits: list[Edit]) -> str:
    """The text of `source` with each edit made (edits do not overlap)."""
    pieces, cursor = [], 0
    for start, end, replacement in sorted(edits):
        pieces += [source.bytes_text(cursor, start), replacement]
        cursor = end
    pieces.append(source.bytes_text(cursor, len(source.data)))
    return "".join(pieces)


# -- validation ----------------------------------------------------------------------------------

def _is_valid(text: str) -> bool:
    """A function that parses, compiles, and keeps nothing of the test class: no `self` but a
    nested function's own, no `super()`, `__class__` or private (class-mangled) names outside a
    nested class, no `yield` (pytest does not run generator tests), no string expecting a
    `<locals>` qualified name (the test class's name was part of it)."""
    parsed = SourceFile(text, PYTHON)
    definition = _definition(parsed)
    if parsed.tree.root_node.has_error or definition is None:
        return False
    for node in _walk(definition):
        if node.type == "yield" and _enclosing_function(node) == definition:
            return False
        if node.type == "string_content" and "<locals>" in parsed.node_text(node):
            return False  # expects a qualified name with the test class in it
        if node.type != "identifier":
            continue
        name = parsed.node_text(node)
        if name == "self" and not _is_field_name(node) and not _bound_self(parsed, node, definition):
            return False
        private = name.startswith("__") and not name.endswith("__")
        if (private or (name in ("super", "__class__") and not _is_field_name(node))) and not _in_nested_class(node, definition):
            return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. `assert x is 1`: as legal as `assertIs(x, 1)` was
            compile(text, "<pytest variant>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def _enclosing_function(node: Node) -> Node | None:
    node = node.parent
    while node is not None and node.type not in ("function_definition", "lambda"):
        node = node.parent
    return node


def _bound_self(source: SourceFile, node: Node, definition: Node) -> bool:
    """Whether a `self` inside the test is a parameter of a function nested in it."""
    scope = _enclosing_function(node)
    while scope is not None and scope != definition:
        parameters = scope.child_by_field_name("parameters")
        for parameter in parameters.named_children if parameters is not None else ():
            name = parameter if parameter.type == "identifier" else parameter.child_by_field_name("name")
            if name is None and parameter.named_children:
                name = parameter.named_children[0]
            if name is not None and source.node_text(name) == "self":
                return True
        scope = _enclosing_function(scope)
    return False


def _in_nested_class(node: Node, definition: Node) -> bool:
    node = node.parent
    while node is not None and node != definition:
        if node.type == "class_definition":
            return True
        node = node.parent
    return False


# -- pairs ---------------------------------------------------------------------------------------

class _Files:
    """Parsed files and their functions by path: many pairs share a focal file and a test file."""

    def __init__(self):
        self.sources: dict[Path, SourceFile | None] = {}
        self.functions: dict[Path, list[Function]] = {}

    def source(self, path: Path) -> SourceFile | None:
        if path not in self.sources:
            try:
                self.sources[path] = SourceFile.from_path(path)
            except (UnituneError, OSError, ValueError):
                self.sources[path] = None
        return self.sources[path]

    def function(self, path: Path, qualified_name: str, code: str) -> Function | None:
        """The function mining paired: the definition of that name whose text is `code`, else the
        primary definition of the name."""
        file = self.source(path)
        if file is None:
            return None
        if path not in self.functions:
            self.functions[path] = functions(file)
        found = [f for f in self.functions[path] if f.qualified_name == qualified_name]
        same = [f for f in found if f.source(file) == code]
        return (same or primary_functions(found) or [None])[0]


def pytest_variant(pair: dict, root: Path, cache: _Files | None = None) -> dict | None:
    """The pytest variant of a mined unittest pair (paths relative to `root`), or None when its test
    does not convert or its files cannot be read. `cache` shares parsed files between calls."""
    if pair.get("framework") != UNITTEST or pair.get("language") != PYTHON:
        return None
    converted = unittest_to_pytest(pair["test_code"])
    if converted is None:
        return None
    files = cache if cache is not None else _Files()
    focal_path = Path(root) / pair["focal_file"]
    function = files.function(focal_path, pair["focal_qualified_name"], pair["focal_code"])
    test_file = files.source(Path(root) / pair["test_file"])
    if function is None or test_file is None:
        return None
    imports = [line for line in module_imports(test_file) if line != "import pytest"]
    try:
        prompt, completion = training_example(
            files.source(focal_path), function, converted, framework=PYTEST,
            module_import=python_module_name(focal_path, root),
            existing_test_source="\n".join(["import pytest", *imports]) + "\n", test_class=None,
        )
    except UnituneError:
        return None
    variant = dict(pair)
    variant.update(
        framework=PYTEST, test_code=converted, test_name=pair["test_name"].rsplit(".", 1)[-1],
        test_class=None, prompt=prompt, completion=completion, variant_of=pair["test_name"],
    )
    return variant


def pytest_variants(pairs: list[dict], root: Path) -> tuple[list[dict], dict]:
    """The pytest variants of the unittest pairs among `pairs`, one per distinct (prompt,
    completion) as mining keeps them, and counts: `unittest_pairs`, `variants`, `not_convertible`
    and `duplicates` (variants identical to an earlier one)."""
    files = _Files()
    variants, seen = [], set()
    counts = {"unittest_pairs": 0, "variants": 0, "not_convertible": 0, "duplicates": 0}
    for pair in pairs:
        if pair.get("framework") != UNITTEST or pair.get("language") != PYTHON:
            continue
        counts["unittest_pairs"] += 1
        variant = pytest_variant(pair, root, files)
        key = (variant["prompt"], variant["completion"]) if variant is not None else None
        if variant is None:
            counts["not_convertible"] += 1
        elif key in seen:
            counts["duplicates"] += 1
        else:
            seen.add(key)
            variants.append(variant)
    counts["variants"] = len(variants)
    return variants, counts
