"""The rewrite of a unittest test method into a module-level pytest function: `unittest_to_pytest`,
one test method's text -> a pytest function's text, or None.

The standard library's tests (and many projects') are all unittest methods, so a model trained on
them writes `self.assertEqual(...)` even after a prompt that opens a pytest function; their pytest
rewrites are extra training data in the other style (`unitune.training.pytest_variants`).

Found in the syntax tree, only calls that are whole expression statements (`self.assertEqual(a, b)`
-> `assert a == b`, `self.assertRaises(E, f, x)` -> `with pytest.raises(E):` + `f(x)`, `self.fail`,
`self.skipTest`) or `with` items (`with self.assertRaises(E) as cm:` -> `with pytest.raises(E) as
cm:`, and `cm.exception` -> `cm.value`) are rewritten; `eq = self.assertEqual` aliases are inlined
first and unittest's skip decorators become marks. Operands get parentheses where precedence or a
line break needs them. A test that still uses `self` afterwards (set-up state, helpers, `subTest`,
asserts without a pytest spelling), takes parameters, is async, or does not parse and compile is not
converted: a skipped test costs nothing, a wrong rewrite teaches a wrong test.
"""

from __future__ import annotations

from tree_sitter import Node

from unitune.code_spans import reindent_span
from unitune.languages import PYTHON
from unitune.source import SourceFile
from unitune.syntax_walk import descendants
from unitune.training.unittest_method import (
    call_arguments, decorated_span, is_field_name, is_standalone_function, line_bounds, self_attribute,
    self_method, takes_only_self, method_definition,
)

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
        definition = method_definition(source)
        if source.tree.root_node.has_error or definition is None or not takes_only_self(source, definition):
            return None
        edits = prepare(source, definition)
        if edits is None:
            return None
        if edits:
            source = SourceFile(_apply(source, edits), PYTHON)
    definition = method_definition(source)
    if definition is None:
        return None
    span = decorated_span(definition)
    start = source.offset(span.start_point.row, 0)
    rebased = SourceFile(source.bytes_text(start, span.end_byte), PYTHON)
    first = len(rebased.data) - len(rebased.data.lstrip(b" \t"))
    result = reindent_span(rebased, rebased.tree.root_node, first, len(rebased.data), "").rstrip() + "\n"
    return result if is_standalone_function(result) else None


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
        before, after, _ = line_bounds(source, statement)
        if left is not None and left.type == "identifier" and self_attribute(source, right) in _STATEMENT_METHODS \
                and not before.strip() and not after.strip():
            aliases.setdefault(source.node_text(left), statement)
    uses: dict[str, list[Node]] = {name: [] for name in aliases}
    for node in descendants(definition):
        name = source.node_text(node) if node.type == "identifier" else None
        if name not in uses or is_field_name(node) or node.parent == aliases[name].named_children[0]:
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
        edits.append((source.offset(statement.start_point.row, 0), line_bounds(source, statement)[2], ""))
    return edits


def _rename_context_targets(source: SourceFile, definition: Node) -> list[Edit] | None:
    """Edits spelling `cm.exception` as `cm.value` for every `with self.assertRaises(...) as cm`;
    None when such a `cm` is used any other way (pytest's `ExceptionInfo` has no equivalent)."""
    targets: dict[str, set[int]] = {}
    for node in descendants(definition):
        if node.type == "as_pattern" and node.parent is not None and node.parent.type == "with_item":
            alias = node.child_by_field_name("alias")
            name = alias.named_children[0] if alias is not None and alias.named_children else None
            if name is not None and name.type == "identifier" and self_method(source, node.named_children[0]) in _RAISES:
                targets.setdefault(source.node_text(name), set()).add(name.start_byte)
    edits = []
    for node in descendants(definition) if targets else ():
        name = source.node_text(node) if node.type == "identifier" else None
        if name not in targets or node.start_byte in targets[name] or is_field_name(node):
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
    span = decorated_span(definition)
    for node in descendants(span):
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
    method = self_method(source, call)
    if method in _RAISES:
        return _raises_statement(source, statement, call, _RAISES[method])
    parsed = call_arguments(source, call) if method in _STATEMENT_METHODS else None
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
                parsed = call_arguments(source, call) if self_method(source, call) in _RAISES else None
                if parsed is not None and (not parsed[0] or parsed[0][0].type not in ("identifier", "attribute")
                                           or source.node_text(parsed[0][0]) in _BROAD_EXCEPTIONS):
                    return True
        child, node = node, node.parent
    return False


def _raises_call(source: SourceFile, call: Node | None) -> str | None:
    """`pytest.raises(E)` / `pytest.raises(E, match=pattern)` for a `with` item's assertRaises call."""
    method = self_method(source, call)
    parsed = call_arguments(source, call) if method in _RAISES else None
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
    indent, after, _ = line_bounds(source, statement)
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
    parsed = call_arguments(source, expression)
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
