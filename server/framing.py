"""Reading LSP messages from a byte stream, robustly: the base protocol's headers
(`Content-Length: N`, `\r\n` or bare `\n` line ends), a cap on a message's size, and recovery from
bad framing instead of going deaf.

- a header block without a valid `Content-Length` (missing, `abc`, `-5`, over `MAX_MESSAGE_BYTES`)
  is logged and skipped: the reader looks for the next `Content-Length:` line and goes on from there;
- a body that is not JSON (a wrong length cut it, or moved into the next message) is answered with
  a parse error (-32700, id null), as JSON-RPC asks, and reading goes on at the next header;
- a header of the next message inside a body (its `Content-Length` promised more than came, or a
  second header gave another length) ends that body where the header starts: what came before it is
  the body, and reading goes on at the header; a raw `Content-Length:` line cannot be part of a JSON
  body, so a body cut short, or one that never comes, no longer swallows the requests after it;
- the end of the stream ends the loop (the server then exits, and the editor may restart it).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable

from unitune.logs import get_logger, log_event

log = get_logger("server.framing")

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_HEADER_LINE = 8192
# Searched, not matched at the line's start: after a body whose length was wrong, the next header
# follows the body's last bytes on the same line (bodies do not end with a newline).
_LENGTH = re.compile(rb"content-length[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)


#: The start of a message's header block: what a body cannot hold raw (JSON escapes its line ends).
_NEXT_HEADER = re.compile(rb"content-length[ \t]*:[ \t]*\d+[ \t]*\r?\n", re.IGNORECASE)


class MessageReader:
    """Pulls message bodies out of a `read_some()` coroutine: the bytes the stream has now (at least
    one; none at its end), as pygls's stdin reader gives them through `read1`."""

    def __init__(self, read_some: Callable[[], Awaitable[bytes]]):
        self.read_some = read_some
        self.buffer = bytearray()
        self.ended = False

    async def next_body(self) -> bytes | None:
        """The next message's body, or None at the end of the stream."""
        while True:
            length, ended = await self._headers()
            if ended:
                return None
            if length is None:
                continue  # a bad header block: already logged; look for the next one
            body = await self._body(length)
            if body is None:  # the stream ended inside a body
                return None
            if body:
                return body

    async def _fill(self) -> bool:
        if self.ended:
            return False
        chunk = await self.read_some()
        if not chunk:
            self.ended = True
            return False
        self.buffer += chunk
        return True

    async def readline(self) -> bytes:
        """A line with its end, at most `MAX_HEADER_LINE` bytes of it; b"" at the end of the stream."""
        while True:
            end = self.buffer.find(b"\n", 0, MAX_HEADER_LINE)
            if end != -1 or len(self.buffer) >= MAX_HEADER_LINE:
                end = end + 1 if end != -1 else MAX_HEADER_LINE
                line = bytes(self.buffer[:end])
                del self.buffer[:end]
                return line
            if not await self._fill():
                line = bytes(self.buffer)
                self.buffer.clear()
                return line

    async def _body(self, length: int) -> bytes | None:
        """`length` bytes, or fewer when the next message's header turns up inside them (see the module)."""
        searched = 0
        while True:
            cut = _NEXT_HEADER.search(self.buffer, max(0, searched - 64), min(len(self.buffer), length))
            if cut is not None:
                body = bytes(self.buffer[:cut.start()])
                del self.buffer[:cut.start()]
                log_event(log, "framing.body_cut_short", promised=length, received=len(body))
                return body
            if len(self.buffer) >= length:
                body = bytes(self.buffer[:length])
                del self.buffer[:length]
                return body
            searched = len(self.buffer)
            if not await self._fill():
                return None

    async def _headers(self) -> tuple[int | None, bool]:
        """(Content-Length of the next header block or None when it is bad, end of stream)."""
        length: int | None = None
        seen_length = False
        lines = 0
        while True:
            line = await self.readline()
            if not line:
                return None, True
            lines += 1
            stripped = line.strip()
            if not stripped:
                if seen_length:
                    return length, False
                continue  # blank lines between messages
            match = _LENGTH.search(stripped[:MAX_HEADER_LINE])
            if match:
                seen_length = True
                value = match.group(1).strip()
                length = int(value) if value.isdigit() else None
                if length is None or length <= 0 or length > MAX_MESSAGE_BYTES:
                    log_event(log, "framing.bad_length", value=value[:40].decode("latin-1"))
                    length = None
            elif not seen_length and not stripped.lower().startswith(b"content-type"):
                # Not a header: the rest of a body whose length was wrong. Skip to the next header.
                if lines == 1:
                    log_event(log, "framing.skipped", text=stripped[:80].decode("latin-1"))


