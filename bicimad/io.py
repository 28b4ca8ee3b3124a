"""Small I/O helpers shared by every job: atomic writes and checksums."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` only on success.

    A crash or exception leaves ``path`` untouched (good data is never replaced by a partial write).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes 0600 files: give the final file the usual permissions, unless the caller set its own
        if tmp_path.exists() and tmp_path.stat().st_mode & 0o777 == 0o600:
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file for writing; it replaces ``path`` only if the block succeeds."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_json(path: str | os.PathLike, obj, **kwargs) -> None:
    with atomic_open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=str, **kwargs)
        fh.write("\n")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


#: A cell starting with one of these is a formula to a spreadsheet (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def file_stem(name: str) -> str:
    """``name`` (e.g. a planner's, ``router:DIR``) as one file name: every character outside
    letters, digits and ``._+-`` becomes ``_``, so a path inside a name makes no folders."""
    return re.sub(r"[^\w.+-]", "_", name, flags=re.ASCII)


def csv_safe(cell):
    """A cell as a spreadsheet shows it, never runs it: text starting with ``= + - @`` (or a tab
    or carriage return) gets a leading apostrophe; plain numbers such as ``-4`` stay as they are."""
    if isinstance(cell, str) and cell.startswith(FORMULA_START) and not _NUMBER.fullmatch(cell):
        return "'" + cell
    return cell


def write_csv(frame, path: str | os.PathLike, **kwargs) -> Path:
    """``frame`` (a pandas DataFrame) as CSV, atomically, its text cells made spreadsheet-safe."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype.kind not in "biufcmM":   # text (object or string dtype): may hold a formula
            out[column] = out[column].map(csv_safe)
    with atomic_path(path) as tmp:
        out.to_csv(tmp, index=False, **kwargs)
    return Path(path)
