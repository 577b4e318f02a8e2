"""Mining a repository for focal-method/test pairs: `unitune mine`.

    result = mine("path/to/repo")            # MiningResult: pairs, unmatched tests, summary
    write_pairs(result.pairs, "pairs.jsonl")

Steps: discover the files (`unitune.training.discovery`); tell test files from code (the runners'
rules, `unitune.listing`); list each test file's tests; pair each test with its focal function
(`unitune.training.python_matching`, `unitune.training.java_matching`); turn each pair into a
training example with `unitune.prompt.training_example`, exactly as inference builds prompts (the
project block included, whose example test is never the pair's own test); drop duplicate examples;
assign splits by focal file (`unitune.training.pairs`).

The prompt's test-file header comes from the test file with its tests taken out
(`unitune.training.test_headers`): what a header shows (imports, fixtures, the class header,
attributes and set-up) does not depend on the other tests, and one such text serves every test of a
class instead of one re-parse of the whole file per test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from unitune.errors import UnituneError
from unitune.frameworks import JUNIT3, JUNIT4, JUNIT5, PYTEST, UNITTEST, java_import_framework
from unitune.languages import JAVA, LANGUAGES, PYTHON
from unitune.listing import TestFunction, is_test_file, java_imports, java_package, list_tests
from unitune.project_layout import TEST_DIR_NAMES, looks_like_test_file
from unitune.prompt import PROMPT_FORMAT_VERSION, training_example
from unitune.source import SourceFile
from unitune.training.discovery import discover_files, git_commit
from unitune.training.errors import MiningError, NoPairsFoundError, NoTestsFoundError, NotARepositoryError
from unitune.training.java_matching import JavaMatcher
from unitune.training.matching import Match, NoMatch, ParsedFiles
from unitune.training.pairs import (  # noqa: F401  (re-exported: the records of a mining run)
    AUTO, REQUIRED_KEYS, SPLITS, LanguageSummary, MiningResult, MiningSummary, Pair, UnmatchedTest, assign_splits,
    without_duplicates, write_pairs,
)
from unitune.training.python_matching import PythonMatcher
from unitune.test_skeleton import skeleton_of  # noqa: F401  (re-exported)
from unitune.training.test_headers import header_source

__all__ = [
    "discover_files", "mine", "require_pairs", "write_pairs", "Pair", "UnmatchedTest", "MiningResult",
    "MiningSummary", "LanguageSummary", "REQUIRED_KEYS", "SPLITS", "skeleton_of",
]

#: Mined source files by language (`.pyi` stubs have no bodies to test).
SOURCE_SUFFIXES = {PYTHON: ".py", JAVA: ".java"}
# A file without these bytes cannot hold a test, so it is not parsed just to find out.
_TEST_MARKERS = {PYTHON: (b"def test", b"TestCase"), JAVA: (b"Test", b"@Theory")}

ProgressCallback = Callable[[int, int, str], None]  # (test files done, test files in all, current file)


def mine(repo: str | Path, language: str | None = None, on_progress: ProgressCallback | None = None,
         split: str = AUTO) -> MiningResult:
    """Mine `repo` for pairs (of `language` only, when given), split as `split` says
    (`unitune.training.pairs.assign_splits`). Raises `NotARepositoryError` when `repo`
    is not a directory; a repository without tests or pairs gives an empty result (see `require_pairs`)."""
    started = time.perf_counter()
    root = _repository_root(repo)
    languages = _languages(language)
    files = discover_files(root)
    summary = MiningSummary(repo=str(root), commit=git_commit(root), files_scanned=len(files))
    parsed = ParsedFiles()
    work: list[tuple[str, Path, SourceFile, list[TestFunction]]] = []
    matchers = {}
    for lang in languages:
        counts = summary.by_language.setdefault(lang, LanguageSummary())
        sources = [f for f in files if f.suffix == SOURCE_SUFFIXES[lang]]
        counts.source_files = len(sources)
        code, tests = _classify(root, sources, lang, parsed)
        matchers[lang] = (PythonMatcher if lang == PYTHON else JavaMatcher)(root, code, parsed)
        for path, file, found in tests:
            counts.test_files += 1
            counts.tests += len(found)
            work.append((lang, path, file, found))
    work.sort(key=lambda item: _relative(root, item[1]))

    commit = summary.commit
    pairs: list[Pair] = []
    unmatched: list[UnmatchedTest] = []
    for done, (lang, path, file, tests) in enumerate(work, 1):
        file_pairs, file_unmatched = _mine_test_file(root, matchers[lang], parsed, path, file, tests, commit)
        pairs += file_pairs
        unmatched += file_unmatched
        if on_progress is not None:
            on_progress(done, len(work), _relative(root, path))

    pairs, summary.duplicates = without_duplicates(pairs)
    summary.split_by, summary.split_note = assign_splits(pairs, split)
    for pair in pairs:
        summary.by_language[pair.language].pairs += 1
        summary.by_split[pair.split] += 1
    for test in unmatched:
        summary.by_language[test.language].unmatched += 1
    counts = summary.by_language.values()
    summary.source_files = sum(c.source_files for c in counts)
    summary.test_files = sum(c.test_files for c in counts)
    summary.tests_found = sum(c.tests for c in counts)
    summary.pairs, summary.unmatched = len(pairs), len(unmatched)
    unreadable = {_relative(root, path): reason for path, reason in sorted(parsed.unreadable.items())}
    summary.unreadable = len(unreadable)
    summary.seconds = round(time.perf_counter() - started, 3)
    return MiningResult(pairs, unmatched, summary, unreadable)


def require_pairs(result: MiningResult, language: str | None = None) -> MiningResult:
    """`result` when it has pairs; else the error saying what was missing (no sources, no tests, no
    pairs) with a hint of what to do."""
    summary = result.summary
    what = {PYTHON: "Python", JAVA: "Java"}.get(language or "", "Python or Java")
    if summary.source_files == 0:
        raise NotARepositoryError(f"{summary.repo}: no {what} source files found; point `unitune mine` at a repository")
    if summary.tests_found == 0:
        raise NoTestsFoundError(
            f"{summary.repo}: no tests found in {summary.source_files} {what} files (looked for pytest, unittest "
            "and JUnit tests, e.g. tests/test_*.py, src/test/java/**/*Test.java)")
    if summary.pairs == 0:
        reasons = sorted({u.reason for u in result.unmatched})
        raise NoPairsFoundError(
            f"{summary.repo}: none of the {summary.tests_found} tests could be paired with the function it tests "
            f"(e.g. {reasons[0]})" if reasons else f"{summary.repo}: no pairs found")
    return result


# -- steps ----------------------------------------------------------------------------------------

def _repository_root(repo: str | Path) -> Path:
    path = Path(repo).expanduser()
    if not path.exists():
        raise NotARepositoryError(f"{repo}: no such directory")
    if not path.is_dir():
        raise NotARepositoryError(f"{repo}: is a file; `unitune mine` takes a repository directory")
    return path.resolve()


def _languages(language: str | None) -> tuple[str, ...]:
    if language is None:
        return LANGUAGES
    if language not in LANGUAGES:
        raise MiningError(f"language {language!r} is not one of: {', '.join(LANGUAGES)}")
    return (language,)


def _relative(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _classify(root: Path, sources: list[Path], language: str, parsed: ParsedFiles):
    """(code files, [(test file, parsed, its tests)]) of one language. Test files, and anything in a
    test folder (helpers, conftest), are never code, so nothing in them becomes a focal function."""
    code, tests = [], []
    markers = _TEST_MARKERS[language]
    for path in sources:
        relative = path.relative_to(root)
        in_test_folder = any(part in TEST_DIR_NAMES for part in relative.parts[:-1])
        named_as_test = looks_like_test_file(relative)
        if not named_as_test and not _contains_any(path, markers):
            if not in_test_folder:
                code.append(path)
            continue
        file = parsed.get(path)
        found = list_tests(file) if file is not None else []
        if named_as_test or (file is not None and is_test_file(relative, file)):
            if found:
                tests.append((path, file, found))
        elif not in_test_folder:
            code.append(path)
    return code, tests


def _contains_any(path: Path, markers: tuple[bytes, ...]) -> bool:
    try:
        data = path.read_bytes()
    except OSError:
        return False
    return any(marker in data for marker in markers)


def _mine_test_file(root, matcher, parsed, path, file, tests, commit) -> tuple[list[Pair], list[UnmatchedTest]]:
    language = file.language
    test_file = matcher.prepare(path, file)
    framework = _file_framework(file, tests)
    headers: dict[str | None, str] = {}  # test class -> existing_test_source of its prompts
    pairs, unmatched = [], []
    relative = _relative(root, path)
    for test in tests:
        outcome = matcher.match(test_file, test)
        if isinstance(outcome, NoMatch):
            unmatched.append(UnmatchedTest(language, relative, test.qualified_name, outcome.reason))
            continue
        test_class = _test_class(test)
        if test_class not in headers:
            headers[test_class] = header_source(file, tests, test_class)
        try:
            pairs.append(_pair(root, matcher, parsed, file, test, outcome, framework, headers[test_class], commit))
        except UnituneError as error:  # a test the prompt format cannot cut (never seen, but not fatal)
            unmatched.append(UnmatchedTest(language, relative, test.qualified_name, f"no training example: {error}"))
    return pairs, unmatched


def _test_class(test: TestFunction) -> str | None:
    """The (outermost) class a test is a method of: the class its prompt's header shows."""
    return test.qualified_name.split(".", 1)[0] if test.class_name else None


