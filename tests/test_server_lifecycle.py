"""The language server's lifecycle over raw stdio, as a strict client sees it: every request gets
an answer, in the order the protocol allows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

CODE_ACTION = {"textDocument": {"uri": "file:///x.py"},
               "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}},
               "context": {"diagnostics": []}}
INITIALIZE = {"processId": None, "rootUri": None, "capabilities": {}}


def frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def responses(data: bytes) -> dict:
    found = {}
    while data:
        head, separator, rest = data.partition(b"\r\n\r\n")
        if not separator:
            break
        length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")).split(b":")[1])
        message = json.loads(rest[:length])
        data = rest[length:]
        if "id" in message and "method" not in message:
            found[message["id"]] = message
    return found


@pytest.mark.slow
def test_requests_out_of_the_lifecycle_and_malformed_ones_get_errors(tmp_path):
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "textDocument/codeAction", "params": CODE_ACTION},
        {"jsonrpc": "2.0", "id": 2, "method": "initialize", "params": INITIALIZE},
        {"jsonrpc": "2.0", "method": "initialized", "params": {}},
        {"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": INITIALIZE},
        {"jsonrpc": "2.0", "id": 4, "method": "textDocument/codeAction", "params": {"textDocument": {"uri": 5}}},
        {"jsonrpc": "2.0", "id": 5, "method": "shutdown"},
        {"jsonrpc": "2.0", "id": 6, "method": "textDocument/codeAction", "params": CODE_ACTION},
        {"jsonrpc": "2.0", "method": "exit"},
    ]
    env = dict(os.environ, UNITUNE_HOME=str(tmp_path / "home"), UNITUNE_CONFIG=str(tmp_path / "config.toml"))
    server = subprocess.Popen([sys.executable, "-m", "unitune.server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
    for message in messages:
        server.stdin.write(frame(message))
        server.stdin.flush()
        time.sleep(1.0 if message.get("method") == "initialize" else 0.3)
    out, _ = server.communicate(timeout=60)
    answers = responses(out)
    assert answers[1]["error"]["code"] == -32002  # not initialized yet
    assert "result" in answers[2]
    assert answers[3]["error"]["code"] == -32600 and "already initialized" in answers[3]["error"]["message"]
    assert answers[4]["error"]["code"] == -32602  # invalid params: an answer, not silence
    assert "result" in answers[5]
    assert answers[6]["error"]["code"] == -32600 and "shutting down" in answers[6]["error"]["message"]
    assert server.returncode == 0  # exit after shutdown


def raw(body: dict | str, length=None, eol=b"\r\n") -> bytes:
    data = (json.dumps(body) if isinstance(body, dict) else body).encode()
    return b"Content-Length: " + str(len(data) if length is None else length).encode() + eol + eol + data


def serve_stream(tmp_path, stream: list[bytes]) -> tuple[dict, int]:
    """The server fed `stream` chunk by chunk (a pause after each, a longer one after initialize): its
    answers by request id, and its exit code."""
    env = dict(os.environ, UNITUNE_HOME=str(tmp_path / "home"), UNITUNE_CONFIG=str(tmp_path / "config.toml"))
    server = subprocess.Popen([sys.executable, "-m", "unitune.server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
    for chunk in stream:
        server.stdin.write(chunk)
        server.stdin.flush()
        time.sleep(1.0 if b'"initialize"' in chunk else 0.3)
    out, _ = server.communicate(timeout=60)
    return responses(out), server.returncode


@pytest.mark.slow
def test_bad_framing_is_survived_and_the_next_messages_answered(tmp_path):
    """A strict reading of the base protocol would leave the server deaf after any of these."""
    request = lambda n: {"jsonrpc": "2.0", "id": n, "method": "textDocument/codeAction", "params": CODE_ACTION}
    stream = [
        raw({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE}),
        raw({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
        raw(request(90), length="abc"),
        raw(request(91), length="-5"),
        raw(request(2), eol=b"\n"),  # LF-only headers: tolerated
        raw(request(92), length=2**31),  # 2 GiB: refused, never read
        raw(request(3)),
        raw(request(93), length=20),  # too short: the body is not JSON -> parse error
        raw(request(4)),
        raw({"jsonrpc": "2.0", "id": 5, "method": "shutdown"}),
        raw({"jsonrpc": "2.0", "method": "exit"}),
    ]
    env = dict(os.environ, UNITUNE_HOME=str(tmp_path / "home"), UNITUNE_CONFIG=str(tmp_path / "config.toml"))
    server = subprocess.Popen([sys.executable, "-m", "unitune.server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
    for chunk in stream:
        server.stdin.write(chunk)
        server.stdin.flush()
        time.sleep(0.3)
    out, _ = server.communicate(timeout=60)
    answers = responses(out)
    assert "result" in answers[1]
    for answered in (2, 3, 4):  # after each kind of bad framing, the next request is answered
        assert "result" in answers[answered], (answered, answers)
    assert "result" in answers[5] and server.returncode == 0
    assert answers[None]["error"]["code"] == -32700  # the cut body: a parse error, id null
    assert not {90, 91, 92} & set(answers)  # refused framings: nothing to answer to


def test_the_stdio_flag_language_clients_add_is_accepted(tmp_path):
    """vscode-languageclient's stdio transport starts the server with `--stdio`."""
    env = dict(os.environ, UNITUNE_HOME=str(tmp_path / "home"), UNITUNE_CONFIG=str(tmp_path / "config.toml"))
    server = subprocess.Popen([sys.executable, "-m", "unitune.server", "--stdio"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    for message in ({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE},
                    {"jsonrpc": "2.0", "id": 2, "method": "shutdown"}, {"jsonrpc": "2.0", "method": "exit"}):
        server.stdin.write(frame(message))
        server.stdin.flush()
        time.sleep(1.0 if message.get("method") == "initialize" else 0.3)
    out, err = server.communicate(timeout=60)
    assert server.returncode == 0, err.decode()
    assert "result" in responses(out)[1]


@pytest.mark.slow
def test_every_request_is_answered_however_odd_and_exit_without_shutdown_is_1(tmp_path):
    """JSON that is not one LSP message once got no answer at all (the client waited for ever): a request
    nested 5,000 deep, a JSON-RPC batch, JSON-RPC 1.0, a numeric method (that one got a traceback)."""
    status = {"command": "unitune.status", "arguments": []}
    stream = [
        raw({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE}),
        raw({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
        raw('{"jsonrpc": "2.0", "id": 2, "method": "workspace/executeCommand", "params": ' + "[" * 5000 + "]" * 5000 + "}"),
        raw(json.dumps([{"jsonrpc": "2.0", "id": 3, "method": "workspace/executeCommand", "params": status}])),
        raw({"jsonrpc": "1.0", "id": 4, "method": "workspace/executeCommand", "params": status}),
        raw({"jsonrpc": "2.0", "id": 5, "method": 42, "params": {}}),
        raw({"jsonrpc": "2.0", "id": 6, "method": "workspace/executeCommand", "params": status}),
        raw({"jsonrpc": "2.0", "method": "exit"}),
    ]
    answers, returncode = serve_stream(tmp_path, stream)
    expected = {2: "nested too deeply", 3: "batches are not part of the language server protocol",
                4: "the server speaks JSON-RPC 2.0", 5: "method 42 is not a string"}
    for request_id, message in expected.items():
        assert answers[request_id]["error"]["code"] == -32600 and message in answers[request_id]["error"]["message"]
    assert answers[6]["result"]["version"]  # still serving
    assert returncode == 1  # exit without shutdown


@pytest.mark.slow
def test_a_body_cut_short_or_never_sent_does_not_swallow_the_requests_after_it(tmp_path):
    """A Content-Length that promised 60 MB and sent nothing once left the server deaf for good; two
    headers (12, then 5000) deaf for 34 s; a body cut short swallowed the next request."""
    status = lambda n: {"jsonrpc": "2.0", "id": n, "method": "workspace/executeCommand",
                        "params": {"command": "unitune.status", "arguments": []}}
    small = json.dumps({"jsonrpc": "2.0", "method": "$/noop"}).encode()
    stream = [
        raw({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INITIALIZE}),
        raw({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
        b"Content-Length: 60000000\r\n\r\n",  # a body that never comes
        raw(status(2)),
        b"Content-Length: %d\r\nContent-Length: 5000\r\n\r\n" % len(small) + small,  # two lengths
        raw(status(3)),
        raw(json.dumps(status(90)), length=400)[:-10],  # cut short: 10 bytes of 400 missing, and more
        raw(status(4)),
        raw({"jsonrpc": "2.0", "id": 5, "method": "shutdown"}),
        raw({"jsonrpc": "2.0", "method": "exit"}),
    ]
    answers, returncode = serve_stream(tmp_path, stream)
    for request_id in (2, 3, 4):
        assert answers[request_id]["result"]["version"], (request_id, answers)
    assert "result" in answers[5] and returncode == 0
