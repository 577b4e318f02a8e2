"""Adapter archives: `export` writes one `.tar.gz` (a folder `NAME/` inside, anonymous entries);
`import` accepts only plain files and folders under one top-level folder, refusing links, devices,
absolute or `..` paths and archives unpacking to more than `MAX_ARCHIVE_BYTES`, before anything is
written outside a `.tmp-*` folder."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import tarfile
import zlib
from pathlib import Path

from unitune.adapters import constants as c
from unitune.adapters.errors import AdapterError, CorruptAdapterError
from unitune.adapters.verification import MAX_ADAPTER_DEPTH, adapter_files


def write_archive(folder: Path, name: str, target: Path) -> Path:
    """Write the adapter in `folder` to the archive `target` as `name/...`, all or nothing."""
    partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.partial")
    try:
        with tarfile.open(partial, "w:gz") as archive:
            archive.add(folder, arcname=name, recursive=False, filter=_anonymous)
            for path in adapter_files(folder):
                if path.is_symlink() or not (path.is_file() or path.is_dir()):
                    raise AdapterError(f"{path} is not a regular file or folder; remove it before exporting")
                arcname = f"{name}/{path.relative_to(folder).as_posix()}"
                archive.add(path, arcname=arcname, recursive=False, filter=_anonymous)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


_DRIVE = re.compile(r"^[A-Za-z]:")


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """Archive entries without the exporter's user names and with plain permissions."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mode = 0o755 if info.isdir() else 0o644
    return info