def _pair(root, matcher, parsed, file, test: TestFunction, match: Match, framework, existing, commit) -> Pair:
    focal_file = parsed.get(match.focal_path)
    function = match.function
    test_class = _test_class(test)
    test_code = test.source(file)
    prompt, completion = training_example(
        focal_file, function, test_code, framework=framework,
        module_import=_module_import(matcher, match.focal_path, focal_file),
        existing_test_source=existing, test_class=test_class, project_root=root,
    )
    return Pair(
        language=file.language,
        test_file=_relative(root, file.path),
        test_name=test.qualified_name,
        focal_file=_relative(root, match.focal_path),
        focal_name=function.name,
        focal_qualified_name=function.qualified_name,
        test_code=test_code,
        focal_code=function.source(focal_file),
        prompt=prompt,
        completion=completion,
        framework=framework,
        match=match.rule,
        test_class=test_class,
        repo_commit=commit,
        prompt_format=PROMPT_FORMAT_VERSION,
    )


def _module_import(matcher, focal_path: Path, focal_file: SourceFile) -> str:
    """What a test imports the focal code by, as `unitune.placement.locate_test_file` gives it at
    inference: the dotted module (Python) or the qualified class (Java)."""
    if focal_file.language == PYTHON:
        return matcher.modules.module_name(focal_path)
    package = java_package(focal_file)
    return f"{package}.{focal_path.stem}" if package else focal_path.stem


def _file_framework(file: SourceFile, tests: list[TestFunction]) -> str:
    """The framework a test file's prompts are built for: unittest when all its tests are unittest
    tests, else pytest; for Java the JUnit its imports name (JUnit 3 runs on JUnit 4; TestNG files are
    treated as JUnit 5, whose prompt shape they share), JUnit 5 by default."""
    if file.language == PYTHON:
        return UNITTEST if all(test.framework == UNITTEST for test in tests) else PYTEST
    found = java_import_framework(java_imports(file))
    if found in (JUNIT4, JUNIT5):
        return found
    if found is None and tests and all(test.framework in (JUNIT3, JUNIT4) for test in tests):
        return JUNIT4
    return JUNIT5
