"""The language server's open documents: parsed once, re-parsed incrementally, and never parsed when a
document is too large to be a source file worth testing (a 30 MB didChange once blocked the server for
80 s, a 19 MB didOpen for 16 s, thirty 1 MB edits for 46 s)."""

from __future__ import annotations

from lsprotocol import types

from unitune.server.documents import MAX_DOCUMENT_BYTES, DocumentIndex

URI = "file:///project/mod.py"
SMALL = "def add(a, b):\n    return a + b\n"


def partial(line: int, character: int, text: str) -> types.TextDocumentContentChangePartial:
    position = types.Position(line=line, character=character)
    return types.TextDocumentContentChangePartial(range=types.Range(start=position, end=position), text=text)


def test_a_document_over_the_cap_is_not_parsed_nor_kept():
    documents = DocumentIndex()
    assert documents.open(URI, None, "python", "x = 1\n" * (MAX_DOCUMENT_BYTES // 6 + 1), 1) is None
    assert URI not in documents and documents.full_parses == 0


def test_a_full_text_change_over_the_cap_drops_the_document_without_parsing_it():
    documents = DocumentIndex()
    documents.open(URI, None, "python", SMALL, 1)
    documents.change(URI, 2, [types.TextDocumentContentChangeWholeDocument(text="#" * (MAX_DOCUMENT_BYTES + 1))],
                     "utf-16")
    assert URI not in documents and documents.full_parses == 1  # the first open only


def test_edits_that_grow_a_document_past_the_cap_drop_it_and_smaller_ones_are_applied():
    documents = DocumentIndex()
    documents.open(URI, None, "python", SMALL, 1)
    documents.change(URI, 2, [partial(2, 0, "def sub(a, b):\n    return a - b\n")], "utf-16")
    assert [line for line in documents.get(URI).file.text.splitlines() if line.startswith("def")] == \
        ["def add(a, b):", "def sub(a, b):"]
    chunk = "# " + "x" * (1024 * 1024) + "\n"
    for version in range(3, 3 + MAX_DOCUMENT_BYTES // len(chunk) + 2):
        documents.change(URI, version, [partial(0, 0, chunk)], "utf-16")
    assert URI not in documents
