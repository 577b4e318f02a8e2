"""Pairing Python tests with the functions they test.

A test file maps to its module: `tests/test_x.py`, `tests/pkg/test_x.py`, `test_x.py` or `x_test.py`
beside `x.py`, src layouts (`unitune.focal_candidates`), preferring the module whose
package the test's folders name (`test/test_email/test_utils.py` -> `email/utils.py`); a test file in
a `test_x/` folder whose own name matches nothing maps to the module or package `x`.

A test then maps to its focal function:
1. by name, among the functions of the mapped module: `test_<name>` or `test_<name>_<case>`
   (`testName`/`testNameCase` read as snake case; `test__helper` names the private `_helper`, and
   `test_helper` reaches `_helper` too when nothing public is called `helper`). The longest name wins;
   on a tie, a method of the class the test class names (`TestAccount`, `AccountTest(s)` ->
   `Account`), then the public spelling, then the one function among the tied ones the test calls;
2. else by call: the one function the test body calls among the functions of the mapped module and
   of the modules the test file imports, re-exports followed (`from pkg import func` with
   `pkg/__init__.py` doing `from .sub import func` -> `pkg/sub.py`). Calls count when they name a
   repository function through an import (`func()`, `mod.func()`, `Class.method()`), or call a method
   on some object (`account.deposit()`) whose name a class of the mapped module, or a class the test
   file imports by name, defines. Calls on `self`,
   of classes (construction is set-up), of builtins and of anything the test file defines itself
   (helpers, fixtures) never count. A test that uses its mapped module (calls one of its functions
   or classes) is judged by its calls into that module only: `os.path.join(...)` in a test of
   `subprocess` is set-up, not the focal function.
3. else, when it calls several, by what it checks: the one of them whose call sits in a check (an
   `assert`, the arguments of `self.assert...(...)`, the body of `with pytest.raises(...)` or
   `with self.assertRaises(...)`) or binds a name that a check reads (`x = f(...)`, `with f(...) as x`);
   the calls that build the input are set-up. Several checked: no pair.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from tree_sitter import Query, QueryCursor

from unitune.focal import FUNCTION, Function
from unitune.languages import PYTHON, tree_sitter_language
from unitune.listing import TestFunction
from unitune.focal_candidates import focal_candidates_for_test
from unitune.project_layout import TEST_DIR_NAMES, common_suffix, tested_name
from unitune.source import SourceFile
from unitune.syntax_walk import descendants
from unitune.test_names import snake_case
from unitune.training.matching import CALL, CHECKED, NAME, Match, NoMatch, ParsedFiles, best_scored, describe
from unitune.training.python_checks import bound_calls, checks
from unitune.training.python_modules import (
    CLASS, MODULE, Binding, PythonModules, Target, import_bindings, is_dotted_name,
)

_CALL_QUERY = """
(call function: [
  (identifier) @name
  (attribute object: (_) @object attribute: (identifier) @attribute)
])
(call arguments: (argument_list [
  (identifier) @ref_name
  (attribute object: (_) @ref_object attribute: (identifier) @ref_attribute)
]))
"""
_SELF_NAMES = frozenset({"self", "cls"})
_TEST_CLASS_PREFIXES = ("Test_", "Test")
_TEST_CLASS_SUFFIXES = ("TestCase", "Tests", "Test")


@functools.cache
def _call_query() -> Query:
    return Query(tree_sitter_language(PYTHON), _CALL_QUERY)


@dataclass
class PythonTestFile:
    """A test file and what matching its tests needs."""

    path: Path
    file: SourceFile
    module: Path | None  # the code module it maps to
    bindings: dict[str, Binding]
    star_imports: list[str]
    local_names: frozenset[str]  # what the file defines itself: never a focal function
    # Classes whose methods `obj.name()` may call: those of the mapped module, and those the file imports.
    classes: list[tuple[Path, str]] = field(default_factory=list)
    _methods: dict[str, list[tuple[Path, Function]]] = field(default_factory=dict)


class PythonMatcher:
    """Maps Python test files to modules and tests to focal functions, for one repository."""

    def __init__(self, root: Path, code_files: list[Path], parsed: ParsedFiles):
        self.root = root
        self.parsed = parsed
        self.modules = PythonModules(root, code_files, parsed)
        self._variants: dict[Path, list[tuple[Function, frozenset[str]]]] = {}
        self._by_stem: dict[str, list[Path]] = {}
        for path in code_files:
            stem = path.parent.name if path.name == "__init__.py" else path.stem
            self._by_stem.setdefault(stem, []).append(path)

    # -- test file -> module ---------------------------------------------------------------------

    def mapped_module(self, test_path: Path) -> Path | None:
        """The code module `test_path` tests, or None."""
        stems = _candidate_stems(test_path.stem)
        nearby = sorted({p for stem in stems for p in self._by_stem.get(stem, ())})
        hint = self._folder_hint(test_path)
        if nearby:
            # Only files named like the test can be candidates, so placement need not see the rest.
            ranked = focal_candidates_for_test(test_path, self.root, files=nearby)
            if ranked:
                ranked.sort(key=lambda p: -common_suffix(self.modules.module_name(p).split(".")[:-1], hint))
                return ranked[0]
        for start in range(len(hint)):
            found = self.modules.by_name.get(".".join(hint[start:]))
            if found is not None:
                return found
        return None

    def _folder_hint(self, test_path: Path) -> list[str]:
        """The package the test's folders name: `test/test_email/` -> [`email`]."""
        parts = list(test_path.relative_to(self.root).parts[:-1])
        anchor = max((i for i, part in enumerate(parts) if part in TEST_DIR_NAMES), default=-1)
        named = []
        for part in parts[anchor + 1:]:
            name = tested_name(part) or part
            if name:
                named.append(name)
        return named

    def prepare(self, test_path: Path, file: SourceFile) -> PythonTestFile:
        module = self.mapped_module(test_path)
        name = self.modules.module_name(test_path)
        bindings, stars = import_bindings(file, name, test_path.name == "__init__.py", anywhere=True)
        classes = [(module, name) for name in self.modules.symbols(module).classes] if module is not None else []
        for binding in bindings.values():
            target = self.modules.resolve_binding(binding)
            if target is not None and target.kind == CLASS:
                classes.append((target.path, target.name))
        return PythonTestFile(test_path, file, module, bindings, stars, _local_names(file), list(dict.fromkeys(classes)))

    # -- test -> focal function ------------------------------------------------------------------

    def match(self, test_file: PythonTestFile, test: TestFunction) -> Match | NoMatch:
        named = self._named(test_file, test)
        if len(named) == 1:
            return Match(test_file.module, named[0], NAME)
        calls, touched = self.called(test_file, test)
        mapped = [call for call in calls if call[0] == test_file.module]
        if mapped or test_file.module in touched:
            calls = mapped  # the test exercises its own module: calls into other modules are set-up
        if named:
            called = [f for f in named if any(f is function for _, function in calls)]
            if len(called) == 1:
                return Match(test_file.module, called[0], NAME)
            return NoMatch(f"named after several functions ({describe(named)}) and calls none or several of them")
        if len(calls) == 1:
            path, function = calls[0]
            return Match(path, function, CALL)
        if calls:
            checked = self._checked(test_file, test, calls)
            if len(checked) == 1:
                path, function = checked[0]
                return Match(path, function, CHECKED)
            return NoMatch(f"named after no function and calls several ({describe([f for _, f in calls])})"
                           + (f", checking several ({describe([f for _, f in checked])})" if checked else
                              ", checking none of their results"))
        if test_file.module is None:
            return NoMatch("no module found for the test file, and the test calls no function of the repository")
        module = test_file.module.relative_to(self.root).as_posix()
        if test_file.module in touched:
            return NoMatch(f"named after no function of {module}, and calls none of its functions (only its classes)")
        return NoMatch(f"named after no function of {module}, and calls no function of the repository")

    def _named(self, test_file: PythonTestFile, test: TestFunction) -> list[Function]:
        """The functions of the mapped module the test is named after (one, or the tied best)."""
        subject = _test_subject(test.name)
        if test_file.module is None or subject is None:
            return []
        classes = {_class_subject(name) for name in (test.qualified_name.split(".")[:-1])} - {None}
        scored = []
        for function, variants in self._name_variants(test_file.module):
            score = _name_score(subject, function.name.lower(), variants)
            if score is not None:
                in_class = function.class_name is not None and function.class_name.lower() in classes and len(function.class_path) == 1
                scored.append(((score[0], in_class, score[1]), function))
        return best_scored(scored)

    def _name_variants(self, module: Path) -> list[tuple[Function, frozenset[str]]]:
        """Each function of `module` with the spellings a test name may use for it (computed once)."""
        if module not in self._variants:
            self._variants[module] = [(function, _spellings(function.name)) for function in self.modules.functions(module)]
        return self._variants[module]

    def called(self, test_file: PythonTestFile, test: TestFunction) -> tuple[list[tuple[Path, Function]], set[Path]]:
        """The distinct repository functions the test body calls, by the call rule, and the modules
        whose classes it calls (constructs) or calls methods of without naming a function."""
        body = test.node.child_by_field_name("body")
        if body is None:
            return [], set()
        found: dict[tuple[Path, str], tuple[Path, Function]] = {}
        touched: set[Path] = set()
        file = test_file.file
        for _, captures in QueryCursor(_call_query()).matches(body):
            if "name" in captures:
                hits, module = self._bare_call(test_file, file.node_text(captures["name"][0]))
            elif "object" in captures:
                hits, module = self._attribute_call(test_file, captures["object"][0], file.node_text(captures["attribute"][0]))
            else:  # a function passed by reference: `benchmark(humanize.apnumber, 7)`, `map(parse, items)`
                hits, module = self._reference(test_file, captures), None
            for path, function in hits:
                found.setdefault((path, function.qualified_name), (path, function))
            if module is not None:
                touched.add(module)
        return list(found.values()), touched

    def _checked(self, test_file: PythonTestFile, test: TestFunction,
                 calls: list[tuple[Path, Function]]) -> list[tuple[Path, Function]]:
        """Those of `calls` whose result the test checks (rule 3 of the module's docstring)."""
        file, body = test_file.file, test.node.child_by_field_name("body")
        if body is None:
            return []
        found_checks = checks(file, body)
        read = {file.node_text(node) for check in found_checks for node in descendants(check, named_only=True)
                if node.type == "identifier"}
        checked_calls = [node for check in found_checks for node in descendants(check, named_only=True)
                         if node.type == "call"]
        checked_calls += [call for name, call in bound_calls(file, body) if name in read]
        found = {(path, function.qualified_name) for call in checked_calls for path, function in self._resolve_call(test_file, call)}
        # a function passed to a check by reference: `self.assertRaises(ValueError, parse, "x")`
        found |= {(path, function.qualified_name) for check in found_checks for node in check.named_children
                  if node.type == "identifier" for path, function in self._bare_call(test_file, file.node_text(node))[0]}
        return [(path, function) for path, function in calls if (path, function.qualified_name) in found]

    def _resolve_call(self, test_file: PythonTestFile, call) -> list[tuple[Path, Function]]:
        function = call.child_by_field_name("function")
        if function is None:
            return []
        if function.type == "identifier":
            return self._bare_call(test_file, test_file.file.node_text(function))[0]
        if function.type == "attribute":
            return self._attribute_call(test_file, function.child_by_field_name("object"),
                                        test_file.file.node_text(function.child_by_field_name("attribute")))[0]
        return []

    def _lookup(self, test_file: PythonTestFile, name: str) -> tuple[bool, Target | None]:
        """(whether `name` is imported, what it resolves to in the repository)."""
        binding = test_file.bindings.get(name)
        if binding is not None:
            return True, self.modules.resolve_binding(binding)
        for star in test_file.star_imports:
            target = self.modules.resolve(star, name)
            if target is not None:
                return True, target
        return False, None

    # `_bare_call` and `_attribute_call` give (functions called, module of a class called instead).

    def _bare_call(self, test_file: PythonTestFile, name: str) -> tuple[list[tuple[Path, Function]], Path | None]:
        if name in test_file.local_names:
            return [], None
        _, target = self._lookup(test_file, name)
        if target is not None and target.kind == FUNCTION:
            return [(target.path, target.function)], None
        # A class (construction), a module, a builtin or something from outside.
        return [], target.path if target is not None and target.kind == CLASS else None

    def _attribute_call(self, test_file: PythonTestFile, obj, attribute: str) -> tuple[list[tuple[Path, Function]], Path | None]:
        text = test_file.file.node_text(obj)
        if text in _SELF_NAMES or (obj.type == "call" and text.startswith("super(")):
            return [], None
        if is_dotted_name(text):
            head = text.split(".", 1)[0]
            if head in test_file.local_names:
                return [], None
            imported, _ = self._lookup(test_file, head)
            if imported:
                target = self._resolve_chain(test_file, text)
                if target is None:
                    return [], None  # something from outside the repository (`os.path.join`)
                if target.kind == MODULE:
                    found = self.modules.resolve(target.module, attribute)
                    if found is not None and found.kind == FUNCTION:
                        return [(found.path, found.function)], None
                    return [], found.path if found is not None and found.kind == CLASS else None
                if target.kind == CLASS:
                    method = self.modules.method(target, attribute)
                    return ([(target.path, method)], None) if method is not None else ([], target.path)
                return [], None
        return self._methods_named(test_file, attribute), None

    def _reference(self, test_file: PythonTestFile, captures: dict) -> list[tuple[Path, Function]]:
        """The repository function an argument names, if it names one through an import (never a
        method guessed by its name alone: `obj.name` as an argument is usually data)."""
        file = test_file.file
        if "ref_name" in captures:
            return self._bare_call(test_file, file.node_text(captures["ref_name"][0]))[0]
        obj = captures["ref_object"][0]
        if not is_dotted_name(file.node_text(obj)):
            return []
        head = file.node_text(obj).split(".", 1)[0]
        if head in _SELF_NAMES or head in test_file.local_names or not self._lookup(test_file, head)[0]:
            return []
        return self._attribute_call(test_file, obj, file.node_text(captures["ref_attribute"][0]))[0]

    def _resolve_chain(self, test_file: PythonTestFile, text: str) -> Target | None:
        head, *rest = text.split(".")
        _, target = self._lookup(test_file, head)
        for part in rest:
            if target is None or target.kind != MODULE:
                return None
            target = self.modules.resolve(target.module, part)
        return target

    def _methods_named(self, test_file: PythonTestFile, name: str) -> list[tuple[Path, Function]]:
        """Methods called `name` of the classes in the test file's reach (its module's, the imported ones)."""
        if name not in test_file._methods:
            found = []
            for path, class_name in test_file.classes:
                method = self.modules.symbols(path).classes.get(class_name, {}).get(name)
                if method is not None:
                    found.append((path, method))
            test_file._methods[name] = found
        return test_file._methods[name]


