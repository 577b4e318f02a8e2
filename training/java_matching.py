"""Pairing Java tests with the methods they test, by the rules of methods2test.

- Test class -> focal class: `src/test/java/p/FooTest.java` -> `src/main/java/p/Foo.java` (also
  `FooTests`, `FooIT`, `FooTestCase`, `TestFoo`; `unitune.focal_candidates`).
- Test -> focal method, among the methods of the focal class `Foo` (constructors excluded):
  1. by name: the test's name, lower case and without a leading `test`, contains the method's name
     (`testDeposit`, `deposit`, `depositWorks`, `shouldDepositMoney` -> `deposit`); the longest name wins;
  2. else by call: the test invokes exactly one method of the focal class.
  Overloads are told apart by the number of arguments of the test's invocations. Invocations of
  the test class's own methods (helpers, set-up) never count.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from tree_sitter import Query, QueryCursor

from unitune.focal import METHOD, Function
from unitune.languages import JAVA, tree_sitter_language
from unitune.listing import TestFunction
from unitune.focal_candidates import focal_candidates_for_test
from unitune.source import SourceFile
from unitune.training.matching import CALL, NAME, Match, NoMatch, ParsedFiles, best_scored, describe

_INVOCATION_QUERY = "(method_invocation name: (identifier) @name arguments: (argument_list) @arguments) @call"
_TEST_CLASS_SUFFIXES = ("TestCase", "ITCase", "Tests", "Test", "IT")


@functools.cache
def _invocation_query() -> Query:
    return Query(tree_sitter_language(JAVA), _INVOCATION_QUERY)


@dataclass(frozen=True)
class Invocation:
    name: str
    arguments: int
    on_this: bool  # no receiver, or `this`: the test class's own method when it has one by that name


@dataclass
class JavaTestFile:
    path: Path
    file: SourceFile
    focal: Path | None  # the focal class's file
    own_methods: frozenset[str]  # methods the test file declares (tests, helpers, set-up)


class JavaMatcher:
    """Maps Java test classes to focal classes and tests to focal methods, for one repository."""

    def __init__(self, root: Path, code_files: list[Path], parsed: ParsedFiles):
        self.root = root
        self.parsed = parsed
        self._by_stem: dict[str, list[Path]] = {}
        for path in code_files:
            self._by_stem.setdefault(path.stem, []).append(path)

    def focal_class_file(self, test_path: Path) -> Path | None:
        names = _tested_class_names(test_path.stem)
        nearby = sorted({p for name in names for p in self._by_stem.get(name, ())})
        if not nearby:
            return None
        ranked = focal_candidates_for_test(test_path, self.root, files=nearby)
        return ranked[0] if ranked else None

    def prepare(self, test_path: Path, file: SourceFile) -> JavaTestFile:
        own = frozenset(f.name for f in self.parsed.functions(test_path))
        return JavaTestFile(test_path, file, self.focal_class_file(test_path), own)

    def focal_methods(self, focal: Path) -> list[Function]:
        """The methods of the focal class (the top-level class named like its file, nested classes included)."""
        return [f for f in self.parsed.functions(focal)
                if f.kind == METHOD and f.class_path and f.class_path[0] == focal.stem]

    def match(self, test_file: JavaTestFile, test: TestFunction) -> Match | NoMatch:
        if test_file.focal is None:
            return NoMatch("no focal class found for the test class")
        methods = self.focal_methods(test_file.focal)
        focal_class = test_file.focal.stem
        if not methods:
            return NoMatch(f"the focal class {focal_class} has no methods")
        invocations = [i for i in _invocations(test_file.file, test)
                       if not (i.on_this and i.name in test_file.own_methods)]
        subject = test.name.lower()
        subject = subject[len("test"):] if subject.startswith("test") else subject
        named = best_scored([(len(m.name), m) for m in methods if m.name.lower() in subject])
        if named:
            names = {m.name for m in named}
            if len(names) > 1:  # equally long names: the one the test invokes
                invoked = {i.name for i in invocations} & names
                if len(invoked) != 1:
                    return NoMatch(f"named after several methods of {focal_class} ({describe(named)})")
                named = [m for m in named if m.name in invoked]
            chosen = _pick_overload(named, invocations)
            if chosen is None:
                return NoMatch(f"named after an overloaded method ({describe(named)}) whose overload its calls do not tell")
            return Match(test_file.focal, chosen, NAME)
        invoked_names = {i.name for i in invocations}
        called = [m for m in methods if m.name in invoked_names]
        names = list(dict.fromkeys(m.name for m in called))
        if not names:
            return NoMatch(f"named after no method of {focal_class}, and invokes none")
        if len(names) > 1:
            return NoMatch(f"named after no method of {focal_class}, and invokes several ({', '.join(names[:5])})")
        chosen = _pick_overload(called, invocations)
        if chosen is None:
            return NoMatch(f"invokes an overloaded method ({describe(called)}) whose overload its calls do not tell")
        return Match(test_file.focal, chosen, CALL)


def _invocations(file: SourceFile, test: TestFunction) -> list[Invocation]:
    body = test.node.child_by_field_name("body")
    if body is None:
        return []
    found = []
    for _, captures in QueryCursor(_invocation_query()).matches(body):
        call = captures["call"][0]
        receiver = call.child_by_field_name("object")
        arguments = captures["arguments"][0]
        count = sum(1 for child in arguments.named_children if child.type not in ("line_comment", "block_comment"))
        found.append(Invocation(file.node_text(captures["name"][0]), count, receiver is None or receiver.type == "this"))
    return found


def _pick_overload(methods: list[Function], invocations: list[Invocation]) -> Function | None:
    """The one method of `methods` (same name), an overload chosen by the arguments the test passes."""
    if len(methods) == 1:
        return methods[0]
    arities = {i.arguments for i in invocations if i.name == methods[0].name}
    fitting = [m for m in methods if _parameter_count(m) in arities]
    return fitting[0] if len(fitting) == 1 else None


def _parameter_count(method: Function) -> int:
    parameters = method.node.child_by_field_name("parameters")
    if parameters is None:
        return 0
    return sum(1 for child in parameters.named_children if child.type in ("formal_parameter", "spread_parameter"))


def _tested_class_names(stem: str) -> list[str]:
    names = [stem[: -len(suffix)] for suffix in _TEST_CLASS_SUFFIXES if stem.endswith(suffix) and len(stem) > len(suffix)]
    if stem.startswith("Test") and len(stem) > len("Test"):
        names.append(stem[len("Test"):])
    return list(dict.fromkeys(names))
