"""Errors of the training part that a user sees: mining a repository for focal-method/test pairs.

Each carries the exit code `unitune mine` uses: 2 when the input cannot be mined at all (not a
directory, no source files, no tests), 1 when it was mined but nothing came out (no pairs).
"""

from __future__ import annotations

from unitune.errors import UnituneError


class MiningError(UnituneError):
    """A repository cannot be mined."""

    exit_code = 2


class NotARepositoryError(MiningError):
    """The path is missing, a file, or holds no Python or Java sources."""


class NoTestsFoundError(MiningError):
    """The repository has sources but no tests a test runner would collect."""


class NoPairsFoundError(MiningError):
    """Tests were found, but none could be paired with the function it tests."""

    exit_code = 1
