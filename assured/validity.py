"""Whether one generated test function is valid, and how one the generation cut off is saved.

Valid means: parsed with tree-sitter (a Python test on its own, dedented; a Java test wrapped in
`class X { ... }`) without an ERROR or MISSING node, exactly one test function, a body that does
something (not only `pass`, `...` or a docstring), and for Python accepted by Python's own compiler.
A test cut off before its end is repaired by closing Java's open brackets and dropping truncated
last lines until it is valid (`repair_truncated`).
"""

from __future__ import annotations

from tree_sitter import Node

from unitune.languages import JAVA, PYTHON, parser_for
from unitune.prompt import Prompt

_JAVA_WRAPPER = "class UnituneCheck {\n"
_PY_NO_OP_STATEMENTS = frozenset({"pass_statement"})


# -- checking ------------------------------------------------------------------------------------

def syntax_problems(source: str, language: str) -> list[str]:
    """Why `source` (one test function, at any indentation) is not a valid test; empty when it is.

    Python is parsed dedented on its own, Java inside a `class { }`; a test must be exactly one
    function with no ERROR or MISSING node and a body that does something."""
    function, root, line_shift = parse_test(source, language)
    problems = [_describe_error(node, line_shift) for node in _error_nodes(root)][:3]
    if problems:
        return problems
    if function is None:
        return ["not exactly one test function"]
    if not _body_statements(function, language, source):
        return ["the test body is empty"]
    if language == PYTHON:
        return python_rejects(source)
    return []


def python_rejects(source: str) -> list[str]:
    """What Python's own compiler rejects in `source` (dedented), which tree-sitter may accept (a
    `with` block with no body at the end, a `return` with a value outside a function...)."""
    import ast
    import textwrap

    try:
        compile(ast.parse(textwrap.dedent(source)), "<test>", "exec")
    except SyntaxError as error:
        return [f"line {error.lineno}: Python rejects it ({error.msg})"]
    except (ValueError, RecursionError, MemoryError) as error:
        return [f"Python rejects it ({type(error).__name__})"]
    return []


def parse_test(source: str, language: str) -> tuple[Node | None, Node, int]:
    """(the test's function node or None, the root, how many wrapper lines precede the test)."""
    if language == PYTHON:
        lines = source.split("\n")
        base = lines[0][: len(lines[0]) - len(lines[0].lstrip())]
        dedented = "\n".join(line.removeprefix(base) for line in lines)
        root = parser_for(PYTHON).parse(dedented.encode("utf-8")).root_node
        members = [node for node in root.named_children if node.type != "comment"]
        line_shift = 0
    else:
        root = parser_for(JAVA).parse((_JAVA_WRAPPER + source + "\n}\n").encode("utf-8")).root_node
        body = root.named_children[0].child_by_field_name("body") if root.named_child_count == 1 else None
        members = [node for node in body.named_children if "comment" not in node.type] if body is not None else []
        line_shift = _JAVA_WRAPPER.count("\n")
    if len(members) != 1:
        return None, root, line_shift
    node = members[0]
    if node.type == "decorated_definition":
        node = node.child_by_field_name("definition")
    wanted = "function_definition" if language == PYTHON else "method_declaration"
    return (node if node is not None and node.type == wanted else None), root, line_shift


def first_error_line(source: str, language: str) -> int | None:
    """The line (1-based, in `source`) of the first syntax error tree-sitter finds, or None."""
    _, root, line_shift = parse_test(source, language)
    rows = [node.start_point.row - line_shift + 1 for node in _error_nodes(root)]
    return min(rows) if rows else None


