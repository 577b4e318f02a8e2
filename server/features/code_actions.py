"""The code action "Generate unit tests for `NAME`" on a function; no model work here."""

from __future__ import annotations

from lsprotocol import types

from unitune.server.documents import ENCODING_UNITS
from unitune.server.server import UnituneServer
from unitune.errors import UnituneError
from unitune.focal import focal_at

GENERATE_COMMAND = "unitune.generateTests"
# A refactor kind: editors offer it where the cursor is (VS Code's lightbulb and Quick Fix menu, Ctrl+.),
# as well as under "Refactor..."; a `source` kind would hide it in the whole-file "Source Action..." menu.
ACTION_KIND = types.CodeActionKind.Refactor + ".unitune.generateTests"


def code_actions(ls: UnituneServer, params: types.CodeActionParams) -> list[types.CodeAction] | None:
    only = params.context.only
    if only and not any(ACTION_KIND == kind or ACTION_KIND.startswith(f"{kind}.") for kind in only):
        return None  # the client asked for other kinds (e.g. organize imports on save)
    document = ls.documents.get(params.text_document.uri)
    if document is None:
        return None
    unit = ENCODING_UNITS.get(ls.position_encoding)
    position = params.range.start
    try:
        function = focal_at(document.file, document.file.offset(position.line, position.character, unit))
    except UnituneError:  # a position past the end of a stale document
        return None
    if function is None:
        return None
    title = f"Generate unit tests for `{function.qualified_name}`"
    command = types.Command(title=title, command=GENERATE_COMMAND,
                            arguments=[params.text_document.uri, {"line": position.line, "character": position.character}])
    return [types.CodeAction(title=title, kind=ACTION_KIND, command=command)]


def register(ls: UnituneServer) -> None:
    ls.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.Refactor, ACTION_KIND], resolve_provider=False),
    )(code_actions)
