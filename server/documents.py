"""Parsed documents, kept between requests and re-parsed incrementally as the editor sends edits.

The text mirrors the client's (the same as pygls's workspace copy); the tree-sitter tree is updated
with `tree.edit` + an incremental parse for each change, so a code action on a big file costs a
lookup, not a parse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lsprotocol import types

from unitune.errors import UnsupportedLanguageError
from unitune.languages import LSP_LANGUAGE_IDS, language_for_path
from unitune.logs import get_logger, log_event
from unitune.source import UTF8, UTF16, UTF32, SourceFile

log = get_logger("server.documents")
#: Largest document the server parses and keeps. Parsing takes about a second per megabyte on the event
#: loop, and source files worth testing are far smaller: a bigger one (generated code, a data dump) is not
#: tracked, and gets no code action, instead of making the server deaf for as long as it parses.
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024

#: LSP position encodings -> the column units of `unitune.source`.
ENCODING_UNITS = {
    types.PositionEncodingKind.Utf16: UTF16,
    types.PositionEncodingKind.Utf8: UTF8,
    types.PositionEncodingKind.Utf32: UTF32,
    "utf-16": UTF16,
    "utf-8": UTF8,
    "utf-32": UTF32,
}


@dataclass
class OpenDocument:
    uri: str
    path: Path | None
    version: int | None
    file: SourceFile


class DocumentIndex:
    """The open documents unitune understands (Python and Java), by URI."""

    def __init__(self) -> None:
        self._documents: dict[str, OpenDocument] = {}
        self.full_parses = 0
        self.incremental_parses = 0

    def __contains__(self, uri: str) -> bool:
        return uri in self._documents

    def get(self, uri: str) -> OpenDocument | None:
        return self._documents.get(uri)

    def open(self, uri: str, path: Path | None, language_id: str | None, text: str, version: int | None) -> OpenDocument | None:
        language = LSP_LANGUAGE_IDS.get(language_id or "")
        if language is None and path is not None:
            try:
                language = language_for_path(path)
            except UnsupportedLanguageError:
                language = None
        if language is None:
            return None
        if len(text) > MAX_DOCUMENT_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
            self._drop(uri, len(text))
            return None
        document = OpenDocument(uri, path, version, SourceFile(text, language, path))
        self.full_parses += 1
        self._documents[uri] = document
        return document

    def change(self, uri: str, version: int | None, changes, encoding: str) -> None:
        document = self._documents.get(uri)
        if document is None:
            return
        unit = ENCODING_UNITS.get(encoding, UTF16)
        file = document.file
        for change in changes:
            if len(change.text) > MAX_DOCUMENT_BYTES:  # checked before any parse: parsing it is the stall
                self._drop(uri, len(change.text))
                return
            if isinstance(change, types.TextDocumentContentChangePartial):
                start, end = change.range.start, change.range.end
                file = file.edited((start.line, start.character), (end.line, end.character), change.text, unit)
                self.incremental_parses += 1
            else:
                file = SourceFile(change.text, file.language, file.path)
                self.full_parses += 1
            if len(file.data) > MAX_DOCUMENT_BYTES:  # grown past the cap edit by edit
                self._drop(uri, len(file.data))
                return
        document.file, document.version = file, version

    def close(self, uri: str) -> None:
        self._documents.pop(uri, None)

    def _drop(self, uri: str, size: int) -> None:
        self._documents.pop(uri, None)
        log_event(log, "document.too_large", uri=uri, size=size, limit=MAX_DOCUMENT_BYTES)
