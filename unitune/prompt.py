"""The prompt format: the only place a prompt is built, for training and for inference alike.

A prompt is plain code in the target language, so any base model can complete it:

    <the project block (unitune.project_context): signatures and docstrings of the project code the
     focal function uses, one or two existing tests nearest to it; format 3 only, and only when given>
    <focal context (unitune.context)>
    <test file header: the existing test file's imports, fixtures, class header and set-up,
     or what a new test file needs>
    <the opening of a new test>

The opening is the whole `def` line for a Python test, `def test_<name>():` (`    def
test_<name>(self):` in a test class), and the completion is the body; only where the header shows
pytest fixtures the test could ask for does it stop inside the parameter list (`def test_<name>(`, in a
class `    def test_<name>(self`), and the completion starts with the parameters. For JUnit the opening
is `    @Test` + `    public void test<Name>() throws Exception {` + newline, and the completion the body
through the method's closing brace. `split_test` cuts a developer's test the same way (a test with
parameters, or one in a file that shows fixtures, at the parameter list), so training pairs and
inference prompts have one shape.

Format 2 is the same prompt without the project block, asked for with the older chat instruction:
adapters trained on it keep getting it (`SUPPORTED_PROMPT_FORMATS`). The header's parts come from
`unitune.prompt_header`, the names of tests and test classes from `unitune.test_names`.
`model_input` gives a prompt to the model: the plain code for a base model, the chat template's
rendering for an instruct model (see the end of this module).

Generation stops where `StopScanner` says the test ended: in Python at the first code line indented
no deeper than the test's `def` (a dedent; lines inside brackets, after a backslash or inside strings
do not count), in Java when the brace opened by the test method is closed (braces in strings, char
literals and comments do not count).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tree_sitter import Node

from unitune.code_spans import reindent_span
from unitune.context import DEFAULT_CONTEXT, INDENT, render_context
from unitune.errors import UnituneError
from unitune.focal import Function
from unitune.frameworks import UNITTEST, parse_framework
from unitune.languages import JAVA, PYTHON
from unitune.project_context import ProjectContext, gather_project_context
from unitune.prompt_header import java_test_header, python_test_header
from unitune.source import SourceFile
from unitune.stopping import StopScanner, indent_width, end_of_test
from unitune.syntax_walk import descendants
from unitune.test_names import class_name_for_tests, name_for_test

PROMPT_FORMAT_VERSION = 3
#: The formats this unitune builds: its own, and 2 (no project block, the older chat instruction) for
#: the adapters trained on it.
SUPPORTED_PROMPT_FORMATS = (2, PROMPT_FORMAT_VERSION)
#: The first format with a project block.
PROJECT_BLOCK_FORMAT = 3
#: The retry prompt (a new round of candidates when none of the round before survived): the plain prompt
#: with `failure_note`, what went wrong, between the focal code and the tests.
RETRY_PROMPT_VERSION = 1
TEST_PROMPT, RETRY_PROMPT = "test", "retry"

_FIXTURE_DECORATOR = re.compile(r"^\s*@[\w.]*fixture\b", re.M)


# -- test file header ----------------------------------------------------------------------------

def header_for_test_file(
    language: str,
    framework: str,
    focal: Function,
    focal_file: SourceFile,
    module_import: str | None,
    existing_test_source: str | None,
    test_class: str | None = None,
) -> str:
    """The part of a test file a new test goes after, without trailing blank lines.

    From an existing test file: its imports, pytest fixtures, and (for tests in a class) the class
    header with its attributes and set-up/tear-down methods; Java: package, imports, the test class
    header, its fields and `@Before*`/`@After*` methods. Otherwise what a new test file needs.

    `module_import` is the dotted module of the focal file for Python (`bank.account`; None: the
    file's stem), and for Java an optional fully qualified class to import when the test is in
    another package. `test_class` names the class the test belongs in (Python: only for class-style
    tests; unittest always uses one)."""
    framework = parse_framework(framework, language)
    existing = SourceFile(existing_test_source, language) if existing_test_source and existing_test_source.strip() else None
    if language == PYTHON:
        return python_test_header(framework, focal, focal_file, module_import, existing, test_class)
    return java_test_header(framework, focal, focal_file, module_import, existing, test_class)


# -- the prompt ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prompt:
    """A prompt and what inference needs to turn its completion into a test."""

    text: str
    language: str
    framework: str
    test_name: str
    prefix: str  # the test's opening line(s): the end of `text`; the whole test is prefix + completion
    indent: str  # indentation of the test body's lines
    def_indent: int  # columns of the test's `def` / `@Test` line
    test_class: str | None = None
    level: str = DEFAULT_CONTEXT
    version: int = PROMPT_FORMAT_VERSION
    kind: str = TEST_PROMPT  # or RETRY_PROMPT (then `version` is that kind's)
    format_version: int = PROMPT_FORMAT_VERSION  # the format of `text` (and of its chat instruction)

    @property
    def in_signature(self) -> bool:
        """Whether the prompt ends inside the test's parameter list (Python `def test_x(`)."""
        return not (self.language == PYTHON and self.prefix.endswith("\n"))

    def stop_scanner(self) -> "StopScanner":
        """A fresh scanner that finds where a completion of this prompt ends its test."""
        return StopScanner(self.language, self.def_indent, self.in_signature)

    def test_source(self, completion: str) -> str:
        """The complete test: the prefix and the completion up to where the test ends."""
        end = end_of_test(self.language, completion, self.def_indent, self.in_signature)
        return (self.prefix + completion[: end if end is not None else len(completion)]).rstrip() + "\n"


def shows_fixtures(language: str, framework: str, header: str) -> bool:
    """Whether a test file header shows pytest fixtures a new test could ask for (a unittest method
    cannot): then, and only then, a Python test's opening stops inside its parameter list."""
    return language == PYTHON and framework != UNITTEST and _FIXTURE_DECORATOR.search(header) is not None


def opening_of_test(language: str, framework: str, test_name: str, in_class: bool = False,
                fixtures: bool = False) -> str:
    """The opening of a new test, which every prompt ends with. A Python test asks for parameters only
    where the prompt shows fixtures it could use (`fixtures`): otherwise the `def` line is closed, since
    a model left inside `def test_x(` invents fixtures that do not exist and the test errors at set-up."""
    if language == PYTHON:
        if in_class or framework == UNITTEST:
            return f"{INDENT}def {test_name}(self" if fixtures and framework != UNITTEST else f"{INDENT}def {test_name}(self):\n"
        return f"def {test_name}(" if fixtures else f"def {test_name}():\n"
    return f"{INDENT}@Test\n{INDENT}public void {test_name}() throws Exception {{\n"


def build_prompt(
    focal_file: SourceFile,
    function: Function,
    *,
    framework: str,
    module_import: str | None,
    existing_test_source: str | None = None,
    level: str = DEFAULT_CONTEXT,
    test_name: str | None = None,
    test_class: str | None = None,
    prefix: str | None = None,
    project: ProjectContext | None = None,
    format_version: int = PROMPT_FORMAT_VERSION,
    failure: str | None = None,
) -> Prompt:
    """The prompt for a new test of `function`. `prefix` replaces the default test opening (training
    passes the developer test's own opening from `split_test`). `project` is the project block (`gather_project_context`), shown from format 3 on; without it,
    or in format 2, the text is format 2's. `failure` (what went wrong with the tests of a round
    before) makes it a retry prompt (`failure_note`)."""
    if format_version not in SUPPORTED_PROMPT_FORMATS:
        known = ", ".join(map(str, SUPPORTED_PROMPT_FORMATS))
        raise UnituneError(f"prompt format {format_version} is not one of {known}")
    language = focal_file.language
    framework = parse_framework(framework, language)
    name = test_name or name_for_test(function)
    in_class = language == JAVA or framework == UNITTEST or test_class is not None
    header = header_for_test_file(
        language, framework, function, focal_file, module_import, existing_test_source,
        test_class if in_class else None,
    )
    fixtures = shows_fixtures(language, framework, header)
    opening = prefix if prefix is not None else opening_of_test(language, framework, name, in_class, fixtures)
    context = render_context(focal_file, function, level).rstrip("\n")
    if failure:
        context += "\n\n\n" + failure_note(language, failure)
    block = project.render() if project is not None and format_version >= PROJECT_BLOCK_FORMAT else ""
    if block:
        context = block + "\n\n" + context
    if language == PYTHON:
        separator = "\n\n\n" if not in_class else ("\n" if header.endswith(":") else "\n\n")
        text = context + "\n\n\n" + header + separator + opening
    else:
        text = context + "\n\n" + header + "\n\n" + opening
    def_line = opening.rstrip("\n").split("\n")[-1]
    def_indent = indent_width(def_line[: len(def_line) - len(def_line.lstrip())])
    body_indent = " " * def_indent + INDENT
    resolved_class = (test_class or class_name_for_tests(function)) if in_class else None
    if failure:
        return Prompt(text, language, framework, name, opening, body_indent, def_indent, resolved_class, level,
                      RETRY_PROMPT_VERSION, RETRY_PROMPT, format_version)
    return Prompt(text, language, framework, name, opening, body_indent, def_indent, resolved_class, level,
                  format_version=format_version)


def failure_note(language: str, failure: str) -> str:
    """A comment saying what went wrong with the tests written before, and what the next one does instead."""
    mark = "#" if language == PYTHON else "//"
    said, _, instead = failure.partition(": the next one ")
    lines = [f"{mark} A test written before was dropped: {' '.join(said.split())[:200]}"]
    if instead:
        lines.append(f"{mark} The next test {instead.strip()[:160]}.")
    else:
        lines.append(f"{mark} The next test is short and checks what the function returns.")
    return "\n".join(lines)


def split_test(test_source: str, language: str, indent: str | None = None, keep_open: bool = False) -> tuple[str, str]:
    """Cut a developer's test into the opening a prompt ends with and the completion.

    Python: a test without parameters (but `self`) opens through its whole `def` line and newline, as
    new tests open; one with parameters through `def name(` (and `self` when that is the first
    parameter), and so does every test with `keep_open` (a file that shows fixtures). Java: through the
    method's `{` and a newline. With `indent`, the test is first re-indented so
    its `def`/annotation line starts with `indent`."""
    source = SourceFile(test_source, language)
    definition = _first_definition(source.tree.root_node, language)
    if definition is None or definition.child_by_field_name("body") is None:
        raise UnituneError(f"not a test function: {test_source.strip().splitlines()[0][:80] if test_source.strip() else '(empty)'}")
    span = definition.parent if definition.parent is not None and definition.parent.type == "decorated_definition" else definition
    if indent is not None:
        rebased = reindent_span(source, span, span.start_byte, span.end_byte, indent) + "\n"
        return split_test(rebased, language, keep_open=keep_open)
    start = source.offset(span.start_point.row, 0)
    if language == PYTHON:
        params = definition.child_by_field_name("parameters")
        cut = params.start_byte + 1
        first = params.named_children[0] if params.named_children else None
        if first is not None and first.type == "identifier" and source.node_text(first) == "self":
            cut = first.end_byte
        body = definition.child_by_field_name("body")
        colon = next((child for child in definition.children if child.type == ":"), None)
        parameterless = all(node is first and source.node_text(node) == "self" for node in params.named_children)
        if parameterless and not keep_open and colon is not None and body.start_point.row > colon.end_point.row:
            body_start = source.offset(colon.end_point.row + 1, 0)
            return source.bytes_text(start, body_start), source.bytes_text(body_start, definition.end_byte) + "\n"
        return source.bytes_text(start, cut), source.bytes_text(cut, definition.end_byte) + "\n"
    body = definition.child_by_field_name("body")
    opening = source.bytes_text(start, body.start_byte + 1) + "\n"
    rest = source.bytes_text(body.start_byte + 1, definition.end_byte)
    first_line, newline, remainder = rest.partition("\n")
    if not first_line.strip() and newline:
        return opening, remainder
    # Code on the brace's line: move it to a line of its own.
    line = source.line_text(span.start_point.row)
    return opening, line[: len(line) - len(line.lstrip())] + INDENT + rest.lstrip(" \t")


def _first_definition(root: Node, language: str) -> Node | None:
    wanted = "function_definition" if language == PYTHON else "method_declaration"
    return next((node for node in descendants(root) if node.type == wanted), None)


def training_example(
    focal_file: SourceFile,
    function: Function,
    test_source: str,
    *,
    framework: str,
    module_import: str | None,
    existing_test_source: str | None = None,
    level: str = DEFAULT_CONTEXT,
    test_class: str | None = None,
    project_root: Path | None = None,
    hidden_tests: Iterable[str] = (),
) -> tuple[str, str]:
    """(prompt, completion) for a developer's test of `function`, built exactly as inference builds
    prompts; `test_class` is the class the test is a method of, if any. With `project_root`, the
    prompt has the project block inference gives it, except that neither this test nor
    `hidden_tests` (nor a test with the same code) is ever its example: the model would learn to
    copy the example."""
    language = focal_file.language
    framework = parse_framework(framework, language)
    in_class = language == JAVA or framework == UNITTEST or test_class is not None
    # Where inference would leave the parameter list open (the header shows fixtures), so does training.
    header = header_for_test_file(language, framework, function, focal_file, module_import, existing_test_source,
                              test_class if in_class else None)
    opening, completion = split_test(test_source, language, INDENT if in_class else "",
                                     keep_open=shows_fixtures(language, framework, header))
    name_match = re.search(r"(?:def|void)\s+(\w+)\s*\(", opening)
    project = None
    if project_root is not None and focal_file.path is not None:
        project = gather_project_context(focal_file, function, project_root,
                                         hidden_tests=(test_source, *hidden_tests))
    prompt = build_prompt(
        focal_file, function, framework=framework, module_import=module_import,
        existing_test_source=existing_test_source, level=level,
        test_name=name_match.group(1) if name_match else None, test_class=test_class, prefix=opening,
        project=project,
    )
    return prompt.text, completion


# -- how a prompt reaches the model -------------------------------------------------------------
# A base model continues the plain code (`completion`). An instruct model (its tokenizer has a chat
# template) writes better tests when asked (`chat`): the focal context and the test file's header go
# in the user's message with an instruction, and the answer is begun with a code fence and the test's
# opening, so the model continues the same test and the same stop rule applies (a closing fence is a
# dedent in Python; Java ends at the test's closing brace). Measured on HumanEval and on the README's
# example with Qwen2.5-Coder-0.5B-Instruct: see the README's "Models and adapters".

COMPLETION, CHAT = "completion", "chat"
CHAT_SYSTEM = "You are an expert software engineer who writes correct, focused unit tests."
# Format 3 asks for one short test: asked for "a unit test", the model wrote one long test repeating
# an assertion pattern until the token limit.
CHAT_INSTRUCTION = {
    PYTHON: ("Write one short {framework} test for the function the test is named after: it checks one behaviour "
             "with at most three assertions. Compute each expected value by reading the code carefully; check "
             "raised exceptions with {raises}. Do not call project functions or methods that the code does not "
             "show. Reply with the test function only."),
    JAVA: ("Write one short JUnit test for the method the test is named after: it checks one behaviour with at "
           "most three assertions. Compute each expected value by reading the code carefully; check thrown "
           "exceptions with assertThrows. Do not call project methods that the code does not show. Reply with "
           "the test method only."),
}
#: Format 2's instruction, for the adapters trained with it.
FORMAT_2_CHAT_INSTRUCTION = {
    PYTHON: ("Write a {framework} unit test for the function the test is named after. Compute each expected value "
             "by reading the code carefully; check raised exceptions with {raises}. Reply with the test function "
             "only."),
    JAVA: ("Write a JUnit test for the method the test is named after. Compute each expected value by reading "
           "the code carefully; check thrown exceptions with assertThrows. Reply with the test method only."),
}
_FENCE = {PYTHON: "python", JAVA: "java"}


def prompt_style(tokenizer) -> str:
    """`chat` for a tokenizer with a chat template (an instruct model), else `completion`."""
    return CHAT if getattr(tokenizer, "chat_template", None) else COMPLETION


def split_opening(text: str) -> tuple[str, str]:
    """(code before the test, the test's opening) of a prompt's text: the opening is what follows the
    last blank line (a new test class's header with it, when the class is new)."""
    body, blank, opening = text.rpartition("\n\n")
    return (body.strip("\n") + "\n", opening) if blank else ("", text)


def model_input(tokenizer, text: str, language: str, max_tokens: int | None = None,
                format_version: int = PROMPT_FORMAT_VERSION) -> str:
    """What the model is given for a prompt's `text`, for training and inference alike: the text itself
    for a base model, the chat rendering for an instruct model, with the instruction of the prompt's
    `format_version` (`Prompt.format_version`). With `max_tokens`, a chat rendering that is too long
    loses the start of its code (the project block, then the focal context's far end), never the
    test's opening or the instruction."""
    if prompt_style(tokenizer) == COMPLETION:
        return text
    code, opening = split_opening(text)
    rendered = _chat(tokenizer, code, opening, language, format_version)
    if max_tokens is not None:
        excess = len(tokenizer(rendered, add_special_tokens=False)["input_ids"]) - max_tokens
        if excess > 0:
            ids = tokenizer(code, add_special_tokens=False)["input_ids"]
            code = tokenizer.decode(ids[min(len(ids), excess + 8):])
            rendered = _chat(tokenizer, code, opening, language, format_version)
    return rendered


def _chat(tokenizer, code: str, opening: str, language: str, format_version: int) -> str:
    fence = _FENCE.get(language, "")
    unittest_style = "(self" in opening and "unittest" in code
    instructions = CHAT_INSTRUCTION if format_version >= PROJECT_BLOCK_FORMAT else FORMAT_2_CHAT_INSTRUCTION
    instruction = instructions.get(language, instructions[PYTHON]).format(
        framework="unittest" if unittest_style else "pytest",
        raises="self.assertRaises" if unittest_style else "pytest.raises")
    user = f"{instruction}\n\n```{fence}\n{code}```"
    messages = [{"role": "system", "content": CHAT_SYSTEM}, {"role": "user", "content": user}]
    try:
        start = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - some templates refuse a system turn (jinja raises its own types)
        merged = [{"role": "user", "content": f"{CHAT_SYSTEM}\n\n{user}"}]
        start = tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=True)
    return f"{start}```{fence}\n{opening}"
