"""Scoring generated tests against the developers' tests: valid syntax and CodeBLEU, as the study did.

A predictions file has one JSON object per line with `prompt` (what the model was given: context,
then the test file up to the opening of the test), `reference` (the developer's test after that
opening) and `prediction` (the model's completion of the same prompt); other keys (`id`, ...) are
carried along. This is the format of the replication package of Storhaug & Li, "Parameter-Efficient
Fine-Tuning of Large Language Models for Unit Test Generation", and scoring follows it:

- **CodeBLEU** is `codebleu.calc_codebleu` over the whole file at once (a corpus score, not a mean of
  per-row scores), with each row's `reference` as the only reference of its `prediction`, the
  language's keywords, weights 0.25 each and the sacrebleu 13a tokenizer (`Tokenizer13a()(s).split()`)
  for the two n-gram components. Only `reference` and `prediction` are compared, never the prompt.
  Two properties of the package carry over unchanged: when no reference yields a data-flow edge the
  data-flow component is 0 but enters the combined score as 1 (`dataflow or 1`), and the data-flow
  component moves slightly with Python's hash seed (`PYTHONHASHSEED`; about +-0.001 on the study's
  files), so the same file can score a hair differently in two processes.
- **Valid syntax** is checked on the *completed test*: the test part of the prompt (from its last
  top-level class, or for Python its last top-level `def`/`class`, on; the focal context before it
  is not the model's work and is often abbreviated code, e.g. constructor signatures without bodies)
  followed by the prediction, parsed with tree-sitter; valid means no ERROR or MISSING node. In Java
  the prediction must close the block the prompt left open (the test method); classes the prompt
  opened around it are closed for it when the prediction does not close them itself (the study's
  predictions do, unitune's completions end at the method's `}`).

The study's own valid-syntax figure is a different quantity: the share of *all* generated rows that
its repair step could turn into code its ANTLR Java parser accepts, with the repaired rows being what
its files hold. See docs/scoring.md for how the two compare on the study's files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from unitune.assured.validity import close_java_brackets
from unitune.errors import UnituneError
from unitune.languages import JAVA, LANGUAGES, PYTHON, parser_for
from unitune.syntax_walk import descendants

REQUIRED_KEYS = ("prompt", "reference", "prediction")
SCORE_KEYS = ("codebleu", "ngram_match", "weighted_ngram_match", "syntax_match", "dataflow_match")
CODEBLEU_VERSION = "0.7.0"
CODEBLEU_INSTALL = f"pip install --no-deps codebleu=={CODEBLEU_VERSION}"

# The start of a top-level type declaration (Java) or definition (Python): where the test part of a
# prompt begins. Annotations on the lines above are left out; they do not change what parses.
_JAVA_TOP_LEVEL_TYPE = re.compile(
    r"^(?:@[\w.]+(?:\([^\n]*\))?[ \t]+)*"
    r"(?:(?:public|protected|private|abstract|final|static|strictfp|sealed|non-sealed)[ \t]+)*"
    r"(?:class|interface|enum|record)[ \t]+\w",
    re.MULTILINE,
)
_PYTHON_TOP_LEVEL_DEFINITION = re.compile(r"^(?:async[ \t]+def|def|class)[ \t]+\w", re.MULTILINE)


_UNBALANCED = "unbalanced brackets, or a string or comment that never ends"


class ScoreInputError(UnituneError):
    """The predictions cannot be scored: missing or unreadable file, bad JSON, missing keys, bad language."""

    exit_code = 2


class ScoringDependencyError(UnituneError):
    """A package scoring needs is not installed."""

    exit_code = 2


@dataclass(frozen=True)
class ScoreReport:
    """Scores of a predictions file. `codebleu` and its components are corpus-level; `row_valid` and
    `row_problems` (why a row is not valid, None when it is) follow the rows' order."""

    language: str
    n: int
    valid: int
    codebleu: float
    ngram_match: float
    weighted_ngram_match: float
    syntax_match: float
    dataflow_match: float
    row_valid: tuple[bool, ...]
    row_problems: tuple[str | None, ...]

    @property
    def valid_syntax(self) -> float:
        """The share of rows whose completed test parses (0.0 for no rows)."""
        return self.valid / self.n if self.n else 0.0

    def to_json(self, rows: Sequence[Mapping] | None = None) -> dict:
        """The report as a JSON object; with `rows`, invalid rows are listed with their `id` when they have one."""
        invalid = []
        for index, (ok, problem) in enumerate(zip(self.row_valid, self.row_problems)):
            if ok:
                continue
            entry: dict = {"row": index + 1}
            if rows is not None and "id" in rows[index]:
                entry["id"] = rows[index]["id"]
            entry["problem"] = problem
            invalid.append(entry)
        return {
            "language": self.language,
            "rows": self.n,
            "valid": self.valid,
            "valid_syntax": self.valid_syntax,
            "codebleu": self.codebleu,
            "ngram_match": self.ngram_match,
            "weighted_ngram_match": self.weighted_ngram_match,
            "syntax_match": self.syntax_match,
            "dataflow_match": self.dataflow_match,
            "invalid": invalid,
        }


