"""New Python tests from delivered ones, each with one input changed.

A small model writes the happy path it saw in the docstring and rarely finds the input that reaches a
guard (`raise TypeError` for a wrong type, the branch for an empty string, zero or a negative number);
a search-based tool finds those by trying values. This module makes the candidates for such a round,
without the model. For each delivered test it takes the first top-level statement that calls the focal
function and changes one thing:
- an argument of that call, to an edge of its own kind (`0`, `-1`, `""`, an empty collection), a
  literal the focal function itself compares against or branches on (`"seconds"`, `86400`), or a value
  of another kind (`None`, `"x"`, `1`);
- an optional parameter the call left out, given such a value (`FocalInputs`);
- another literal the check reads (the index of `Version(3, 4, 5)[0]`) or the set-up it needs builds
  the object from (`Version.parse("1.0.0")`), within its own kind.
The variant checks what the test checked (the call; for a special method run through its class, the
expression that runs it: `str(version)`) as `assert <expression> == None`, after the set-up it still
needs. The value `None` is a placeholder: the assured pipeline runs each candidate, observes what the
expression really gives or raises, writes that as the expected value or a `pytest.raises` block
(`unitune.assured.oracles`), and keeps a candidate only when it runs lines or branches, or catches mutants,
that the tests before it do not.
"""

from __future__ import annotations

import ast
import copy
import textwrap
from dataclasses import dataclass, field

from unitune.assured.python_assertions import parse_test_function
from unitune.assured.test_statements import Statement, TestBody, needed_by, parse_body, render

#: Candidates per round when the caller gives no limit.
MAX_VARIANTS = 12
#: The focal function's own literals tried per argument, and the longest string literal taken: a
#: message or a template is not an input.
LITERALS_PER_ARGUMENT = 10
LONGEST_LITERAL = 30
#: A text argument is also tried at least this long (its own text repeated): for a length limit.
LONG_TEXT = 1000


@dataclass(frozen=True)
class FocalInputs:
    """What the focal function's own text offers a search for inputs: the parameters a call may leave
    out (with their defaults), and the literals its body compares against or branches on."""

    optional: dict[str, ast.expr] = field(default_factory=dict)  # keyword-passable, in order
    positional: tuple[str, ...] = ()  # the parameters a positional argument fills, in order (no self)
    literals: tuple[object, ...] = ()  # str, int and float literals of the body, docstring left out
    # The built-in kinds the body tests a parameter for (`isinstance(other, (tuple, list))`): each is a
    # branch of its own, reached by a value of that kind.
    kinds: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # For a special method run through its class (`str(Version(1, 2, 3))`): its class's constructor,
    # whose left-out parameters (`prerelease=`) make the object the method sees differ.
    constructor: FocalInputs | None = None


