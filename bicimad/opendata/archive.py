"""The one guarded reader of archives and whole documents: size limits before memory is spent.

Every zip member (and every part of an xlsx workbook, itself a zip) is checked against
:class:`Limits` from its declared sizes before a byte of it is decompressed: larger than
``max_member_bytes``, or expanding more than ``max_ratio`` times (above ``ratio_floor_bytes``:
small members of repeated text compress very well), and it is refused. ``zipfile`` never
returns more than a member's declared size (a member that holds more fails its CRC check),
so the declared size bounds what is read. Archives inside archives (zip, gzip, bzip2, xz, 7z,
rar, tar) are refused from their name or first bytes, before they are read. Members that
need a file (xlsx, parquet) are streamed to a temporary file, never held in memory.
JSON lines longer than ``max_line_bytes`` are rejected without being held whole
(:func:`bicimad.opendata.jsonlines.iter_blocks`), and whole documents (station lists, a
simulator's configuration) are read only up to the same limit.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bicimad.opendata.rejects import IngestError

GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Limits on what one raw file may make ingest read into memory or onto disk."""

    max_member_bytes: int = 2 * GIB
    """largest uncompressed archive member (declared size)"""
    max_ratio: float = 200.0
    """largest uncompressed / compressed size of a member (real EMT archives: under 15)"""
    ratio_floor_bytes: int = 1 * MIB
    """members smaller than this are not held to ``max_ratio``"""
    max_line_bytes: int = 64 * MIB
    """longest JSON line, and largest document read whole (real snapshot lines: under 100 kB)"""

    def __post_init__(self):
        for name in ("max_member_bytes", "max_ratio", "ratio_floor_bytes", "max_line_bytes"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value == value and value > 0):  # NaN fails value == value
                raise ValueError(f"{name}: expected a positive number, got {value!r}")


DEFAULT_LIMITS = Limits()

#: First bytes of compressed or archive formats (a member starting so is a nested archive).
_ARCHIVE_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"7z\xbc\xaf\x27\x1c",
                  b"Rar!\x1a\x07", b"\x28\xb5\x2f\xfd")
_ARCHIVE_SUFFIXES = (".zip", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar", ".tar", ".zst")


def is_nested_archive(name: str, head: bytes) -> bool:
    """A member that is itself an archive (xlsx workbooks are zips, but not nested archives)."""
    lower = name.lower()
    if lower.endswith((".xlsx", ".xlsm")):
        return False
    return lower.endswith(_ARCHIVE_SUFFIXES) or head.startswith(_ARCHIVE_MAGIC) or head[257:262] == b"ustar"


def check_member(info: zipfile.ZipInfo, label: str, limits: Limits) -> None:
    """Refuse a member from its declared sizes alone (nothing is decompressed)."""
    size, packed = info.file_size, max(info.compress_size, 1)
    if size > limits.max_member_bytes:
        raise IngestError(f"{label}: archive member declares {size:,} bytes, over the limit of "
                          f"{limits.max_member_bytes:,} (--max-member-bytes)")
    if size >= limits.ratio_floor_bytes and size / packed > limits.max_ratio:
        raise IngestError(f"{label}: archive member expands {size / packed:,.0f} times ({packed:,} -> {size:,} bytes), "
                          f"over the limit of {limits.max_ratio:g} (--max-compression-ratio)")


def open_zip(path_or_stream, label: str, limits: Limits) -> zipfile.ZipFile:
    """A zip archive whose every member passes :func:`check_member`."""
    try:
        archive = zipfile.ZipFile(path_or_stream)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError) as exc:
        raise IngestError(f"{label}: damaged zip archive ({exc})") from None
    try:
        for info in archive.infolist():
            check_member(info, f"{label}!{info.filename}", limits)
    except IngestError:
        archive.close()
        raise
    return archive


def check_workbook(path, label: str, limits: Limits) -> None:
    """An xlsx is a zip of XML parts: the same limits hold before openpyxl opens it."""
    open_zip(path, label, limits).close()


@contextlib.contextmanager
def member_file(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Iterator[Path]:
    """A member streamed to a temporary file (for readers that need a file: xlsx, parquet)."""
    with tempfile.TemporaryDirectory(prefix="bicimad-member-") as tmp:
        target = Path(tmp) / "member"
        with archive.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        yield target


def read_document(stream: IO[bytes], label: str, limits: Limits) -> bytes:
    """A whole document, refused when it is larger than ``max_line_bytes``."""
    data = stream.read(limits.max_line_bytes + 1)
    if len(data) > limits.max_line_bytes:
        raise IngestError(f"{label}: document larger than {limits.max_line_bytes:,} bytes (--max-line-bytes); "
                          "only JSON lines files may be larger")
    return data
