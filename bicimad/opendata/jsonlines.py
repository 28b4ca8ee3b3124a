"""JSON lines read in bounded memory: blocks of whole lines, each parsed by pyarrow against an
explicit schema (fields not in it are skipped unparsed), or line by line with :mod:`json` when
pyarrow cannot take a block, so that every bad line is named.

Lines are decoded one by one in the line-by-line path: UTF-8, else Latin-1 (EMT's 2018-19
``track`` addresses), so one bad byte never loses a file.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from typing import IO

import numpy as np

from bicimad.opendata.rejects import Rejects


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


def iter_blocks(stream: IO[bytes], block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[int, int, bytes]]:
    """Yield (number of the block's first line, lines in it, block of whole lines).

    Memory is bounded by ``block_bytes`` plus one line; the last block may lack its newline.
    """
    carry = b""
    line = 1
    while True:
        data = stream.read(block_bytes)
        if not data:
            if carry:
                yield line, carry.count(b"\n") + 1, carry
            return
        data = carry + data if carry else data
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            continue
        block, carry = data[: cut + 1], data[cut + 1 :]
        n = block.count(b"\n")
        yield line, n, block
        line += n


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
    except json.JSONDecodeError:
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
