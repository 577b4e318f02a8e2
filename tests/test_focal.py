"""The focal method under a position, the functions of a file, the position conversions behind them, and
the walk over a file's syntax tree.

Positions in the tables are command-line positions (1-based line, 1-based column in code points). Each
row is also looked up the way the language server does it: a 0-based line and a column in UTF-16 code
units (and in UTF-8 bytes), converted by `SourceFile.offset`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from unitune.errors import BadFileError, BadPositionError, NoFocalMethodError, UnsupportedLanguageError
from unitune.focal import CONSTRUCTOR, FUNCTION, METHOD, focal_at, functions, require_focal_at
from unitune.languages import PYTHON
from unitune.source import UTF8, UTF16, UTF32, SourceFile, cli_offset
from unitune.syntax_walk import descendants

FIXTURES = Path(__file__).parent / "fixtures" / "focal"


@functools.cache
def load(name: str) -> SourceFile:
    return SourceFile.from_path(FIXTURES / name)


def utf16_column(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def described(function) -> tuple | None:
    if function is None:
        return None
    return (function.qualified_name, function.start_line, function.end_line, function.class_name, function.kind)


# (line, column, expected) with expected = (qualified_name, start_line, end_line, class_name, kind) or None.
PYTHON_CASES = [
    (1, 1, None),  # module docstring
    (7, 1, None),  # LIMIT = 10
    (9, 1, None),  # blank line before the first function
    (10, 1, ("top", 10, 11, None, FUNCTION)),
    (11, 17, ("top", 10, 11, None, FUNCTION)),  # right after the last character of the function
    (12, 1, None),  # blank line after it
    (14, 1, ("decorated", 14, 20, None, FUNCTION)),  # first line of a decorator stack
    (16, 5, ("decorated", 14, 20, None, FUNCTION)),  # inside a multi-line decorator's arguments
    (18, 1, ("decorated", 14, 20, None, FUNCTION)),  # the decorator's closing parenthesis
    (19, 5, ("decorated", 14, 20, None, FUNCTION)),
    (23, 1, ("fetch", 23, 24, None, FUNCTION)),  # `async`
    (24, 12, ("fetch", 23, 24, None, FUNCTION)),  # `await`
    (28, 9, ("with_closure", 27, 31, None, FUNCTION)),  # the closure's name
    (29, 9, ("with_closure", 27, 31, None, FUNCTION)),  # the closure's body
    (30, 1, ("with_closure", 27, 31, None, FUNCTION)),  # blank line inside a function
    (35, 31, ("with_lambda", 34, 35, None, FUNCTION)),  # `lambda` inside a function
    (35, 41, ("with_lambda", 34, 35, None, FUNCTION)),  # the lambda's body
    (39, 5, ("with_local_class", 38, 43, None, FUNCTION)),  # a local class
    (41, 13, ("with_local_class", 38, 43, None, FUNCTION)),  # a method of the local class
    (46, 1, ("square", 46, 46, None, FUNCTION)),  # module-level lambda assigned to a name
    (46, 20, ("square", 46, 46, None, FUNCTION)),
    (47, 1, None),  # banner = "日本語 🎉"; ...
    (47, 17, None),  # the `;` between the two statements
    (47, 19, ("cube", 47, 47, None, FUNCTION)),  # `cube`, after CJK text and an emoji on the same line
    (50, 1, ("grüße", 50, 50, None, FUNCTION)),  # a non-ASCII name
    (50, 28, ("grüße", 50, 50, None, FUNCTION)),  # right after 🎉
    (50, 65, ("grüße", 50, 50, None, FUNCTION)),  # end of the line
    (54, 21, ("after_emoji", 53, 54, None, FUNCTION)),  # right after a closing 😀
    (55, 1, None),
    (57, 1, None),  # class Cases:
    (58, 5, None),  # class docstring
    (60, 5, None),  # class attribute
    (61, 1, None),  # blank line between an attribute and a method
    (62, 1, ("Cases.__init__", 62, 63, "Cases", CONSTRUCTOR)),  # indentation before `def`
    (62, 5, ("Cases.__init__", 62, 63, "Cases", CONSTRUCTOR)),
    (63, 28, ("Cases.__init__", 62, 63, "Cases", CONSTRUCTOR)),  # right after the last character
    (64, 1, None),  # blank line between methods
    (65, 5, ("Cases.value", 65, 67, "Cases", METHOD)),  # @property
    (67, 9, ("Cases.value", 65, 67, "Cases", METHOD)),
    (68, 1, None),
    (69, 6, ("Cases.value", 69, 71, "Cases", METHOD)),  # @value.setter: the setter, not the getter
    (73, 5, ("Cases.make", 73, 75, "Cases", METHOD)),  # @staticmethod
    (77, 6, ("Cases.build", 77, 79, "Cases", METHOD)),  # @classmethod
    (81, 5, ("Cases.load", 81, 82, "Cases", METHOD)),  # async method
    (84, 14, ("Cases.double", 84, 84, "Cases", METHOD)),  # class-level lambda assigned to a name
    (86, 5, None),  # class Inner:
    (87, 13, ("Cases.Inner.twice", 87, 88, "Inner", METHOD)),
    (89, 1, None),
    (90, 9, None),  # class Deeper:
    (91, 13, ("Cases.Inner.Deeper.thrice", 91, 93, "Deeper", METHOD)),
    (93, 29, ("Cases.Inner.Deeper.thrice", 91, 93, "Deeper", METHOD)),
    (96, 1, None),  # a class decorator
    (97, 1, None),
    (98, 9, ("Decorated.__eq__", 98, 99, "Decorated", METHOD)),
    (102, 4, None),  # if TYPE_CHECKING:
    (103, 9, ("only_typing", 103, 104, None, FUNCTION)),
    (105, 1, None),  # else:
    (107, 9, ("only_runtime", 106, 107, None, FUNCTION)),
    (110, 5, None),  # import inside try
    (113, 9, ("fallback", 112, 113, None, FUNCTION)),
    (114, 1, None),  # the empty line after the final newline
]

JAVA_CASES = [
    (1, 1, None),  # package
    (8, 1, None),  # the class's annotation
    (9, 14, None),  # class header
    (10, 50, None),  # a field initialised with an anonymous class
    (12, 20, None),  # a method of that anonymous class: no enclosing method
    (13, 13, None),
    (17, 5, None),  # field
    (18, 1, None),  # blank line
    (19, 12, ("Cases.Cases", 19, 21, "Cases", CONSTRUCTOR)),
    (19, 1, ("Cases.Cases", 19, 21, "Cases", CONSTRUCTOR)),  # indentation before the declaration
    (21, 6, ("Cases.Cases", 19, 21, "Cases", CONSTRUCTOR)),  # right after the closing brace
    (22, 1, None),  # blank line between methods
    (23, 5, ("Cases.value", 23, 30, "Cases", METHOD)),  # annotation on its own line
    (25, 9, ("Cases.value", 23, 30, "Cases", METHOD)),  # inside a multi-line annotation
    (28, 16, ("Cases.value", 23, 30, "Cases", METHOD)),
    (32, 19, ("Cases.max", 32, 40, "Cases", METHOD)),  # <T extends Comparable<T>>
    (36, 17, ("Cases.max", 32, 40, "Cases", METHOD)),
    (44, 13, ("Cases.withAnonymous", 42, 49, "Cases", METHOD)),  # annotation inside an anonymous class
    (45, 25, ("Cases.withAnonymous", 42, 49, "Cases", METHOD)),  # a method of the anonymous class
    (53, 13, ("Cases.withLambda", 51, 56, "Cases", METHOD)),  # a lambda's body
    (59, 9, ("Cases.withLocalClass", 58, 65, "Cases", METHOD)),  # a local class
    (60, 17, ("Cases.withLocalClass", 58, 65, "Cases", METHOD)),  # a method of the local class
    (67, 19, ("Cases.grüße", 67, 67, "Cases", METHOD)),  # a non-ASCII name
    (67, 65, ("Cases.grüße", 67, 67, "Cases", METHOD)),  # the closing brace, after 🎉 and 😀
    (67, 66, ("Cases.grüße", 67, 67, "Cases", METHOD)),  # right after it
    (67, 67, None),  # `int afterGrüße = 1;` on the same line
    (69, 5, None),  # static nested class header
    (71, 13, ("Cases.Inner.twice", 70, 72, "Inner", METHOD)),
    (73, 1, None),
    (76, 17, ("Cases.Inner.Deeper.thrice", 75, 77, "Deeper", METHOD)),
    (78, 9, None),  # the closing brace of a nested class
    (82, 9, ("Cases.Nested.Nested", 82, 83, "Nested", CONSTRUCTOR)),  # inner class constructor
    (86, 13, ("Cases.Nested.outerValue", 85, 87, "Nested", METHOD)),
    (90, 5, None),  # interface header
    (91, 9, ("Cases.Shape.area", 91, 91, "Shape", METHOD)),
    (94, 13, ("Cases.Shape.describe", 93, 95, "Shape", METHOD)),  # default method
    (98, 23, ("Cases.Shape.unit", 97, 99, "Shape", METHOD)),  # `->` of a lambda in a static method
    (103, 9, None),  # enum constant
    (106, 17, None),  # a method in an enum constant's body (an anonymous class)
    (111, 9, None),  # enum field
    (114, 13, ("Cases.Color.Color", 113, 115, "Color", CONSTRUCTOR)),
    (118, 13, ("Cases.Color.label", 117, 119, "Color", METHOD)),
    (122, 5, None),  # record header
    (122, 18, None),  # record component
    (124, 13, ("Cases.Point.Point", 123, 127, "Point", CONSTRUCTOR)),  # compact constructor
    (130, 13, ("Cases.Point.sum", 129, 131, "Point", METHOD)),
    (132, 5, None),
    (133, 1, None),
]

BROKEN_CASES = [
    (1, 5, ("before", 1, 2, None, FUNCTION)),
    (2, 14, ("before", 1, 2, None, FUNCTION)),  # `return x +` (the syntax error)
    (3, 1, None),
    (6, 5, ("intact", 5, 6, None, FUNCTION)),
    (9, 1, None),  # class Half:
    (11, 16, ("Half.method", 10, 11, "Half", METHOD)),  # inside the unclosed list
]

ALL_CASES = [
    pytest.param(name, line, column, expected, id=f"{name}:{line}:{column}")
    for name, table in (("cases.py", PYTHON_CASES), ("Cases.java", JAVA_CASES), ("broken.py", BROKEN_CASES))
    for line, column, expected in table
]


@pytest.mark.parametrize("name, line, column, expected", ALL_CASES)
def test_focal_at_command_line_position(name, line, column, expected):
    file = load(name)
    assert described(focal_at(file, cli_offset(file, line, column))) == expected


@pytest.mark.parametrize("name, line, column, expected", ALL_CASES)
def test_focal_at_language_server_position(name, line, column, expected):
    file = load(name)
    before = file.line_text(line - 1)[: column - 1]
    expected_offset = cli_offset(file, line, column)
    for unit, lsp_column in ((UTF16, utf16_column(before)), (UTF8, len(before.encode("utf-8")))):
        offset = file.offset(line - 1, lsp_column, unit=unit)
        assert offset == expected_offset, unit
        assert described(focal_at(file, offset)) == expected, unit


# Positions on lines with CJK text and characters outside the basic plane before the cursor, where
# counting columns in the wrong unit lands on a different answer:
# (file, line, code-point column, UTF-16 column (both 1-based), expected qualified name or None).
SHIFT_CASES = [
    ("cases.py", 47, 19, 20, "cube"),  # `cube` after "日本語 🎉";
    ("cases.py", 47, 18, 19, None),  # the space just before it
    ("Cases.java", 67, 66, 68, "Cases.grüße"),  # just after the method's `}` (🎉 and 😀 before it)
    ("Cases.java", 67, 67, 69, None),  # the field after it
]


@pytest.mark.parametrize("name, line, column, utf16, expected", SHIFT_CASES)
def test_non_ascii_before_the_cursor_does_not_shift_it(name, line, column, utf16, expected):
    file = load(name)
    via_cli = focal_at(file, cli_offset(file, line, column))
    via_lsp = focal_at(file, file.offset(line - 1, utf16 - 1, unit=UTF16))
    assert (via_cli and via_cli.qualified_name) == expected
    assert (via_lsp and via_lsp.qualified_name) == expected
    # The position is one where a column read in the wrong unit would give another answer.
    misread = {
        focal_at(file, file.offset(line - 1, utf16 - 1, unit=UTF32)),  # UTF-16 units taken as characters
        focal_at(file, file.offset(line - 1, column - 1, unit=UTF8)),  # characters taken as bytes
    }
    assert {f and f.qualified_name for f in misread} - {expected}


def test_no_focal_method_message_names_the_position_in_characters():
    file = load("cases.py")
    with pytest.raises(NoFocalMethodError) as raised:
        require_focal_at(file, cli_offset(file, 47, 18))
    assert raised.value.exit_code == 1
    assert str(raised.value).startswith(f"{file.name}:47:18: ")


def test_require_focal_at_returns_the_function():
    file = load("Cases.java")
    assert require_focal_at(file, cli_offset(file, 71, 13)).qualified_name == "Cases.Inner.twice"


# -- enumeration ---------------------------------------------------------------------------------

PYTHON_FUNCTIONS = [
    ("top", FUNCTION, 10, 11),
    ("decorated", FUNCTION, 14, 20),
    ("fetch", FUNCTION, 23, 24),
    ("with_closure", FUNCTION, 27, 31),
    ("with_lambda", FUNCTION, 34, 35),
    ("with_local_class", FUNCTION, 38, 43),
    ("square", FUNCTION, 46, 46),
    ("cube", FUNCTION, 47, 47),
    ("grüße", FUNCTION, 50, 50),
    ("after_emoji", FUNCTION, 53, 54),
    ("Cases.__init__", CONSTRUCTOR, 62, 63),
    ("Cases.value", METHOD, 65, 67),
    ("Cases.value", METHOD, 69, 71),
    ("Cases.make", METHOD, 73, 75),
    ("Cases.build", METHOD, 77, 79),
    ("Cases.load", METHOD, 81, 82),
    ("Cases.double", METHOD, 84, 84),
    ("Cases.Inner.twice", METHOD, 87, 88),
    ("Cases.Inner.Deeper.thrice", METHOD, 91, 93),
    ("Decorated.__eq__", METHOD, 98, 99),
    ("only_typing", FUNCTION, 103, 104),
    ("only_runtime", FUNCTION, 106, 107),
    ("fallback", FUNCTION, 112, 113),
]

JAVA_FUNCTIONS = [
    ("Cases.Cases", CONSTRUCTOR, 19, 21),
    ("Cases.value", METHOD, 23, 30),
    ("Cases.max", METHOD, 32, 40),
    ("Cases.withAnonymous", METHOD, 42, 49),
    ("Cases.withLambda", METHOD, 51, 56),
    ("Cases.withLocalClass", METHOD, 58, 65),
    ("Cases.grüße", METHOD, 67, 67),
    ("Cases.Inner.twice", METHOD, 70, 72),
    ("Cases.Inner.Deeper.thrice", METHOD, 75, 77),
    ("Cases.Nested.Nested", CONSTRUCTOR, 82, 83),
    ("Cases.Nested.outerValue", METHOD, 85, 87),
    ("Cases.Shape.area", METHOD, 91, 91),
    ("Cases.Shape.describe", METHOD, 93, 95),
    ("Cases.Shape.unit", METHOD, 97, 99),
    ("Cases.Color.Color", CONSTRUCTOR, 113, 115),
    ("Cases.Color.label", METHOD, 117, 119),
    ("Cases.Point.Point", CONSTRUCTOR, 123, 127),
    ("Cases.Point.sum", METHOD, 129, 131),
]

BROKEN_FUNCTIONS = [
    ("before", FUNCTION, 1, 2),
    ("intact", FUNCTION, 5, 6),
    ("Half.method", METHOD, 10, 11),
]


@pytest.mark.parametrize("name, expected", [
    ("cases.py", PYTHON_FUNCTIONS),
    ("Cases.java", JAVA_FUNCTIONS),
    ("broken.py", BROKEN_FUNCTIONS),
    ("empty.py", []),
])
def test_functions_lists_exactly_the_testable_functions_in_order(name, expected):
    listed = [(f.qualified_name, f.kind, f.start_line, f.end_line) for f in functions(load(name))]
    assert listed == expected


@pytest.mark.parametrize("name", ["cases.py", "Cases.java", "broken.py"])
def test_each_function_is_the_focal_method_from_its_first_to_just_after_its_last_byte(name):
    file = load(name)
    for function in functions(file):
        for offset in (function.start_byte, (function.start_byte + function.end_byte) // 2, function.end_byte):
            found = focal_at(file, offset)
            assert found is not None and (found.qualified_name, found.start_line) == (
                function.qualified_name, function.start_line), offset


def test_python_function_details():
    by_line = {f.start_line: f for f in functions(load("cases.py"))}
    assert by_line[23].is_async and by_line[81].is_async
    assert not by_line[10].is_async
    assert by_line[73].is_static and not by_line[77].is_static
    assert by_line[65].decorators == ("property",)
    assert by_line[69].decorators == ("value.setter",)
    assert by_line[14].decorators == ("functools.lru_cache", "functools.wraps")


def test_java_function_details():
    by_line = {f.start_line: f for f in functions(load("Cases.java"))}
    assert by_line[23].decorators == ("Deprecated", "SuppressWarnings")
    assert by_line[32].is_static and by_line[97].is_static
    assert not by_line[93].is_static


def test_source_includes_decorators_and_annotations_with_their_indentation():
    python, java = load("cases.py"), load("Cases.java")
    setter = focal_at(python, cli_offset(python, 71, 9))
    assert setter.source(python) == "    @value.setter\n    def value(self, new):\n        self._value = new"
    value = focal_at(java, cli_offset(java, 29, 9))
    assert value.source(java).startswith("    @Deprecated\n    @SuppressWarnings({\n")
    assert value.source(java).endswith("        return value;\n    }")
    square = focal_at(python, cli_offset(python, 46, 20))
    assert square.source(python) == "square = lambda x: x * x"


def test_empty_file():
    file = load("empty.py")
    assert file.line_count == 1
    assert focal_at(file, cli_offset(file, 1, None)) is None
    with pytest.raises(NoFocalMethodError):
        require_focal_at(file, 0)
    with pytest.raises(BadPositionError):
        cli_offset(file, 2, None)


# -- positions -----------------------------------------------------------------------------------

MIXED = "a = 1\n# é ß 日本語\ns = '🎉x😀'\n\n\tdef f(): return '𝒳'  \r\nlast"


def _round_trip_cases():
    return [pytest.param(load(name), id=name) for name in ("cases.py", "Cases.java")] + [
        pytest.param(SourceFile(MIXED, "python"), id="mixed")
    ]


@pytest.mark.parametrize("file", _round_trip_cases())
def test_position_and_offset_round_trip_in_every_unit(file):
    for line in range(file.line_count):
        text = file.line_text(line)
        line_start = file.offset(line, 0)
        for index in range(len(text) + 1):
            before = text[:index]
            byte_offset = line_start + len(before.encode("utf-8"))
            columns = {UTF8: len(before.encode("utf-8")), UTF16: utf16_column(before), UTF32: index}
            for unit, column in columns.items():
                assert file.offset(line, column, unit=unit) == byte_offset, (line, index, unit)
                assert file.position(byte_offset, unit=unit) == (line, column), (line, index, unit)


def test_columns_in_each_unit_after_non_ascii_text():
    file = SourceFile(MIXED, "python")
    offset = file.offset(2, 7)  # after "s = '🎉x" (7 characters), before 😀
    assert file.data[offset:].startswith("😀".encode("utf-8"))
    assert file.position(offset, UTF32) == (2, 7)
    assert file.position(offset, UTF16) == (2, 8)
    assert file.position(offset, UTF8) == (2, 10)


def test_a_protocol_column_past_the_end_of_a_line_means_its_end_a_command_line_one_is_an_error():
    """LSP positions past a line's end mean its end (the protocol says so); `--column` past it is a
    mistake the user hears about."""
    file = load("cases.py")
    end = cli_offset(file, 11, 17)  # just after the last character
    assert file.data[end:end + 1] == b"\n"
    assert file.offset(10, 500, unit=UTF16) == end
    assert file.offset(10, 500, unit=UTF8) == end
    assert focal_at(file, file.offset(10, 500)).qualified_name == "top"
    with pytest.raises(BadPositionError, match="column 500 is past the end of line 11 \\(16 characters\\)"):
        cli_offset(file, 11, 500)


def test_column_past_the_end_stops_before_a_carriage_return():
    file = SourceFile("def f():\r\n    return 1\r\n\r\nx = 1\r\n", "python")
    end = file.offset(1, 99)
    assert file.data[end:end + 2] == b"\r\n"
    assert focal_at(file, end).qualified_name == "f"
    assert focal_at(file, file.offset(2, 0)) is None


def test_line_without_column_points_at_its_first_character():
    file = load("cases.py")
    assert cli_offset(file, 62, None) == cli_offset(file, 62, 5)


@pytest.mark.parametrize("line, column", [(0, 1), (-1, None), (115, None), (115, 1), (1000, 3), (10, 0)])
def test_position_outside_the_file_is_refused(line, column):
    file = load("cases.py")
    assert file.line_count == 114
    with pytest.raises(BadPositionError) as raised:
        cli_offset(file, line, column)
    assert raised.value.exit_code == 2


def test_lsp_line_past_the_end_is_refused():
    file = load("Cases.java")
    with pytest.raises(BadPositionError, match="past the end"):
        file.offset(file.line_count, 0, unit=UTF16)


# -- files unitune cannot use ---------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(BadFileError, match="no such file") as raised:
        SourceFile.from_path(tmp_path / "gone.py")
    assert raised.value.exit_code == 2


def test_directory(tmp_path):
    (tmp_path / "package.py").mkdir()
    with pytest.raises(BadFileError, match="is a directory"):
        SourceFile.from_path(tmp_path / "package.py")


def test_binary_file(tmp_path):
    path = tmp_path / "blob.py"
    path.write_bytes(b"def f():\n    return 1\n\x00\x01\x02")
    with pytest.raises(BadFileError, match="binary"):
        SourceFile.from_path(path)


def test_file_not_in_utf8(tmp_path):
    path = tmp_path / "latin.py"
    path.write_bytes("def f():\n    return 'café'\n".encode("latin-1"))
    with pytest.raises(BadFileError, match=r"not UTF-8 \(byte 0xe9 on line 2\)") as raised:
        SourceFile.from_path(path)
    assert raised.value.exit_code == 2


def test_utf8_byte_order_mark_is_accepted_and_does_not_shift_positions(tmp_path):
    path = tmp_path / "bom.py"
    path.write_bytes(b"\xef\xbb\xbf" + "def grüße():\n    return '🎉'\n".encode("utf-8"))
    file = SourceFile.from_path(path)
    assert file.text.startswith("def grüße")
    [function] = functions(file)
    assert (function.qualified_name, function.start_line, function.start_byte) == ("grüße", 1, 0)
    assert focal_at(file, cli_offset(file, 1, 1)) is not None


@pytest.mark.parametrize("name", ["notes.txt", "Makefile", "script.js"])
def test_unsupported_file_type(tmp_path, name):
    path = tmp_path / name
    path.write_text("def f(): pass\n", encoding="utf-8")
    with pytest.raises(UnsupportedLanguageError, match="unsupported file type") as raised:
        SourceFile.from_path(path)
    assert raised.value.exit_code == 2


def test_upper_case_extension_is_recognised(tmp_path):
    path = tmp_path / "Shout.JAVA"
    path.write_text("class Shout { void a() {} }\n", encoding="utf-8")
    assert [f.qualified_name for f in functions(SourceFile.from_path(path))] == ["Shout.a"]


def test_descendants_are_in_document_order_and_not_entered_where_refused():
    file = SourceFile("def f(a):\n    return a\n\nx = [1]\n", PYTHON)
    root = file.tree.root_node
    assert [node.type for node in descendants(root, named_only=True)] == [
        "function_definition", "identifier", "parameters", "identifier", "block", "return_statement", "identifier",
        "expression_statement", "assignment", "identifier", "list", "integer",
    ]
    outside_functions = descendants(root, named_only=True, descend_into=lambda node: node.type != "function_definition")
    assert [node.type for node in outside_functions] == [
        "function_definition", "expression_statement", "assignment", "identifier", "list", "integer",
    ]
    assignment = root.named_children[1]
    assert [node.type for node in descendants(assignment)] == ["assignment", "identifier", "=", "list", "[", "integer", "]"]


def test_lines_are_counted_as_editors_count_them_in_a_file_with_mixed_line_ends():
    """"\\r\\n", "\\n" and a lone "\\r" each end a line (as in editors and the LSP): line 5 is `def c`, and the
    parser sees the lone "\\r" as the line end it is (it had swallowed `def c` into `b`)."""
    file = SourceFile("def a():\r    return 1\r\ndef b():\n    return 2\rdef c():\r\n    return 3\n", "python")
    assert file.line_count == 7
    assert [focal_at(file, cli_offset(file, line, None)).name for line in range(1, 7)] == ["a", "a", "b", "b", "c", "c"]
    assert [function.name for function in functions(file)] == ["a", "b", "c"]
    edited = file.edited((4, 0), (4, 0), "# moved\r")
    assert [focal_at(edited, cli_offset(edited, line, None)) is None for line in (5, 6)] == [True, False]
    assert focal_at(edited, cli_offset(edited, 6, None)).name == "c"


def test_blocks_nested_hundreds_deep_do_not_stop_the_lookup_of_any_function(tmp_path, capsys):
    """600 `if` levels inside one statement once crashed `focal` and `generate` (a RecursionError) for
    every function of the file."""
    from unitune.cli import main

    nested = "".join("    " * depth + "if x:\n" for depth in range(600)) + "    " * 600 + "pass\n"
    path = tmp_path / "deep.py"
    path.write_text("def first(x):\n    return x\n\n" + nested + "\ndef last(y):\n    return y\n")
    assert [function.name for function in functions(SourceFile.from_path(path))] == ["first", "last"]
    assert main(["focal", str(path), "--line", "1", "--json"]) == 0
    assert '"qualified_name": "first"' in capsys.readouterr().out
