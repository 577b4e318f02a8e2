"""unitune's own exception types.

Each carries a one-line, user-facing message and the exit code the command line uses for it; the
edges (command line, language server) catch `UnituneError` and show the message, never a traceback.
"""


class UnituneError(Exception):
    """Base of every error unitune reports to a user."""

    exit_code = 1


class BadFileError(UnituneError):
    """The file cannot be used: missing, a directory, binary, not UTF-8, or an unsupported language."""

    exit_code = 2


class UnsupportedLanguageError(BadFileError):
    """The file's language is not one unitune understands."""


class BadPositionError(UnituneError):
    """A line or column outside the file."""

    exit_code = 2


class NoFocalMethodError(UnituneError):
    """The position is not inside a testable function or method."""

    exit_code = 1


class BadSettingError(UnituneError):
    """A setting has a value that is not allowed."""

    exit_code = 2


class ModelLoadError(UnituneError):
    """The base model cannot be loaded (missing offline, no CUDA, not enough memory, ...)."""

    exit_code = 2


class GenerationCancelled(UnituneError):
    """The user cancelled a generation; nothing was changed."""

    exit_code = 130


class GenerationFailed(UnituneError):
    """The model ran but produced no usable test."""

    exit_code = 1