#: JSON-RPC's "invalid request": a message that is JSON but not a request or notification the server takes.
INVALID_REQUEST = -32600
_ID = re.compile(rb'"id"\s*:\s*(-?\d{1,15}|"(?:[^"\\]|\\.){0,200}")')


def error_response(request_id, message: str, code: int = INVALID_REQUEST) -> bytes:
    """A framed JSON-RPC error answer to the request `request_id` (None when it could not be read)."""
    body = json.dumps({"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def _id_in(body: bytes):
    """The id of a request too deep to parse, read off its text, so that its answer can name it."""
    match = _ID.search(body[:4096])
    if match is None:
        return None
    try:
        return json.loads(match.group(1))
    except ValueError:
        return None


def refused(raw) -> list[bytes]:
    """The error answers for JSON that is not one LSP message (so every request gets an answer): a
    batch (JSON-RPC allows one; the LSP does not), a version other than 2.0, a method that is not a
    string, something that is not an object. Empty when `raw` is a message to handle."""
    if isinstance(raw, list):
        log_event(log, "framing.batch", size=len(raw))
        return [error_response(item["id"], "batches are not part of the language server protocol; send each "
                               "request on its own") for item in raw if isinstance(item, dict) and "id" in item] or \
            [error_response(None, "batches are not part of the language server protocol")]
    if not isinstance(raw, dict):
        return [error_response(None, "a message is a JSON object")]
    request_id = raw.get("id")
    if raw.get("jsonrpc") != "2.0":
        return [error_response(request_id, f"jsonrpc {raw.get('jsonrpc')!r}: the server speaks JSON-RPC 2.0")]
    if "method" in raw and not isinstance(raw["method"], str):
        return [error_response(request_id, f"method {raw['method']!r} is not a string")]
    return []


def parse_error_response() -> bytes:
    """The JSON-RPC answer to a body that is not JSON (-32700, id null), framed."""
    body = json.dumps({"jsonrpc": "2.0", "id": None,
                       "error": {"code": -32700, "message": "parse error: the message body is not JSON "
                                 "(is its Content-Length right?)"}}).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


async def serve_messages(stop_event, stdin, executor, protocol, writer) -> None:
    """The server's reading loop over `stdin`, with `MessageReader`'s framing rules."""
    import asyncio

    loop = asyncio.get_running_loop()
    read_some = getattr(stdin, "read1", stdin.read)
    reader = MessageReader(lambda: loop.run_in_executor(executor, read_some, 1 << 16))
    while not stop_event.is_set():
        body = await reader.next_body()
        if body is None:
            break
        try:
            raw = json.loads(body)
        except ValueError:  # JSONDecodeError, and a body that is not UTF-8
            log_event(log, "framing.not_json", size=len(body))
            writer.write(parse_error_response())
            continue
        except RecursionError:
            log_event(log, "framing.too_deep", size=len(body))
            writer.write(error_response(_id_in(body), "the message is nested too deeply to be read"))
            continue
        refusals = refused(raw)
        if refusals:
            for answer in refusals:
                writer.write(answer)
            continue
        try:
            message = json.loads(body, object_hook=protocol.structure_message)
        except Exception:
            log.exception("a message could not be read")
            if isinstance(raw, dict) and "id" in raw:
                writer.write(error_response(raw["id"], "the message could not be read"))
            continue
        try:
            protocol.handle_message(message)
        except Exception:
            log.exception("a message could not be handled")
