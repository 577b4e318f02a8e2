"""Which real functions an evaluation runs: the listing format (`path.py::Qualified.name` lines,
relative to a project folder, `#` comments), reading it with errors that say which line is wrong,
and finding each listed function in its file (its offset and lines) before any model time is spent.

    # humanize's number formatting
    humanize/number.py::intcomma
    semver/version.py::Version.parse    # a classmethod
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from unitune.evaluation.evaluation import EvaluationError

SEPARATOR = "::"


@dataclass(frozen=True)
class ListedFunction:
    """One function of a listing: its file relative to the project root (POSIX separators) and its
    qualified name in that file (`Version.parse` for a method)."""

    path: str
    qualified_name: str

    @property
    def id(self) -> str:
        return f"{self.path}{SEPARATOR}{self.qualified_name}"

    @property
    def module_name(self) -> str:
        """The dotted module the file is imported as from the project root (`humanize.number`;
        a package's `__init__.py` is the package itself)."""
        parts = list(PurePosixPath(self.path).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        return ".".join(parts)


@dataclass(frozen=True)
class LocatedFunction:
    """A listed function found in its file: what generation and judging need to point at it."""

    listed: ListedFunction
    source: str  # the whole module's text
    offset: int  # byte offset of the definition, where a user's cursor would be
    lines: tuple[int, int]  # 1-based first and last line, decorators included


def parse_function_line(line: str, where: str) -> ListedFunction | None:
    """The function a listing line names; None for a blank or comment line. `where` (`FILE:LINE`)
    starts the error message of a malformed line."""
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    path, separator, name = text.partition(SEPARATOR)
    path, name = path.strip(), name.strip()
    if not separator or not path or not name:
        raise EvaluationError(f"{where}: {text!r} is not `path/to/module.py::function_name` "
                              "(a method as `Class.method`)")
    if not path.endswith(".py"):
        raise EvaluationError(f"{where}: {path!r} is not a Python file (`.py`)")
    pure = PurePosixPath(path.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts:
        raise EvaluationError(f"{where}: {path!r} must be relative to the project folder (--repo), inside it")
    if not all(part.isidentifier() for part in name.split(".")):
        raise EvaluationError(f"{where}: {name!r} is not a qualified function name like `Class.method`")
    return ListedFunction(pure.as_posix(), name)


def parse_listing(text: str, source_name: str) -> list[ListedFunction]:
    """The functions of a listing's text, in order. A function listed twice is an error (it would be
    measured twice and weigh double in the totals)."""
    found: list[ListedFunction] = []
    first_line: dict[ListedFunction, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        listed = parse_function_line(line, f"{source_name}:{number}")
        if listed is None:
            continue
        if listed in first_line:
            raise EvaluationError(f"{source_name}:{number}: {listed.id} is already listed on line "
                                  f"{first_line[listed]}")
        first_line[listed] = number
        found.append(listed)
    if not found:
        raise EvaluationError(f"{source_name}: lists no function; write one `path/to/module.py::function_name` "
                              "per line")
    return found


def read_listing(path: Path) -> list[ListedFunction]:
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise EvaluationError(f"{path}: cannot read the listing ({error})") from error
    return parse_listing(text, str(path))


def locate(project: Path, listed: ListedFunction) -> LocatedFunction:
    """Find `listed` in its file under `project`; an error names what the file defines instead."""
    from unitune.focal import functions
    from unitune.source import SourceFile

    path = project / listed.path
    try:
        source = path.read_text("utf-8")
    except FileNotFoundError:
        raise EvaluationError(f"{listed.id}: no file {listed.path} in {project} (paths are relative to --repo)") \
            from None
    except (OSError, UnicodeDecodeError) as error:
        raise EvaluationError(f"{listed.id}: cannot read {path} ({error})") from error
    defined = functions(SourceFile(source, "python", path))
    for function in defined:
        if function.qualified_name == listed.qualified_name:
            return LocatedFunction(listed, source, function.node.start_byte, (function.start_line, function.end_line))
    names = ", ".join(dict.fromkeys(f.qualified_name for f in defined)) or "no testable function"
    if len(names) > 400:
        names = names[:400] + ", ..."
    raise EvaluationError(f"{listed.id}: {listed.path} defines no testable function {listed.qualified_name!r} "
                          f"(it has: {names})")
