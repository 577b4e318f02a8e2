"""The JSON-RPC protocol of unitune's server: pygls's, with the LSP lifecycle enforced and every
request answered.

- before `initialize`: a request gets -32002 (server not initialized); notifications but `exit`
  are dropped;
- a second `initialize` gets an error (invalid request);
- after `shutdown`: a request gets an error (invalid request), only `exit` is handled;
- a request whose parameters do not have the protocol's shape gets -32602 (invalid params) instead
  of silence (pygls would only log it);
- `shutdown` while a request to the editor is pending cancels it without failing.
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from pygls.exceptions import (
    JsonRpcException, JsonRpcInvalidParams, JsonRpcInvalidRequest, JsonRpcServerNotInitialized,
)
from pygls.protocol import LanguageServerProtocol
from pygls.protocol.language_server import lsp_method

from unitune.logs import get_logger, log_event

log = get_logger("server.protocol")


class _Answered:
    """A request already answered with an error while it was read: nothing more to do."""

    jsonrpc = "2.0"


class UnituneProtocol(LanguageServerProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initialize_seen = False

    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except JsonRpcException as error:
            if isinstance(data, dict) and "id" in data and isinstance(data.get("method"), str):
                reason = "its parameters do not have the shape the protocol gives them"
                answer = error if not isinstance(error, JsonRpcInvalidParams) else JsonRpcInvalidParams(
                    f"{data['method']}: {reason}")
                self._send_response(data["id"], None, answer.to_response_error())
                log_event(log, "request.refused", method=data["method"], reason=reason)
                return _Answered()
            raise

    def handle_message(self, message):
        if isinstance(message, _Answered):
            return
        method = getattr(message, "method", None)
        is_request = method is not None and hasattr(message, "id")
        if self._shutdown:
            if is_request:
                self._refuse(message, JsonRpcInvalidRequest(f"{method}: the server is shutting down; only `exit` is handled"))
                return
            if method != types.EXIT:
                return
        elif not self.initialize_seen:
            if is_request and method != types.INITIALIZE:
                self._refuse(message, JsonRpcServerNotInitialized(f"{method}: the server is not initialized yet"))
                return
            if not is_request and method not in (types.EXIT, None):
                return  # notifications before initialize are dropped, as the protocol asks
        elif is_request and method == types.INITIALIZE:
            self._refuse(message, JsonRpcInvalidRequest("initialize: the server is already initialized"))
            return
        if is_request and method == types.INITIALIZE:
            self.initialize_seen = True
        super().handle_message(message)

    @lsp_method(types.SHUTDOWN)
    def lsp_shutdown(self, *args: Any):
        """pygls's shutdown, over a copy of the pending requests: cancelling one (an edit the editor
        has not answered yet) removes it from the dict pygls iterates, which raised `RuntimeError`."""
        if (user_handler := self.fm.features.get(types.SHUTDOWN)) is not None:
            yield user_handler, args, None
        current = self.msg_id
        for msg_id, future in list(self._request_futures.items()):
            if msg_id != current and not future.done():
                future.cancel()
        self._shutdown = True
        return None

    def _refuse(self, message, error: JsonRpcException) -> None:
        log_event(log, "request.refused", method=message.method, reason=error.message)
        self._send_response(message.id, None, error.to_response_error())