def _error_nodes(root: Node) -> list[Node]:
    if not root.has_error:
        return []
    found, stack = [], [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            found.append(node)
            continue
        if node.has_error:
            stack.extend(reversed(node.children))
    return found


def _describe_error(node: Node, line_shift: int) -> str:
    line = node.start_point.row - line_shift + 1
    if node.is_missing:
        return f"line {line}: missing `{node.type}`"
    snippet = node.text.decode("utf-8", errors="replace").strip().split("\n")[0][:40] if node.text else ""
    return f"line {line}: syntax error at `{snippet}`" if snippet else f"line {line}: syntax error"


def _body_statements(function: Node, language: str, source: str) -> list[Node]:
    """The statements of a test's body that do something (comments, `pass`, `...` and docstrings do not)."""
    body = function.child_by_field_name("body")
    if body is None:
        return []
    statements = [node for node in body.named_children if "comment" not in node.type]
    if language == JAVA:
        return [node for node in statements if node.type != ";"]
    doing = []
    for node in statements:
        if node.type in _PY_NO_OP_STATEMENTS:
            continue
        if node.type == "expression_statement" and node.named_child_count == 1 and \
                node.named_children[0].type in ("string", "ellipsis", "concatenated_string"):
            continue
        doing.append(node)
    return doing


# -- repairing -----------------------------------------------------------------------------------

def repair_truncated(source: str, prompt: Prompt, completion: str) -> tuple[str, list[str]] | None:
    """A valid version of a test the generation cut off, and what was done; None when none parses."""
    lines = source.rstrip("\n").split("\n")
    keep_at_least = prompt.prefix.rstrip("\n").count("\n") + 1  # never drop into the test's opening
    last_line_complete = completion.endswith("\n") or completion.rstrip()[-1:] in (";", "{", "}")
    for dropped in range(len(lines) - keep_at_least + 1):
        if dropped == 0 and prompt.language == PYTHON:
            continue  # the whole test was already checked
        if dropped == 0 and not last_line_complete:
            continue  # closing a half-written line would finish it with made-up code
        kept = lines[: len(lines) - dropped]
        while len(kept) > keep_at_least and not kept[-1].strip():
            kept.pop()
        text = "\n".join(kept) + "\n"
        how = [f"cut back to its last complete statement: dropped {dropped} unfinished line{'s' if dropped > 1 else ''} "
               "at the end"] if dropped else []
        if prompt.language == JAVA:
            closed = close_java_brackets(text)
            if closed is None:
                continue
            text, closers = closed
            if closers:
                how.append(f"added the missing {_describe_closers(closers)} at the end")
        if not syntax_problems(text, prompt.language):
            return text, how
    return None


def close_java_brackets(source: str) -> tuple[str, str] | None:
    """`source` with its unclosed brackets closed at the end (braces on lines of their own, indented
    like the line that opened them; a `;` ends a call that was left open), and the closers added.
    Brackets inside strings, character literals and comments do not count. None when the brackets
    are mismatched or the text ends inside a string or block comment (appending cannot fix that)."""
    source = source.rstrip("\n")  # closers go after the last line, so its comment must be known
    stack: list[tuple[str, str]] = []  # (opening bracket, indentation of its line)
    line_start, i, in_line_comment = 0, 0, False
    pairs = {")": "(", "]": "[", "}": "{"}
    while i < len(source):
        char = source[i]
        if char == "\n":
            line_start, in_line_comment = i + 1, False
        elif in_line_comment:
            pass
        elif source.startswith("//", i):
            in_line_comment = True
        elif source.startswith("/*", i):
            end = source.find("*/", i + 2)
            if end < 0:
                return None
            i = end + 2
            continue
        elif char in "\"'":
            delimiter = '"""' if source.startswith('"""', i) else char
            end = _java_literal_end(source, i + len(delimiter), delimiter)
            if end is None:
                return None
            i = end
            continue
        elif char in "([{":
            line = source[line_start:]
            stack.append((char, line[: len(line) - len(line.lstrip(" \t"))]))
        elif char in ")]}":
            if not stack or stack[-1][0] != pairs[char]:
                return None
            stack.pop()
        i += 1
    text, closers = source, ""
    if in_line_comment and stack and stack[-1][0] != "{":
        text += "\n" + stack[-1][1]  # a `)` on a comment's line would be part of the comment
    for opening, indent in reversed(stack):
        if opening == "{":
            if closers[-1:] in (")", "]"):
                text, closers = text + ";", closers + ";"
            text += "\n" + indent + "}"
            closers += "}"
        else:
            closer = ")" if opening == "(" else "]"
            text, closers = text + closer, closers + closer
    return text + "\n", closers


def _java_literal_end(source: str, start: int, delimiter: str) -> int | None:
    """Index just after the literal that starts before `start`, or None if it never ends."""
    i = start
    while i < len(source):
        if source[i] == "\\":
            i += 2
            continue
        if source.startswith(delimiter, i):
            return i + len(delimiter)
        if source[i] == "\n" and delimiter != '"""':
            return None
        i += 1
    return None


def _describe_closers(closers: str) -> str:
    names = {"}": ("closing brace", "closing braces"), ")": ("closing parenthesis", "closing parentheses"),
             "]": ("closing bracket", "closing brackets"), ";": ("semicolon", "semicolons")}
    parts = []
    for char, (one, many) in names.items():
        count = closers.count(char)
        if count:
            parts.append(f"{count} {one if count == 1 else many}")
    return ", ".join(parts)
