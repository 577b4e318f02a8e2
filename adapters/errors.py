"""The errors of the adapter registry and the model runtime.

Every one is a `UnituneError` with a one-line message saying what to do, so the command line and the
language server show it as is; all are bad input to the command line (exit 2).
"""

from __future__ import annotations

from unitune.errors import UnituneError


class AdapterError(UnituneError):
    """An adapter cannot be used as asked: a bad name, a bad card, a bad archive, a name already taken."""

    exit_code = 2


class AdapterNotFoundError(AdapterError):
    """No adapter by that name in any store, and no such folder."""


class AdapterMismatchError(AdapterError):
    """The adapter was trained for another base model or another prompt format."""


class CorruptAdapterError(AdapterError):
    """The adapter folder is incomplete or damaged, or holds weights unitune never loads (pickles)."""
