"""HTTP to an inference server's JSON API (vLLM, llama.cpp's server): a timeout per request, retries
with exponential backoff, and cancellation. Standard library only (`http.client`).

- Each exchange runs on a thread of its own while the caller waits in short polls, so a cancel (the
  `threading.Event` the editor's cancel sets) is answered within `POLL_SECONDS`: the socket is shut
  down, which also shows the server that its client is gone (so it can drop the request), and
  `GenerationCancelled` is raised.
- Connection errors (refused, reset, closed before an answer) and 5xx or 429 answers are tried again
  after `backoff`, twice that, four times that...; a `Retry-After` is honoured up to
  `MAX_RETRY_AFTER_SECONDS`. A 4xx is not retried (`InferenceRequestRefused`), nor is a request that
  ran out of time: a generation that timed out would only time out again, at the server's expense.
- When every attempt failed, `InferenceServerError` says which URL failed and what to check.

Every attempt is logged (`remote.request`) with the caller's request id.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from unitune.adapters.errors import InferenceRequestRefused, InferenceServerError
from unitune.errors import GenerationCancelled
from unitune.logs import get_logger, log_event, new_request_id

log = get_logger("remote")

#: How often a waiting request looks at its cancel event.
POLL_SECONDS = 0.05
DEFAULT_ATTEMPTS = 4
DEFAULT_BACKOFF_SECONDS = 0.5
CONNECT_TIMEOUT_SECONDS = 10.0
MAX_RETRY_AFTER_SECONDS = 30.0
#: Seconds for the small calls (listing models, loading an adapter), when the caller gives none.
SHORT_TIMEOUT_SECONDS = 60.0


@dataclass
class Answer:
    """A server's answer: its status and its body, parsed when it is JSON (else the text)."""

    status: int
    body: Any
    seconds: float


class _Exchange:
    """One HTTP request and its response, on a thread of its own, which the caller may abandon."""

    def __init__(self, connection: http.client.HTTPConnection, method: str, path: str, payload: bytes | None,
                 read_timeout: float):
        self.connection = connection
        self.finished = threading.Event()
        self.response: tuple[int, str | None, bytes] | None = None
        self.error: BaseException | None = None
        headers = {"Accept": "application/json"}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        self.thread = threading.Thread(target=self._run, args=(method, path, payload, headers, read_timeout),
                                       daemon=True, name="unitune-http")
        self.thread.start()

    def _run(self, method: str, path: str, payload: bytes | None, headers: dict[str, str], read_timeout: float) -> None:
        try:
            try:
                self.connection.connect()
            except TimeoutError:  # an unreachable host, not a slow answer: worth another attempt
                raise ConnectionError(f"no connection within {self.connection.timeout:.0f} s") from None
            self.connection.sock.settimeout(read_timeout)
            self.connection.request(method, path, body=payload, headers=headers)
            response = self.connection.getresponse()
            self.response = (response.status, response.getheader("Retry-After"), response.read())
        except BaseException as error:  # noqa: BLE001 - handed to the waiting caller
            self.error = error
        finally:
            self.finished.set()

    def abort(self) -> None:
        """Shut the socket down: a read blocked on it returns at once, and the server sees its client go."""
        sock = self.connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.connection.close()