def score_predictions(rows: Sequence[Mapping], language: str) -> ScoreReport:
    """Valid syntax and CodeBLEU of `rows` (mappings with string `prompt`, `reference`, `prediction`).

    No rows score 0 throughout, as the study scored runs whose every generation was discarded."""
    language = check_language(language)
    for index, row in enumerate(rows):
        _check_row(row, f"row {index + 1}")
    problems = tuple(syntax_problem(row["prompt"], row["prediction"], language) for row in rows)
    if rows:
        scores = codebleu_scores([row["reference"] for row in rows], [row["prediction"] for row in rows], language)
    else:
        scores = dict.fromkeys(SCORE_KEYS, 0.0)
    row_valid = tuple(problem is None for problem in problems)
    return ScoreReport(
        language=language,
        n=len(rows),
        valid=sum(row_valid),
        row_valid=row_valid,
        row_problems=problems,
        **scores,
    )


def check_language(language: str) -> str:
    if language not in LANGUAGES:
        raise ScoreInputError(f"unsupported language {language!r}: use {' or '.join(LANGUAGES)}")
    return language


# -- valid syntax ------------------------------------------------------------------------------------

def completed_part(prompt: str, language: str) -> str:
    """The part of `prompt` the completed test starts with: from its last top-level Java type
    declaration (Python: top-level `def` or `class`) on, or the whole prompt when it has none."""
    pattern = _JAVA_TOP_LEVEL_TYPE if language == JAVA else _PYTHON_TOP_LEVEL_DEFINITION
    last = None
    for last in pattern.finditer(prompt):
        pass
    return prompt[last.start():] if last is not None else prompt


def completed_test(prompt: str, prediction: str, language: str) -> tuple[str | None, str | None]:
    """(the completed test to parse, None) or (None, why it cannot be completed).

    Java: the prediction has to close the innermost `{` the prompt left open (the test method's);
    braces the prompt opened around it are then closed at the end if the prediction leaves them open.
    A prediction that leaves a `(` or `[` open, closes more than was opened, or ends inside a string
    or comment cannot be completed."""
    head = completed_part(prompt, language)
    source = head + prediction
    if language == PYTHON:
        return source, None
    opened = close_java_brackets(head)
    closed = close_java_brackets(source)
    if closed is None:
        return None, _UNBALANCED
    text, closers = closed
    if set(closers) - {"}"}:
        return None, "a `(` or `[` is never closed"
    open_in_prompt = opened[1].count("}") if opened is not None else 0
    if closers and len(closers) >= open_in_prompt:
        return None, "the test method is never closed"
    return text, None


def syntax_problem(prompt: str, prediction: str, language: str) -> str | None:
    """Why the completed test of `prediction` does not parse, or None when it parses without an
    ERROR or MISSING node. Lines count from the first line of the prediction."""
    source, problem = completed_test(prompt, prediction, language)
    if source is None:
        if problem != _UNBALANCED:
            return problem
        # Mismatched brackets: tree-sitter usually says where (a `)` closed by `}`, ...).
        root = parser_for(language).parse((completed_part(prompt, language) + prediction).encode("utf-8")).root_node
        return (_describe(_first_error(root), prompt, language) if root.has_error else None) or problem
    root = parser_for(language).parse(source.encode("utf-8")).root_node
    if not root.has_error:
        return None
    return _describe(_first_error(root), prompt, language) or "syntax error: the completed test does not parse"