def focal_inputs(source: str, constructor: str | None = None) -> FocalInputs:
    """`FocalInputs` of one function's source (as `Function.source` gives it), with its class's
    `constructor` source for a special method; empty when it does not parse on its own."""
    try:
        # A method's text is indented; `dedent` cannot undo that when a docstring line starts further
        # left (semver's `Version.parse`), a block around it can.
        tree = ast.parse(f"if True:\n{source}" if source[:1].isspace() else source)
    except SyntaxError:
        return FocalInputs()
    statements = tree.body[0].body if source[:1].isspace() else tree.body
    function = next((node for node in statements if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    if function is None:
        return FocalInputs()
    arguments = function.args
    positional = [argument.arg for argument in arguments.posonlyargs + arguments.args]
    if positional and positional[0] in ("self", "cls"):
        positional = positional[1:]
    named = arguments.args[len(arguments.args) - len(arguments.defaults):] if arguments.defaults else []
    optional = {argument.arg: default for argument, default in zip(named, arguments.defaults)}
    optional.update({argument.arg: default for argument, default in zip(arguments.kwonlyargs, arguments.kw_defaults)
                     if default is not None})
    return FocalInputs(optional, tuple(positional), _body_literals(function), _tested_kinds(function),
                       focal_inputs(constructor) if constructor is not None else None)


#: A value of each built-in kind an `isinstance` test may ask for, as a test writes it.
KIND_VALUES = {"dict": "{}", "list": "[]", "tuple": "()", "set": "set()", "frozenset": "frozenset()", "str": "''",
               "bytes": "b''", "int": "0", "float": "0.0", "bool": "True"}


def _tested_kinds(function: ast.FunctionDef | ast.AsyncFunctionDef) -> dict[str, tuple[str, ...]]:
    """The built-in kinds `isinstance(parameter, ...)` tests each parameter for, in the body's order."""
    found: dict[str, list[str]] = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance" \
                and len(node.args) == 2 and isinstance(node.args[0], ast.Name):
            tested = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
            kinds = found.setdefault(node.args[0].id, [])
            kinds += [kind.id for kind in tested if isinstance(kind, ast.Name) and kind.id in KIND_VALUES
                      and kind.id not in kinds]
    return {name: tuple(kinds) for name, kinds in found.items() if kinds}


def _body_literals(function: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[object, ...]:
    """The literals of the body that may be inputs, those it compares against first (`x == 1`,
    `unit in ("days", "years")`): not its docstring, messages (`raise`), what it returns unless
    compared there (`return _("a moment")` is an output), templates (f-strings, `"%d days"`,
    `"{} items"`) or long text."""
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]  # the docstring
    compared = {id(part) for statement in body for node in ast.walk(statement)
                if isinstance(node, ast.Compare) for part in ast.walk(node)}
    not_inputs = {id(part) for statement in body for node in ast.walk(statement)
                  if isinstance(node, (ast.JoinedStr, ast.Raise)) for part in ast.walk(node)}
    not_inputs |= {id(part) for statement in body for node in ast.walk(statement)
                   if isinstance(node, ast.Return) for part in ast.walk(node) if id(part) not in compared}
    found: list[tuple[bool, object]] = []
    for statement in body:
        for node in ast.walk(statement):
            if isinstance(node, ast.Constant) and id(node) not in not_inputs and type(node.value) in (str, int, float):
                value = node.value
                if isinstance(value, str) and not (0 < len(value) <= LONGEST_LITERAL
                                                   and not any(mark in value for mark in "\n%{")):
                    continue
                found.append((id(node) not in compared, value))
    ordered = [value for _, value in sorted(found, key=lambda item: item[0])]  # stable: compared ones first
    return tuple(dict.fromkeys(ordered))


def varied_bodies(tests: list[tuple[str, str]], called_as: tuple[str, ...], indent: str,
                  limit: int = MAX_VARIANTS, inputs: FocalInputs = FocalInputs(),
                  tried: frozenset[str] = frozenset()) -> list[str]:
    """Test bodies (indented by `indent`, to follow a `def` line) for the tests `(source, name)`, each
    calling the focal function (named `called_as` in a test) with one argument changed or one optional
    parameter added, none of them among `tried`. One argument after another and one value after
    another, so that a `limit` still tries every argument."""
    per_call: list[list[str]] = []
    for source, name in tests:
        variants = [body for body in _variants_of(source, name, called_as, inputs)
                    if textwrap.indent(body, indent) not in tried]
        if variants:
            per_call.append(variants)
    bodies = list(dict.fromkeys(_interleaved(per_call)))
    return [textwrap.indent(body, indent) for body in bodies[:limit]]


def _interleaved(lists: list[list]) -> list:
    """The first item of each list, then the second of each, and so on."""
    return [items[turn] for turn in range(max(map(len, lists), default=0)) for items in lists if turn < len(items)]


def _variants_of(source: str, name: str, called_as: tuple[str, ...], inputs: FocalInputs) -> list[str]:
    parsed, body = parse_test_function(source), parse_body(source)
    if parsed is None or body is None or _takes_self(parsed[0]):
        return []  # a unittest method runs through its class's set-up: not rebuilt here
    found = next(((statement, call) for statement in body.statements
                  if (call := _focal_call(statement.node, called_as, bool(inputs.optional))) is not None), None)
    if found is None:
        return []
    statement, call = found
    check_index, checked = _checked(body, statement, call, called_as)
    setup = sorted(needed_by(body, {check_index}) - {check_index})
    bound = _literal_names(body.statements[: statement.index])  # names the set-up binds to a literal
    through_class = checked is not call and _called_name(call) == called_as[0] != called_as[-1]
    called = (inputs.constructor or FocalInputs()) if through_class else inputs  # what `call` runs
    focal = [(argument, _with_kinds([_value(value) for value in _replacements(bound.get(_name(argument), argument),
                                                                              called.literals)],
                                    called.kinds.get(_parameter(key, called), ())))
             for key, argument in _arguments(call)]
    focal += [(call, [_with_keyword(call, parameter, value)
                      for value in _with_kinds([_value(value) for value in _replacements(default, called.literals)],
                                               called.kinds.get(parameter, ()))])
              for parameter, default in _left_out(call, called).items()]
    # The other literals: in the set-up of their own kind only, as another kind mostly makes it raise.
    arguments = {id(bound.get(_name(argument), argument))  # varied above (a literal inside one is not:
                 for _, argument in _arguments(call)}              # `timedelta(days=1)`)
    owners = [(checked, False)] + [(body.statements[index].node, True) for index in setup]
    indexes = {id(node.slice) for node in ast.walk(checked) if isinstance(node, ast.Subscript)}
    other = [(node, _slices(node, indexes) + [_value(value) for value in _replacements(node, inputs.literals)
                                              if not own_kind or type(value) is type(node.value)])
             for owner, own_kind in owners for node in _literals_in(owner) if id(node) not in arguments]
    # A call through the class only makes the object: what the check does with it comes first (`[0]`).
    positions = other + focal if through_class else focal + other
    by_position = [[(target, replacement) for replacement in replacements] for target, replacements in positions]
    variants = []
    for target, replacement in _interleaved(by_position):
        lines = [_statement_text(body, index) if not _holds(body.statements[index].node, target)
                 else ast.unparse(_replaced(body.statements[index].node, target, replacement)) for index in setup]
        check = ast.unparse(_replaced(checked, target, replacement))
        variants.append(_without_unused_setup("".join(line + "\n" for line in lines) + f"assert {check} == None\n"))
    return list(dict.fromkeys(variants))


def _slices(node: ast.Constant, indexes: set[int]) -> list[ast.expr]:
    """For an integer index the check reads (`version[0]`): a slice from it (`version[0:2]`)."""
    if id(node) in indexes and type(node.value) is int:
        return [ast.Slice(ast.Constant(node.value), ast.Constant(node.value + 2))]
    return []


def _checked(body: TestBody, statement: Statement, call: ast.Call, called_as: tuple[str, ...]) -> tuple[int, ast.expr]:
    """Which statement's value a variant asserts, and the expression: the focal call, or the left side of
    the assertion that holds it (`Version(3, 4, 5)[0]`). A special method run through its class
    (`__str__` by `str(version)`) is checked where a later assertion reads the object the call made."""
    node = statement.node
    if isinstance(node, ast.Assert):
        left = node.test.left if isinstance(node.test, ast.Compare) and len(node.test.ops) == 1 else None
        return statement.index, left if left is not None and _holds(left, call) else call
    through_class = (len(called_as) == 2 and _called_name(call) == called_as[0]
                     and called_as[1] not in ("__init__", "__new__", "__post_init__"))
    if through_class:
        for later in body.statements[statement.index + 1:]:
            test = later.node.test if isinstance(later.node, ast.Assert) else None
            if isinstance(test, ast.Compare) and len(test.ops) == 1 and statement.index in needed_by(body, {later.index}):
                return later.index, test.left
    return statement.index, call


def _statement_text(body: TestBody, index: int) -> str:
    statement = body.statements[index]
    return textwrap.dedent("\n".join(body.lines[statement.first_line - 1: statement.last_line]))


def _literals_in(node: ast.AST) -> list[ast.Constant]:
    """The literals of `node` a variant may change: numbers and strings, not a docstring's text."""
    return [inner for inner in ast.walk(node) if isinstance(inner, ast.Constant)
            and type(inner.value) in (int, float, str) and not (isinstance(inner.value, str) and "\n" in inner.value)]


def _holds(tree: ast.AST, target: ast.AST) -> bool:
    return any(node is target for node in ast.walk(tree))


def _replaced(tree, target: ast.AST, replacement: ast.AST):
    """A copy of `tree` with the node `target` (by identity) replaced; `tree` itself is left as it is."""
    if tree is target:
        return replacement
    if isinstance(tree, list):
        return [_replaced(item, target, replacement) for item in tree]
    if isinstance(tree, ast.AST):
        copied = copy.copy(tree)  # its position too: unparsing reads it
        for name in tree._fields:
            if hasattr(tree, name):
                setattr(copied, name, _replaced(getattr(tree, name), target, replacement))
        return copied
    return tree


def _value(value: object) -> ast.expr:
    return value if isinstance(value, ast.expr) else ast.Constant(value)


def _without_unused_setup(body: str) -> str:
    """`body` without the set-up statements its last one no longer needs (the argument a set-up
    statement made may be the one that was replaced)."""
    test = parse_body("def variant():\n" + textwrap.indent(body, "    "))
    if test is None:
        return body
    return _body_of(render(test, needed_by(test, {len(test.statements) - 1})))


def _body_of(test: str) -> str:
    """The body of a one-test source that `render` made, dedented ("" when empty)."""
    definition, _, body = textwrap.dedent(test).partition(":\n")
    return textwrap.dedent(body) if body.strip() else ""


def _literal_names(statements: list[Statement]) -> dict[str, ast.expr]:
    """The names the set-up binds to a literal (`amount = 50`): an argument named so is varied as that
    literal is (`0`, `-1`, ...), not as an unknown object."""
    literals: dict[str, ast.expr] = {}
    for statement in statements:
        node = statement.node
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            literals.pop(node.targets[0].id, None)
            if isinstance(node.value, ast.Constant) or (isinstance(node.value, ast.UnaryOp)
                                                          and isinstance(node.value.operand, ast.Constant)):
                literals[node.targets[0].id] = node.value
        else:
            for bound in statement.binds:
                literals.pop(bound, None)
    return literals


def _name(argument: ast.expr) -> str | None:
    return argument.id if isinstance(argument, ast.Name) else None


def _takes_self(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    arguments = function.args.posonlyargs + function.args.args
    return bool(arguments) and arguments[0].arg == "self"


def _focal_call(node: ast.stmt, called_as: tuple[str, ...], bare: bool) -> ast.Call | None:
    """The first call to the focal function in `node` (by name, or as an attribute: `Version.parse`)
    that has an argument to change (with `bare`, one without arguments too: a parameter may be added)."""
    for child in ast.walk(node):
        if isinstance(child, ast.Call) and (bare or child.args or child.keywords) and _called_name(child) in called_as \
                and not any(isinstance(a, ast.Starred) for a in child.args) and all(k.arg for k in child.keywords):
            return child
    return None


def _called_name(call: ast.Call) -> str | None:
    function = call.func
    return function.id if isinstance(function, ast.Name) else (
        function.attr if isinstance(function, ast.Attribute) else None)


def _arguments(call: ast.Call) -> list[tuple[int | str, ast.expr]]:
    return [*enumerate(call.args), *((keyword.arg, keyword.value) for keyword in call.keywords)]


def _parameter(key: int | str, inputs: FocalInputs) -> str | None:
    """The parameter an argument fills: its keyword, or the positional parameter at its place."""
    if isinstance(key, str):
        return key
    return inputs.positional[key] if key < len(inputs.positional) else None


def _with_kinds(values: list[ast.expr], kinds: tuple[str, ...]) -> list[ast.expr]:
    """`values` with a value of each tested kind after the first two (an edge, then the other
    kinds the function branches on), none twice."""
    tested = [ast.parse(KIND_VALUES[kind], mode="eval").body for kind in kinds]
    merged = [*values[:2], *tested, *values[2:]]
    seen: set[str] = set()
    return [value for value in merged if not (ast.dump(value) in seen or seen.add(ast.dump(value)))]


def _left_out(call: ast.Call, inputs: FocalInputs) -> dict[str, ast.expr]:
    """The optional parameters `call` gives no argument for, with their defaults."""
    filled = set(inputs.positional[: len(call.args)]) | {keyword.arg for keyword in call.keywords}
    return {name: default for name, default in inputs.optional.items() if name not in filled}


def _with_keyword(call: ast.Call, name: str, value: object) -> ast.Call:
    added = ast.Constant(value) if not isinstance(value, ast.expr) else value
    return ast.Call(call.func, call.args, [*call.keywords, ast.keyword(name, added)])


def _replacements(argument: ast.expr, literals: tuple[object, ...] = ()) -> list[object]:
    """Values to try instead of `argument`: the edges of its own kind first, then the focal
    function's own `literals` of that kind, then other kinds."""
    if isinstance(argument, ast.UnaryOp) and isinstance(argument.op, ast.USub) \
            and isinstance(argument.operand, ast.Constant) and type(argument.operand.value) in (int, float):
        argument = ast.Constant(-argument.operand.value)
    if isinstance(argument, ast.Constant):
        value = argument.value
        if isinstance(value, bool):
            choices = [not value, None]
        elif isinstance(value, int):
            choices = [0, -1, *_of_kind(literals, int), None, "1", _huge()]
        elif isinstance(value, float):
            choices = [0.0, -1.5, *_of_kind(literals, (int, float)), None]
        elif isinstance(value, str):  # its bytes too: text functions often take both
            choices = ["", *_of_kind(literals, str), "x", "1", " ", None, 1, *([value.encode()] if value else []),
                       _long(value)]
        elif isinstance(value, bytes):
            choices = [b"", None]
        elif value is None:  # nothing says what kind it takes: the function's own literals first
            choices = [*literals[:LITERALS_PER_ARGUMENT], "x", 0]
        else:
            choices = [None]
        distinct = [choice for choice in choices if choice != value or type(choice) is not type(value)]
        return [choice for index, choice in enumerate(distinct)
                if not any(choice == other and type(choice) is type(other) for other in distinct[:index])]
    if isinstance(argument, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
        empty = {ast.List: "[]", ast.Tuple: "()", ast.Set: "set()", ast.Dict: "{}"}[type(argument)]
        has_items = bool(argument.keys if isinstance(argument, ast.Dict) else argument.elts)
        return ([ast.parse(empty, mode="eval").body] if has_items else []) + [None]
    return [None, "x"]


def _huge() -> ast.expr:
    """A number past any float and any length limit a function sets (`10 ** 300`), as a test writes it."""
    return ast.BinOp(ast.Constant(10), ast.Pow(), ast.Constant(300))


def _long(text: str) -> ast.expr:
    """`text` repeated to `LONG_TEXT` characters at least, as a test would write it: `'1.0.0' * 200`."""
    text = text or "x"
    return ast.BinOp(ast.Constant(text), ast.Mult(), ast.Constant(-(-LONG_TEXT // len(text))))


def _of_kind(literals: tuple[object, ...], kind: type | tuple[type, ...]) -> list[object]:
    return [value for value in literals if isinstance(value, kind) and not isinstance(value, bool)][:LITERALS_PER_ARGUMENT]
