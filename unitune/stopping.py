"""Where a generated test ends: the stop rule that matches the prompt format of `unitune.prompt`.

Generation calls `StopScanner.feed` after each token, so it only looks at the new text each time.
Besides the test's syntactic end, a Python test also ends, before the line that would make it so,
when the model starts repeating itself: a statement it already wrote, word for word; the same
statement shape (literals aside) a `MAX_SAME_SHAPE`-th time over (`assert f("10") == 10`,
`assert f("100") == 100`, ...); or a check beyond `MAX_CHECKS`, which is more than one behaviour
needs. A small model otherwise spends its whole token budget extending a pattern.
"""

from __future__ import annotations

import re

from unitune.languages import PYTHON

#: A statement shape (its text with string and number literals blanked) may occur this often in a test.
MAX_SAME_SHAPE = 4
#: Checks (assertions, raises blocks) a test may hold: several behaviours are several tests.
MAX_CHECKS = 8
_NUMBER = re.compile(r"(?<![\w.])\d[\w.]*")
_CHECK = re.compile(r"^(assert\b|self\.assert|self\.fail|with\s+(pytest\.raises|self\.assertRaises|raises)\b)")


def indent_width(whitespace: str) -> int:
    width = 0
    for char in whitespace:
        width = (width // 8 + 1) * 8 if char == "\t" else width + 1
    return width


class StopScanner:
    """Finds where a generated test ends, fed the completion piece by piece (each call costs only the
    new text). `feed` returns the index in the whole completion where the test ends, or None.

    Python: the test ends before the first code line indented no deeper than `indent` (the `def`'s
    columns); a comment-only line does not end it, but a run of such lines right before the end is
    left out. The returned index is just after the newline of the test's last line. Java: the test
    ends just after the `}` that balances the method's `{` (already in the prompt).

    `in_signature` (Python): the prompt ends inside the test's parameter list (`def test_x(`); False
    when it ends after the whole `def` line (`def test_x():` and a newline), so the completion starts
    with the body."""

    def __init__(self, language: str, indent: int = 0, in_signature: bool = True):
        self.language = language
        self.def_indent = indent
        self._pending = ""  # text not yet scanned (waiting for look-ahead)
        self._offset = 0  # index of _pending[0] in the whole completion
        self._end: int | None = None
        # The prompt ends inside `def name(` or after the method's `{`; or (Python) after a whole line.
        self._depth = 1 if in_signature or language != PYTHON else 0
        self._string: str | None = None  # the delimiter that closes the current string
        self._comment: str | None = None  # "line" or "block"
        self._at_line_start = not self._depth
        self._line_indent = 0
        self._line_has_content = True
        self._backslash = False
        self._content_end = 0  # just after the newline of the last line with content
        self._comment_run: int | None = None  # _content_end before dedented comment lines
        # the statement being read (Python): its text with literals blanked, where it starts, and what came before
        self._statement = ""
        self._raw = ""  # the statement as written
        self._statement_start: int | None = None
        self._seen_statements: set[str] = set()
        self._shapes: dict[str, int] = {}
        self._checks = 0

    @property
    def ended(self) -> int | None:
        return self._end

    def feed(self, piece: str, final: bool = False) -> int | None:
        if self._end is not None:
            return self._end
        text = self._pending + piece
        step = self._python_step if self.language == PYTHON else self._java_step
        index = 0
        while index < len(text) and self._end is None:
            used = step(text, index, final)
            if not used:
                break  # the next character needs look-ahead that has not arrived yet
            if self._statement_start is not None:
                self._raw += text[index:index + used]
            index += used
        self._offset += index
        self._pending = text[index:]
        return self._end

    def finish(self) -> int | None:
        """Scan what was held back for look-ahead, at the end of the generation."""
        return self.feed("", final=True)

    def _python_step(self, text: str, i: int, final: bool) -> int:
        char = text[i]
        if self._comment:
            if char == "\n":
                self._comment = None
                return self._newline(i)
            return 1
        if self._string:
            return self._python_string_step(text, i, final)
        if self._at_line_start:
            if char in " \t\f\r":
                self._line_indent = 0 if char == "\f" else indent_width(" " * self._line_indent + char)
                return 1
            if char == "\n":
                self._line_indent = 0
                return 1
            self._at_line_start = False
            if self._line_indent <= self.def_indent:
                if char != "#":
                    self._end = self._comment_run if self._comment_run is not None else self._content_end
                    return 1
                if self._comment_run is None:
                    self._comment_run = self._content_end
            elif char != "#":
                self._comment_run = None
        if char == "\n":
            return self._newline(i)
        if char in " \t\f\r":
            if self._statement and not self._statement.endswith(" "):
                self._statement += " "
            return 1
        self._line_has_content = True
        self._backslash = char == "\\"
        if char != "#" and self._statement_start is None:
            self._statement_start = self._content_end  # the statement's first line starts after the last one
        if char == "#":
            self._comment = "line"
        elif char in "'\"":
            if i + 3 > len(text) and not final:
                return 0
            self._string = char * 3 if text.startswith(char * 3, i) else char
            self._statement += '"S"'
            return len(self._string)
        elif char in "([{":
            self._depth += 1
        elif char in ")]}":
            self._depth = max(0, self._depth - 1)
        if char != "#":
            self._statement += char
        return 1

    def _python_string_step(self, text: str, i: int, final: bool) -> int:
        char, delimiter = text[i], self._string
        if char == "\\":
            if i + 2 > len(text) and not final:
                return 0
            return 2 if i + 1 < len(text) else 1
        if char == "\n":
            if len(delimiter) == 1:  # unterminated: the tokenizer gives up at the line's end
                self._string = None
                return self._newline(i)
            self._content_end = self._offset + i + 1  # lines of a triple-quoted string are content
            return 1
        if char == delimiter[0]:
            if len(delimiter) == 1:
                self._string = None
                return 1
            if i + 3 > len(text) and not final:
                return 0
            if text.startswith(delimiter, i):
                self._string = None
                return 3
        return 1

    def _newline(self, i: int) -> int:
        if self._line_has_content:
            self._content_end = self._offset + i + 1
        self._line_has_content = False
        continued, self._backslash = self._backslash, False
        if self._depth == 0 and not continued:
            self._at_line_start = True
            self._line_indent = 0
            if self.language == PYTHON and self._statement_start is not None:
                self._end_of_statement()
        return 1

    def _end_of_statement(self) -> None:
        """A whole statement (a logical line) was read: end the test before it when it repeats what
        the test already did, or checks more than one behaviour needs."""
        text, raw = self._statement.strip(), " ".join(self._raw.split())
        start, self._statement, self._raw, self._statement_start = self._statement_start, "", "", None
        if not text:
            return
        shape = _NUMBER.sub("N", text)
        self._shapes[shape] = self._shapes.get(shape, 0) + 1
        self._checks += bool(_CHECK.match(text))
        exact = f"{self._line_indent}:{raw}"
        header = text.endswith(":")  # a block's first line: the block as a whole may differ
        if (exact in self._seen_statements and not header) or self._shapes[shape] > MAX_SAME_SHAPE \
                or self._checks > MAX_CHECKS:
            self._end = start
        self._seen_statements.add(exact)

    def _java_step(self, text: str, i: int, final: bool) -> int:
        char = text[i]
        if self._comment == "line":
            if char == "\n":
                self._comment = None
            return 1
        if self._comment == "block":
            if char == "*":
                if i + 2 > len(text) and not final:
                    return 0
                if text.startswith("*/", i):
                    self._comment = None
                    return 2
            return 1
        if self._string:
            delimiter = self._string
            if char == "\\":
                if i + 2 > len(text) and not final:
                    return 0
                return 2 if i + 1 < len(text) else 1
            if delimiter == '"""':
                if char == '"':
                    if i + 3 > len(text) and not final:
                        return 0
                    if text.startswith('"""', i):
                        self._string = None
                        return 3
                return 1
            if char == delimiter or char == "\n":  # a newline ends an unterminated literal
                self._string = None
            return 1
        if char == "/":
            if i + 2 > len(text) and not final:
                return 0
            following = text[i + 1] if i + 1 < len(text) else ""
            if following in "/*" and following:
                self._comment = "line" if following == "/" else "block"
                return 2
        elif char == '"':
            if i + 3 > len(text) and not final:
                return 0
            self._string = '"""' if text.startswith('"""', i) else '"'
            return len(self._string)
        elif char == "'":
            self._string = "'"
        elif char == "{":
            self._depth += 1
        elif char == "}":
            self._depth -= 1
            if self._depth == 0:
                self._end = self._offset + i + 1
        return 1


def stop_strings(language: str, indent: int = 0) -> list[str]:
    """Strings that start a line only after a test has ended, in the usual cases, for a model server
    that stops on strings (`/v1/completions`' `stop`): another definition or decorator at the test's
    own indentation (`indent` columns) or less, the end of the class, a chat answer's closing fence.
    They only save tokens: the server leaves the string out of its answer, and the completion is
    still cut by `StopScanner`, fed the answer and then the string the server names, if it does."""
    margin = " " * indent
    fence = "\n```"
    if language == PYTHON:
        own_level = [f"\n{margin}def ", f"\n{margin}async def ", f"\n{margin}@", f"\n{margin}class "]
        top_level = ["\ndef ", "\nasync def ", "\n@", "\nclass ", "\nif __name__"]
        return list(dict.fromkeys(own_level + top_level + [fence]))
    # Java: the next test method's annotation, or the test class's closing brace.
    return list(dict.fromkeys([f"\n{margin}@", "\n}", fence]))


def end_of_test(language: str, generated_text: str, indent: int = 0, in_signature: bool = True) -> int | None:
    """Where the test in `generated_text` (a completion of a prompt) ends, or None if it has not.

    `indent` is the columns of the test's `def` line (Python); see `StopScanner`."""
    return StopScanner(language, indent, in_signature).feed(generated_text)