def _describe(node, prompt: str, language: str) -> str | None:
    """Where and what the error `node` is, counting lines from the prediction's first; None when
    tree-sitter puts it before the prediction."""
    line = node.start_point.row - completed_part(prompt, language).count("\n") + 1
    if line < 1:
        return None
    if node.is_missing:
        return f"line {line}: missing `{node.type}`"
    snippet = (node.text or b"").decode("utf-8", errors="replace").strip().split("\n")[0][:40]
    return f"line {line}: syntax error at `{snippet}`" if snippet else f"line {line}: syntax error"


def _first_error(root):
    def is_error(node) -> bool:
        return node.is_error or node.is_missing

    if is_error(root):
        return root
    inside = descendants(root, descend_into=lambda node: node.has_error and not is_error(node))
    found = [node for node in inside if is_error(node)]
    return min(found, key=lambda node: node.start_byte) if found else root


# -- CodeBLEU ----------------------------------------------------------------------------------------

def codebleu_scores(references: Sequence[str | Sequence[str]], predictions: Sequence[str],
                    language: str) -> dict[str, float]:
    """CodeBLEU of `predictions` against `references` as the study computed it:
    `calc_codebleu([[r] for r in references], predictions, language, tokenizer=13a split)`. A
    prediction's reference may be several (a function's tests by its developers), a list of strings."""
    calc_codebleu, tokenize = _codebleu()
    result = calc_codebleu([[reference] if isinstance(reference, str) else list(reference) for reference in references],
                           list(predictions), language, tokenizer=tokenize)
    return {
        "codebleu": float(result["codebleu"]),
        "ngram_match": float(result["ngram_match_score"]),
        "weighted_ngram_match": float(result["weighted_ngram_match_score"]),
        "syntax_match": float(result["syntax_match_score"]),
        "dataflow_match": float(result["dataflow_match_score"]),
    }


def _codebleu():
    try:
        from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    except ImportError:
        raise ScoringDependencyError("CodeBLEU needs the sacrebleu package: pip install sacrebleu") from None
    try:
        from codebleu import calc_codebleu
    except ImportError:
        raise ScoringDependencyError(
            f"CodeBLEU needs the codebleu package: {CODEBLEU_INSTALL} (with --no-deps: it asks for an "
            "older tree-sitter than unitune's, and works with unitune's)"
        ) from None
    tokenizer = Tokenizer13a()

    def tokenize(text: str) -> list[str]:
        return tokenizer(text).split()

    return calc_codebleu, tokenize


# -- reading a predictions file ------------------------------------------------------------------------

def read_predictions(path: str | Path) -> list[dict]:
    """The rows of a predictions file (JSON Lines; blank lines skipped), checked for the keys scoring needs."""
    path = Path(path)
    if not path.exists():
        raise ScoreInputError(f"{path}: no such file")
    if path.is_dir():
        raise ScoreInputError(f"{path}: is a directory, not a predictions file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ScoreInputError(f"{path}: not UTF-8 text") from None
    except OSError as error:
        raise ScoreInputError(f"{path}: cannot be read ({error.strerror or error})") from None
    return parse_predictions(text.splitlines(), str(path))


def parse_predictions(lines: Iterable[str], name: str = "predictions") -> list[dict]:
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ScoreInputError(f"{name}:{number}: not valid JSON ({error.msg})") from None
        _check_row(row, f"{name}:{number}")
        rows.append(row)
    return rows


def _check_row(row, where: str) -> None:
    if not isinstance(row, Mapping):
        raise ScoreInputError(f"{where}: expected a JSON object with {', '.join(REQUIRED_KEYS)}")
    missing = [key for key in REQUIRED_KEYS if key not in row]
    if missing:
        raise ScoreInputError(f"{where}: missing {', '.join(missing)} (each row needs {', '.join(REQUIRED_KEYS)})")
    for key in REQUIRED_KEYS:
        if not isinstance(row[key], str):
            raise ScoreInputError(f"{where}: {key} is not a string")