# -- names ---------------------------------------------------------------------------------------

def _candidate_stems(stem: str) -> set[str]:
    """The module stems a test file's name may point to (`test_account_deposit` -> account_deposit, account)."""
    name = tested_name(stem)
    words = name.split("_")
    return {"_".join(words[:n]) for n in range(1, len(words) + 1)} - {""}


def _test_subject(test_name: str) -> str | None:
    """What a test's name says it tests, in snake case: `test_deposit_twice` -> `deposit_twice`,
    `testDecodeBytes` -> `decode_bytes`, `test__helper` -> `_helper`."""
    if not test_name.lower().startswith("test"):
        return None
    rest = test_name[len("test"):]
    rest = rest[1:] if rest.startswith("_") else rest
    if not rest.strip("_"):
        return None
    if any(char.isupper() for char in rest):
        rest = "_" * (len(rest) - len(rest.lstrip("_"))) + snake_case(rest)
    return rest.lower()


def _spellings(name: str) -> frozenset[str]:
    """How a test name may spell a function's name: as written, in snake case, without leading underscores."""
    return frozenset(v for v in (name.lower(), snake_case(name), name.strip("_").lower()) if v)


def _name_score(subject: str, exact: str, variants: frozenset[str]) -> tuple[int, bool] | None:
    """(length of the matched name, whether it is the name as written) when a test about `subject` is
    named after the function spelled `exact` (lower case) or one of its `variants`."""
    best = None
    for variant in variants:
        if subject == variant or subject.startswith(variant + "_"):
            score = (len(variant), variant == exact)
            best = score if best is None else max(best, score)
    return best


def _class_subject(test_class: str) -> str | None:
    """The class a test class is named after, lower case: `TestAccount`, `AccountTests` -> `account`."""
    for prefix in _TEST_CLASS_PREFIXES:
        if test_class.startswith(prefix) and len(test_class) > len(prefix):
            return test_class[len(prefix):].lower()
    for suffix in _TEST_CLASS_SUFFIXES:
        if test_class.endswith(suffix) and len(test_class) > len(suffix):
            return test_class[: -len(suffix)].lower()
    return None


def _local_names(file: SourceFile) -> frozenset[str]:
    """Names the test file defines at its top level: helpers, fixtures, classes, module variables."""
    names = set()
    for node in file.tree.root_node.named_children:
        definition = node.child_by_field_name("definition") if node.type == "decorated_definition" else node
        if definition is None:
            continue
        if definition.type in ("function_definition", "class_definition"):
            names.add(file.node_text(definition.child_by_field_name("name")))
        elif definition.type == "expression_statement" and definition.named_child_count == 1:
            assignment = definition.named_children[0]
            left = assignment.child_by_field_name("left") if assignment.type == "assignment" else None
            if left is not None and left.type == "identifier":
                names.add(file.node_text(left))
    return frozenset(names)

