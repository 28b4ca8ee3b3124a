"""JSON lines read in bounded memory: blocks of whole lines, each parsed by pyarrow against an
explicit schema (fields not in it are skipped unparsed), or line by line with :mod:`json` when
pyarrow cannot take a block, so that every bad line is named.

Lines are decoded one by one in the line-by-line path: UTF-8, else Latin-1 (EMT's 2018-19
``track`` addresses), so one bad byte never loses a file.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable, Iterator
from typing import IO

import numpy as np

from bicimad.opendata.rejects import IngestError, Rejects


def iter_lines(stream: IO[bytes], source: str, rejects: Rejects, first_line: int = 1) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, text) of non-blank lines, decoding each line on its own.

    UTF-8 first; a line that is not UTF-8 (EMT's 2018-19 ``track`` addresses are Latin-1) is
    decoded as Latin-1 and counted as a warning, so one bad byte never loses the file.
    A last line without its newline is marked so the caller can call it truncated.
    """
    recoded = 0
    for lineno, raw in enumerate(stream, first_line):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
            recoded += 1
        if text.strip():
            yield lineno, text
    if recoded:
        rejects.warn(source, "line(s) not UTF-8, decoded as Latin-1", recoded)


def json_records(stream: IO[bytes], source: str, rejects: Rejects, first_line: int = 1) -> Iterator[tuple[int, dict]]:
    """Parse JSON lines; invalid ones are rejected (the unterminated last one as truncated)."""
    pending: tuple[int, str] | None = None
    for lineno, text in iter_lines(stream, source, rejects, first_line):
        if pending is not None:
            yield from _parse_json_line(*pending, source, rejects, last=False)
        pending = (lineno, text)
    if pending is not None:
        yield from _parse_json_line(*pending, source, rejects, last=True)


def _parse_json_line(lineno: int, text: str, source: str, rejects: Rejects, last: bool) -> Iterator[tuple[int, dict]]:
    try:
        obj = json.loads(text)
    except RecursionError:
        rejects.add(source, lineno, None, "JSON nested too deeply", text[:80])
        return
    except json.JSONDecodeError as exc:
        truncated = last and not text.endswith("\n")
        reason = "truncated last line (no closing newline, invalid JSON)" if truncated else f"invalid JSON: {exc.msg} at column {exc.colno}"
        rejects.add(source, lineno, None, reason, text[:80])
        return
    if not isinstance(obj, dict):
        rejects.add(source, lineno, None, f"expected a JSON object, got {type(obj).__name__}", text[:80])
        return
    yield lineno, obj


BLOCK_BYTES = 16 << 20


BOM = b"\xef\xbb\xbf"


def iter_blocks(stream: IO[bytes], block_bytes: int = BLOCK_BYTES, max_line_bytes: int | None = None,
                on_long_line: Callable[[int, int], None] | None = None) -> Iterator[tuple[int, int, bytes]]:
    """Yield (number of the block's first line, lines in it, block of whole lines).

    Memory is bounded by ``block_bytes`` plus one line, and a line is never held beyond
    ``max_line_bytes``: the rest of a longer line is read and dropped, then
    ``on_long_line(line number, bytes seen)`` is called (without it, :class:`IngestError`).
    A UTF-8 byte-order mark at the start is dropped. The last block may lack its newline.
    """
    carry, line, skipping, first = b"", 1, 0, True

    def too_long(n: int) -> None:
        if on_long_line is None:
            raise IngestError(f"line {line}: longer than {max_line_bytes:,} bytes")
        on_long_line(line, n)

    while True:
        data = stream.read(block_bytes)
        if first and data.startswith(BOM):
            data = data[len(BOM):]
        first = False
        if not data:
            if skipping:
                too_long(skipping)
            elif carry:
                yield line, carry.count(b"\n") + 1, carry
            return
        if skipping:
            nl = data.find(b"\n")
            if nl < 0:
                skipping += len(data)
                continue
            too_long(skipping + nl)
            line, skipping, data = line + 1, 0, data[nl + 1:]
        data = carry + data if carry else data
        cut = data.rfind(b"\n")
        block, carry = (data[: cut + 1], data[cut + 1:]) if cut >= 0 else (b"", data)
        if block:
            n = block.count(b"\n")
            yield line, n, block
            line += n
        if max_line_bytes and len(carry) > max_line_bytes:
            skipping, carry = len(carry), b""


def block_line_numbers(block: bytes, first_line: int, n_lines: int, rows: int) -> np.ndarray | None:
    """Line numbers of a block's records, or None when they cannot be matched to ``rows``."""
    if n_lines == rows:
        return np.arange(first_line, first_line + n_lines)
    numbers = [first_line + i for i, ln in enumerate(block.split(b"\n")) if ln.strip()]
    return np.asarray(numbers) if len(numbers) == rows else None


def arrow_block(block: bytes, schema):
    """Parse a block of JSON lines with pyarrow against ``schema`` (other fields skipped), or
    None when any line is not valid for it; the caller then parses line by line to say which."""
    import pyarrow as pa
    import pyarrow.json as pj

    try:
        table = pj.read_json(
            io.BytesIO(block),
            read_options=pj.ReadOptions(use_threads=False, block_size=len(block) + 1),
            parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
        )
        table.validate(full=True)  # the JSON reader does not check UTF-8 in the strings it keeps
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table


def first_keys(block: bytes) -> set[str]:
    """Top-level keys of a block's first record (to report unknown fields cheaply)."""
    try:
        obj = json.loads(block.split(b"\n", 1)[0].decode("latin-1"))
    except (json.JSONDecodeError, RecursionError):
        return set()
    return set(obj) if isinstance(obj, dict) else set()


def batched(items: Iterable, n: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) >= n:
            yield batch
            batch = []
    if batch:
        yield batch