class ServerClient:
    """Requests to one server (`base_url`, e.g. `http://gpu-box:8000`; a path prefix is kept)."""

    def __init__(self, base_url: str, attempts: int | None = None, backoff: float | None = None):
        parts = urlsplit(base_url)
        self.base_url = base_url.rstrip("/")
        self.https = parts.scheme == "https"
        self.host = parts.hostname or "localhost"
        self.port = parts.port
        self.prefix = parts.path.rstrip("/")
        self.attempts = max(1, attempts if attempts is not None else DEFAULT_ATTEMPTS)
        self.backoff = backoff if backoff is not None else DEFAULT_BACKOFF_SECONDS

    def get(self, path: str, *, timeout: float = SHORT_TIMEOUT_SECONDS, cancel: threading.Event | None = None,
            request_id: str | None = None) -> Answer:
        return self.request("GET", path, None, timeout=timeout, cancel=cancel, request_id=request_id)

    def post(self, path: str, body: dict, *, timeout: float = SHORT_TIMEOUT_SECONDS,
             cancel: threading.Event | None = None, request_id: str | None = None) -> Answer:
        return self.request("POST", path, body, timeout=timeout, cancel=cancel, request_id=request_id)

    def request(self, method: str, path: str, body: dict | None, *, timeout: float,
                cancel: threading.Event | None = None, request_id: str | None = None) -> Answer:
        """The server's answer to `method path` with `body` (JSON), trying again as the module says.

        Raises `InferenceRequestRefused` for a 4xx, `InferenceServerError` when the server cannot be
        reached, keeps failing or takes longer than `timeout` seconds, `GenerationCancelled` when
        `cancel` is set before the answer."""
        request_id = request_id or new_request_id("http")
        payload = json.dumps(body).encode("utf-8") if body is not None else None
        started = time.perf_counter()
        failure = ""
        for attempt in range(1, self.attempts + 1):
            _stop_if_cancelled(cancel)
            mark = time.perf_counter()
            try:
                status, retry_after, raw = self._exchange(method, path, payload, timeout, cancel)
            except TimeoutError:
                log_event(log, "remote.request", logging.WARNING, request_id=request_id, method=method,
                          url=self.base_url + path, attempt=attempt, error="timeout", seconds=time.perf_counter() - mark)
                raise InferenceServerError(
                    f"the inference server at {self.base_url} did not answer {method} {path} within {timeout:.0f} s; "
                    "check its load and its log, or raise time_budget") from None
            except (OSError, http.client.HTTPException) as error:
                failure = _describe(error)
                log_event(log, "remote.request", logging.WARNING, request_id=request_id, method=method,
                          url=self.base_url + path, attempt=attempt, error=failure, seconds=time.perf_counter() - mark)
                delay = self.backoff * 2 ** (attempt - 1)
            else:
                seconds = time.perf_counter() - mark
                log_event(log, "remote.request", request_id=request_id, method=method, url=self.base_url + path,
                          attempt=attempt, status=status, seconds=seconds)
                answer = Answer(status, _parse(raw), seconds)
                if status < 400:
                    return answer
                detail = error_message(answer.body)
                message = f"HTTP {status}: {detail}"
                if status != 429 and status < 500:
                    raise InferenceRequestRefused(
                        f"the inference server at {self.base_url} refused {method} {path} ({message})", status, detail)
                failure = message
                delay = self.backoff * 2 ** (attempt - 1)
                if retry_after is not None and retry_after.strip().isdigit():
                    delay = min(float(retry_after.strip()), MAX_RETRY_AFTER_SECONDS)
            if attempt < self.attempts:
                log_event(log, "remote.retry", request_id=request_id, attempt=attempt, delay=delay, reason=failure)
                _pause(delay, cancel)
        seconds = time.perf_counter() - started
        if failure.startswith("HTTP "):
            raise InferenceServerError(
                f"the inference server at {self.base_url} failed {method} {path} {self.attempts} times ({failure}); "
                "see the server's log")
        raise InferenceServerError(
            f"cannot reach the inference server at {self.base_url} ({failure}; {self.attempts} attempts in "
            f"{seconds:.1f} s): check that it is running and listening there (`curl {self.base_url}/v1/models`), "
            "or unset server_url to generate on this machine")

    def _exchange(self, method: str, path: str, payload: bytes | None, timeout: float,
                  cancel: threading.Event | None) -> tuple[int, str | None, bytes]:
        """One attempt, abandoned (and its connection shut) on cancel or after `timeout` seconds."""
        connection_type = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        # The socket's timeouts bound connecting and each read; the deadline below bounds the whole.
        connection = connection_type(self.host, self.port, timeout=min(timeout, CONNECT_TIMEOUT_SECONDS))
        exchange = _Exchange(connection, method, self.prefix + path, payload, timeout)
        deadline = time.monotonic() + timeout
        try:
            while not exchange.finished.wait(POLL_SECONDS):
                if cancel is not None and cancel.is_set():
                    exchange.abort()
                    raise GenerationCancelled("generation cancelled; nothing was changed")
                if time.monotonic() > deadline:
                    exchange.abort()
                    raise TimeoutError(f"no answer within {timeout} s")
        finally:
            connection.close()
        if exchange.error is not None:
            raise exchange.error
        return exchange.response  # type: ignore[return-value]


def error_message(body: Any) -> str:
    """The message in an error body: OpenAI's and llama.cpp's `{"error": {"message"}}`, vLLM's older
    `{"message"}`, FastAPI's `{"detail"}`, or the text itself (shortened)."""
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        for key in ("message", "detail", "error"):
            if body.get(key):
                return str(body[key])
    text = body if isinstance(body, str) else json.dumps(body)
    return " ".join(text.split())[:300] or "no message"


def _parse(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _describe(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return "unknown host"
    if isinstance(error, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _stop_if_cancelled(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise GenerationCancelled("generation cancelled; nothing was changed")


def _pause(seconds: float, cancel: threading.Event | None) -> None:
    """Wait before the next attempt; a cancel ends the wait (and the request) at once."""
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise GenerationCancelled("generation cancelled; nothing was changed")
