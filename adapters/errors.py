"""The errors of the adapter registry and the model runtime (in this process or on an inference
server).

Every one is a `UnituneError` with a one-line message saying what to do, so the command line and the
language server show it as is; all are bad input to the command line (exit 2).
"""

from __future__ import annotations

from unitune.errors import ModelLoadError, UnituneError


class AdapterError(UnituneError):
    """An adapter cannot be used as asked: a bad name, a bad card, a bad archive, a name already taken."""

    exit_code = 2


class AdapterNotFoundError(AdapterError):
    """No adapter by that name in any store, and no such folder."""


class AdapterMismatchError(AdapterError):
    """The adapter was trained for another base model or another prompt format."""


class CorruptAdapterError(AdapterError):
    """The adapter folder is incomplete or damaged, or holds weights unitune never loads (pickles)."""


class InferenceServerError(ModelLoadError):
    """The inference server named by `server_url` cannot be used: unreachable, failing, too slow, or
    serving another base model. Like a model that cannot be loaded, exit 2."""


class InferenceRequestRefused(InferenceServerError):
    """The inference server answered a request with a client error (4xx): retrying cannot help."""

    def __init__(self, message: str, status: int, detail: str = ""):
        super().__init__(message)
        self.status = status
        self.detail = detail  # the server's own message
