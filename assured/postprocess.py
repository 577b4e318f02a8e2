"""From raw model completions to valid, named tests: cut, check, repair, de-duplicate, rank, name.

A completion is what the model wrote after `Prompt.text`. Each one is
  1. cut where the test ends (`Prompt.test_source`, the stop rule of the prompt format), after
     dropping anything from an end-of-text marker on (`<|endoftext|>`, `</s>`, ...);
  2. checked with tree-sitter (`unitune.assured.validity`): a Python test is parsed on its own
     (dedented), a Java test wrapped in `class X { ... }`; valid means no ERROR or MISSING node,
     exactly one test function, and a body that does something (not only `pass`, `...` or a docstring);
  3. repaired when it is not valid and was cut off (the stop rule never saw its end), or ended with
     an unfinished last statement: Java gets its missing closing brackets appended; then the last
     line(s) are dropped, one at a time, until the test parses with a non-empty body
     (`unitune.assured.validity`), and it is kept only if something that asserts is left; the
     repair says it was cut. A complete test with an error in the middle is not salvaged: cutting
     its end off would quietly drop what it checks;
  4. compared with the others: duplicates (same code once whitespace is collapsed and the test's name
     is set aside) are dropped;
  5. ranked, best first: tests that assert something, then more distinct assertions, then tests that
     call the focal function by name, then shorter ones;
  6. named so no name clashes with the test file's or another candidate's (`unique_names`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from tree_sitter import Node

from unitune.assured.validity import first_error_line, parse_test, repair_truncated, syntax_problems
from unitune.errors import UnituneError
from unitune.languages import JAVA, LANGUAGES, PYTHON
from unitune.prompt import Prompt

#: Text a model emits to say it is done; everything from one on is dropped.
END_MARKERS = (
    "<|endoftext|>", "</s>", "<|end|>", "<|EOT|>", "<|eot_id|>", "<|im_end|>", "<eos>", "<|file_separator|>",
)
_PY_ASSERT_CALL = re.compile(
    r"^((self|cls)\.)?(assert\w*|fail\w*)$|^pytest\.(raises|warns|fail|deprecated_call)$|\.assert_\w+$|^assert_that$"
)
_JAVA_ASSERT_CALL = re.compile(r"^(assert\w*|fail|verify\w*|expect\w*)$")


@dataclass
class GeneratedTest:
    """One candidate test, kept or not, with what was done to it and why it was dropped."""

    __test__ = False  # a data class, not a pytest test class

    name: str
    source: str  # the whole test function, indented as it sits in the test file, ending in "\n"
    language: str
    valid: bool
    repaired: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    assertions: int = 0  # distinct assertions (the same assertion repeated counts once)
    score: float = 0.0  # higher is better; see `_score`
    index: int = 0  # which completion it came from
    duplicate_of: int | None = None  # the index of the completion it repeats
    calls_focal: bool = False
    adds: str = ""  # validate = "run": what it covers and kills ("covers 9/11 lines, kills 5/6 mutants")
    numbered_from: str | None = None  # the name `unique_names` numbered (`test_parse` for `test_parse_2`)

    @property
    def kept(self) -> bool:
        """Whether this candidate is offered to the user."""
        return self.valid and self.duplicate_of is None

    @property
    def body_key(self) -> str:
        """What the test does, whatever it is named: the same test renamed (`test_deposit_2` ->
        `test_deposit_returns_5`) has the same key."""
        return _normalized(self.source, self.name)

    def to_json(self) -> dict:
        return dataclasses.asdict(self) | {"kept": self.kept}


# -- the pipeline --------------------------------------------------------------------------------

def postprocess(
    prompt: Prompt,
    completions: Sequence[str],
    existing_names: Iterable[str] = frozenset(),
    *,
    focal_name: str | tuple[str, ...] | None = None,
) -> list[GeneratedTest]:
    """The valid, distinct tests among `completions`, best first, with names unique against
    `existing_names` (the tests already in the test file) and each other."""
    return [test for test in postprocess_all(prompt, completions, existing_names, focal_name=focal_name) if test.kept]


def postprocess_all(
    prompt: Prompt,
    completions: Sequence[str],
    existing_names: Iterable[str] = frozenset(),
    *,
    focal_name: str | tuple[str, ...] | None = None,
) -> list[GeneratedTest]:
    """Every candidate, for reporting: the kept ones first (best first, uniquely named), then the
    dropped ones in completion order, each with its `problems` (or `duplicate_of`).

    `focal_name` is the function under test, or the names it is called by (default: read off the
    test's name)."""
    if prompt.language not in LANGUAGES:
        raise UnituneError(f"cannot post-process tests in {prompt.language!r}; unitune writes {', '.join(LANGUAGES)}")
    focal = focal_name or _focal_from_test_name(prompt.test_name)
    candidates = [_candidate(prompt, completion, index, focal) for index, completion in enumerate(completions)]
    seen: dict[str, int] = {}
    for test in candidates:
        if not test.valid:
            continue
        key = _normalized(test.source, test.name)
        if key in seen:
            test.duplicate_of = seen[key]
            test.problems.append(f"duplicate of candidate {seen[key] + 1}")
        else:
            seen[key] = test.index
    kept = sorted((test for test in candidates if test.kept), key=lambda test: (-test.score, test.index))
    dropped = [test for test in candidates if not test.kept]
    return unique_names(kept, existing_names) + dropped


def _candidate(prompt: Prompt, completion: str, index: int, focal: str | tuple[str, ...]) -> GeneratedTest:
    completion = completion.replace("\r\n", "\n")
    repaired: list[str] = []
    marker = _first_end_marker(completion)
    if marker is not None:
        cut = completion[:marker]
        if prompt.test_source(cut) != prompt.test_source(completion):
            repaired.append(f"dropped text from the end-of-text marker {completion[marker:].split('>', 1)[0]}>")
        completion = cut
    ended = prompt.stop_scanner().feed(completion, final=True) is not None
    source = prompt.test_source(completion)
    problems = syntax_problems(source, prompt.language)
    if problems and (not ended or _broken_at_its_end(source, prompt.language)):
        fixed = repair_truncated(source, prompt, completion)
        if fixed is not None:
            source, how = fixed
            repaired.extend(how)
            problems = []
        elif not ended and "syntax error" in problems[0]:
            problems = [f"cut off before its end ({problems[0]}), and nothing that asserts was left"]
    test = GeneratedTest(prompt.test_name, source, prompt.language, not problems, repaired, problems, index=index)
    if test.valid:
        rate(test, focal)
        if repaired and not test.assertions and any(note.startswith("cut back") for note in repaired):
            test.valid = False  # what is left of it checks nothing
            cut = next(note for note in repaired if note.startswith("cut back"))
            test.problems.append(f"{cut}, and nothing that asserts was left")
    return test


def _broken_at_its_end(source: str, language: str) -> bool:
    """Whether the first syntax error of a test that did end is on its last line (an unfinished last
    statement), not in its middle, where cutting its end off would quietly drop what it checks."""
    line = first_error_line(source, language)
    lines = source.rstrip("\n").split("\n")
    last = max((number for number, text in enumerate(lines, 1) if text.strip() and text.strip() != "}"), default=0)
    return line is not None and line >= last


def _first_end_marker(text: str) -> int | None:
    found = [position for position in (text.find(marker) for marker in END_MARKERS) if position >= 0]
    return min(found) if found else None


# -- ranking -------------------------------------------------------------------------------------

def rate(test: GeneratedTest, focal: str | tuple[str, ...]) -> None:
    """Count the test's distinct assertions, whether it calls `focal` (a name, or the names it is called
    by: `Function.called_as`), and score it."""
    function, _, _ = parse_test(test.source, test.language)
    assertions: set[str] = set()
    calls: set[str] = set()
    stack = [function] if function is not None else []
    while stack:
        node = stack.pop()
        name = _called_name(node, test.language)
        if node.type == "assert_statement" or (name is not None and _is_assertion_call(node, name, test.language)):
            assertions.add(re.sub(r"\s+", " ", node.text.decode("utf-8", errors="replace")))
        if name is not None:
            calls.add(_identifier_key(name.rsplit(".", 1)[-1]))
        stack.extend(node.named_children)
    test.assertions = len(assertions)
    test.calls_focal = any(_identifier_key(name) in calls for name in ((focal,) if isinstance(focal, str) else focal))
    test.score = _score(test)


def _called_name(node: Node, language: str) -> str | None:
    """The dotted name a call node calls (`self.assertEqual`, `m.plus`, `new Money` -> `Money`)."""
    if language == PYTHON and node.type == "call":
        function = node.child_by_field_name("function")
        return function.text.decode("utf-8", errors="replace") if function is not None else None
    if language == JAVA and node.type == "method_invocation":
        name = node.child_by_field_name("name")
        return name.text.decode("utf-8", errors="replace") if name is not None else None
    if language == JAVA and node.type == "object_creation_expression":
        kind = node.child_by_field_name("type")
        return re.sub(r"<.*", "", kind.text.decode("utf-8", errors="replace")) if kind is not None else None
    return None


def _is_assertion_call(node: Node, name: str, language: str) -> bool:
    if language == PYTHON:
        return bool(_PY_ASSERT_CALL.search(name))
    return node.type == "method_invocation" and bool(_JAVA_ASSERT_CALL.match(name))


def _score(test: GeneratedTest) -> float:
    """Ranks lexicographically: asserts at all, distinct assertions, calls the focal function,
    shortness (each term outweighs every later one)."""
    shortness = 99.0 * 400 / (400 + len(_normalized(test.source, test.name)))
    return round(
        1_000_000 * (test.assertions > 0) + 1_000 * min(test.assertions, 999) + 100 * test.calls_focal + shortness, 3
    )


def _focal_from_test_name(test_name: str) -> str:
    stem = re.sub(r"^test_?", "", test_name)
    return stem or test_name


def _identifier_key(name: str) -> str:
    """Names compared the way test names are derived: `getHTTPValue` ~ `get_http_value`."""
    return name.replace("_", "").lower()


def _normalized(source: str, name: str) -> str:
    text = re.sub(rf"\b{re.escape(name)}\b", "<test>", source, count=1)
    text = re.sub(r"\s+", " ", text).strip()
    return re.sub(r" ?([^\w ]) ?", r"\1", text)


# -- naming --------------------------------------------------------------------------------------

def unique_names(tests: Sequence[GeneratedTest], existing_names: Iterable[str] = frozenset()) -> list[GeneratedTest]:
    """Copies of `tests` (in order) renamed where needed so that no name is in `existing_names` or
    used twice: `test_deposit`, `test_deposit_2`, ... (Java `testDeposit`, `testDeposit2`). The
    function's name in its source is renamed too."""
    taken = set(existing_names)
    renamed = []
    for test in tests:
        name = _free_name(test.name, test.language, taken)
        taken.add(name)
        if name != test.name:
            test = dataclasses.replace(
                test, name=name, source=rename_test(test.source, test.name, name, test.language),
                repaired=list(test.repaired), problems=list(test.problems), numbered_from=test.numbered_from or test.name,
            )
        renamed.append(test)
    return renamed


def _free_name(base: str, language: str, taken: set[str]) -> str:
    if base not in taken:
        return base
    separator = "_" if language == PYTHON or base[-1:].isdigit() else ""
    number = 2
    while f"{base}{separator}{number}" in taken:
        number += 1
    return f"{base}{separator}{number}"


def rename_test(source: str, old: str, new: str, language: str) -> str:
    """`source` with the test function's declared name `old` changed to `new` (only the declaration)."""
    keyword = r"\bdef\s+" if language == PYTHON else r"\bvoid\s+"
    renamed, count = re.subn(rf"({keyword}){re.escape(old)}(?=\s*\()", rf"\g<1>{new}", source, count=1)
    if not count:
        raise UnituneError(f"cannot rename test {old!r}: its declaration was not found")
    return renamed
