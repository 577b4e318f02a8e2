"""Turning an insertion plan (`unitune.insertion`) into a workspace edit the client accepts.

Clients that announce `documentChanges` and the `create` resource operation get a `CreateFile` plus a
`TextDocumentEdit`; others (Neovim 0.7 announces resource operations but not `documentChanges`, and
rejects a `CreateFile`) get plain `changes`, with the test folder created on disk first so the user
can save the new file. Edits only insert: existing text is never replaced.
"""

from __future__ import annotations

from lsprotocol import types

from unitune.insertion import Insertion
from unitune.source import UTF8, UTF16, UTF32


def _column(text_line: str, code_points: int, unit: str) -> int:
    prefix = text_line[:code_points]
    if unit == UTF32:
        return len(prefix)
    if unit == UTF8:
        return len(prefix.encode("utf-8"))
    return sum(2 if ord(char) > 0xFFFF else 1 for char in prefix)


def supports_document_changes(capabilities: types.ClientCapabilities) -> bool:
    edit = capabilities.workspace.workspace_edit if capabilities.workspace else None
    if edit is None or not edit.document_changes:
        return False
    operations = edit.resource_operations or []
    return types.ResourceOperationKind.Create in operations or "create" in operations


def workspace_edit(insertion: Insertion, uri: str, capabilities: types.ClientCapabilities, unit: str = UTF16,
                   version: int | None = None) -> types.WorkspaceEdit:
    """The edit that applies `insertion` to the document at `uri` (`version` when it is open)."""
    lines = insertion.original_text.split("\n")
    text_edits = []
    for edit in insertion.edits:
        line_text = lines[edit.line] if edit.line < len(lines) else ""
        position = types.Position(line=edit.line, character=_column(line_text, edit.character, unit))
        text_edits.append(types.TextEdit(range=types.Range(start=position, end=position), new_text=edit.text))
    if supports_document_changes(capabilities):
        changes: list = []
        if insertion.creates_file:
            changes.append(types.CreateFile(uri=uri, options=types.CreateFileOptions(overwrite=False, ignore_if_exists=True)))
        identifier = types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version)
        changes.append(types.TextDocumentEdit(text_document=identifier, edits=text_edits))
        return types.WorkspaceEdit(document_changes=changes)
    if insertion.creates_file:
        insertion.path.parent.mkdir(parents=True, exist_ok=True)
    return types.WorkspaceEdit(changes={uri: text_edits})


def new_test_range(insertion: Insertion, name: str | None = None) -> types.Range:
    """Where the first (or the named) new test starts in the edited file."""
    line = insertion.test_lines[0][1] if insertion.test_lines else insertion.line
    for test_name, test_line in insertion.test_lines:
        if test_name == name:
            line = test_line
    start = types.Position(line=line, character=0)
    return types.Range(start=start, end=start)