def _member_parts(member_name: str, archive: Path) -> list[str]:
    if member_name.startswith(("/", "\\")) or _DRIVE.match(member_name):
        raise AdapterError(f"{archive} holds an absolute path ({member_name}); refusing to import it")
    if "\\" in member_name:  # a separator on Windows: could climb out there
        raise AdapterError(f"{archive} holds a path with a backslash ({member_name}); refusing to import it")
    parts = [part for part in member_name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise AdapterError(f"{archive} holds a path leading outside its folder ({member_name}); refusing to import it")
    if not parts:
        raise AdapterError(f"{archive} holds an entry without a name; refusing to import it")
    if len(parts) > MAX_ADAPTER_DEPTH + 1:  # the archive's own top folder, then the adapter's files
        raise AdapterError(f"{archive} holds a path {len(parts)} folders deep; an adapter's files are at most "
                           f"{MAX_ADAPTER_DEPTH} deep; refusing to import it")
    return parts


def _open_archive(archive: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
        # tarfile's own message lists every format it tried: one line is enough
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        if "file could not be opened successfully" in reason or isinstance(error, tarfile.ReadError):
            reason = "not a tar archive"
        raise AdapterError(f"{archive} is not a .tar.gz adapter archive ({reason}); make one with "
                           "`unitune adapters export`") from None


def archive_folder_name(archive: Path) -> str:
    """The top-level folder of an archive, from its first entry (read without unpacking the rest)."""
    with _open_archive(archive) as opened:
        try:
            first = opened.next()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as error:
            raise AdapterError(f"{archive} is damaged ({error}); export the adapter again") from None
    if first is None:
        raise AdapterError(f"{archive} is empty; export the adapter again")
    return _member_parts(first.name, archive)[0]


def prescan(archive: Path) -> None:
    """A first pass over the whole stream before anything is unpacked: every byte is read, so a
    gzip CRC or length that does not match refuses the archive; the tar headers are walked by hand
    (before tarfile parses any) to cap the member count, what the archive unpacks to, its ratio to
    the archive's size, and the size of pax and long-name headers (which tarfile reads into memory)."""
    import gzip

    compressed = archive.stat().st_size
    limit = max(c.ARCHIVE_RATIO_FLOOR, c.MAX_ARCHIVE_RATIO * compressed)
    with open(archive, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(archive, "rb") if gzipped else open(archive, "rb")) as stream:
            members = unpacked = 0
            while True:
                header = stream.read(512)
                if len(header) < 512 or header == b"\0" * 512:
                    break  # the end (two zero blocks; trailing padding is read below)
                try:
                    size = int(header[124:136].rstrip(b"\0 ").decode("ascii") or "0", 8)
                except (UnicodeDecodeError, ValueError):
                    raise AdapterError(f"{archive} is not a .tar.gz adapter archive (a header is damaged); "
                                       "make one with `unitune adapters export`") from None
                kind = header[156:157]
                members += 1
                if kind in (b"x", b"g", b"L", b"K") and size > c.MAX_ARCHIVE_HEADER_BYTES:
                    raise AdapterError(f"{archive} holds a {size}-byte extended header; refusing to import it")
                if members > c.MAX_ARCHIVE_MEMBERS:
                    raise AdapterError(f"{archive} has more than {c.MAX_ARCHIVE_MEMBERS} entries; refusing to import it")
                unpacked += size
                if unpacked > c.MAX_ARCHIVE_BYTES or unpacked > limit:
                    raise AdapterError(f"{archive} unpacks to more than {min(limit, c.MAX_ARCHIVE_BYTES) >> 20} MiB "
                                       f"({compressed} bytes compressed); refusing to import it")
                remaining = -(-size // 512) * 512
                while remaining:
                    chunk = stream.read(min(remaining, 1 << 20))
                    if not chunk:
                        raise AdapterError(f"{archive} is truncated; export the adapter again")
                    remaining -= len(chunk)
            # After the end, tar allows only the zeros that fill its last record; reading to the end also
            # lets gzip check its CRC and length. Anything else there (incompressible bytes padding the
            # archive so its unpacked-to-compressed ratio passes) refuses it.
            trailing = 0
            while chunk := stream.read(1 << 16):
                trailing += len(chunk)
                if chunk.strip(b"\0") or trailing > c.MAX_ARCHIVE_TRAILER_BYTES:
                    raise AdapterError(f"{archive} holds data after the end of its tar archive; refusing to import "
                                       "it (make one with `unitune adapters export`)")
    except AdapterError:
        raise
    except (OSError, EOFError, zlib.error) as error:
        raise AdapterError(f"{archive} is damaged ({type(error).__name__}: {error}); export the adapter again") from None


def extract_safely(archive: Path, destination: Path) -> None:
    """Unpack the one top-level folder of `archive` into `destination`, checking every entry before
    writing it; file contents are copied by hand so no archive metadata (modes, owners, links) applies.
    `_prescan` has checked the whole stream first."""
    top: str | None = None
    total = count = 0
    with _open_archive(archive) as opened:
        try:
            for member in opened:
                count += 1
                if count > c.MAX_ARCHIVE_MEMBERS:
                    raise AdapterError(f"{archive} has more than {c.MAX_ARCHIVE_MEMBERS} entries; refusing to import it")
                parts = _member_parts(member.name, archive)
                if top is None:
                    top = parts[0]
                elif parts[0] != top:
                    raise AdapterError(f"{archive} holds more than one top-level folder; export the adapter again")
                if member.issym() or member.islnk():
                    raise AdapterError(f"{archive} holds a link ({member.name}); adapter archives may hold only files and folders")
                if member.isdir():
                    destination.joinpath(*parts[1:]).mkdir(parents=True, exist_ok=True)
                    continue
                if not member.isreg() or member.issparse():
                    raise AdapterError(f"{archive} holds a special file ({member.name}); adapter archives may hold only files and folders")
                if len(parts) == 1:
                    raise AdapterError(f"{archive} holds a file outside a folder ({member.name}); export the adapter again")
                if Path(parts[-1]).suffix.lower() in c.PICKLE_SUFFIXES:
                    raise CorruptAdapterError(
                        f"{archive} holds {member.name}: pickle weights are never loaded; re-save with safetensors"
                    )
                total += member.size
                if total > c.MAX_ARCHIVE_BYTES:
                    raise AdapterError(
                        f"{archive} unpacks to more than {c.MAX_ARCHIVE_BYTES >> 30} GiB; refusing to import it"
                    )
                target = destination.joinpath(*parts[1:])
                target.parent.mkdir(parents=True, exist_ok=True)
                source = opened.extractfile(member)
                try:
                    with target.open("xb") as out:
                        shutil.copyfileobj(source, out)
                except FileExistsError:
                    raise AdapterError(f"{archive} holds {member.name} twice; export the adapter again") from None
        except (tarfile.TarError, EOFError, zlib.error) as error:
            raise AdapterError(f"{archive} is damaged ({error}); export the adapter again") from None
    if top is None:
        raise AdapterError(f"{archive} is empty; export the adapter again")
