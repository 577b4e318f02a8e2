"""The languages unitune understands and their tree-sitter parsers.

Grammars come from the `tree-sitter-python` and `tree-sitter-java` wheels; a parser per language is
built once per process and reused, since building one costs more than parsing a small file.
"""

from __future__ import annotations

import functools
from pathlib import Path

from tree_sitter import Language, Parser

from unitune.errors import UnsupportedLanguageError

PYTHON = "python"
JAVA = "java"

#: File extensions of each language (lower case, with the dot).
EXTENSIONS: dict[str, tuple[str, ...]] = {
    PYTHON: (".py", ".pyi"),
    JAVA: (".java",),
}

LANGUAGES: tuple[str, ...] = tuple(EXTENSIONS)

#: LSP language identifiers that map to ours.
LSP_LANGUAGE_IDS: dict[str, str] = {"python": PYTHON, "java": JAVA}


def language_for_path(path: str | Path) -> str:
    """The language of a file, from its extension; raises `UnsupportedLanguageError` otherwise."""
    suffix = Path(path).suffix.lower()
    for language, extensions in EXTENSIONS.items():
        if suffix in extensions:
            return language
    supported = ", ".join(ext for exts in EXTENSIONS.values() for ext in exts)
    raise UnsupportedLanguageError(
        f"{path}: unsupported file type {suffix or '(no extension)'!r}; unitune reads {supported}"
    )


@functools.cache
def tree_sitter_language(language: str) -> Language:
    """The tree-sitter `Language` object of one of `LANGUAGES`."""
    if language == PYTHON:
        import tree_sitter_python as grammar
    elif language == JAVA:
        import tree_sitter_java as grammar
    else:
        raise UnsupportedLanguageError(f"unsupported language {language!r}; unitune reads {', '.join(LANGUAGES)}")
    return Language(grammar.language())


@functools.cache
def parser_for(language: str) -> Parser:
    """A parser for `language`, shared within the process (parsing is not re-entrant across threads,
    so callers that parse from several threads use `new_parser`)."""
    return new_parser(language)


def new_parser(language: str) -> Parser:
    """A fresh parser for `language`."""
    return Parser(tree_sitter_language(language))
