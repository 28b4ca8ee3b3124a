"""Bad input bookkeeping: every rejected record names its file, line and field."""

from __future__ import annotations

import csv
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bicimad.io import atomic_open, csv_safe

log = logging.getLogger(__name__)

REJECT_COLUMNS = ("file", "line", "field", "reason", "value")


class IngestError(ValueError):
    """Input that cannot be read at all (unrecognised format, unreadable file)."""


@dataclass
class Rejects:
    """Rejected records and warnings of one ingest, with counts per file and reason.

    ``rows`` keeps at most ``keep_per_reason`` examples per (file, reason) so a file full of
    bad lines cannot exhaust memory; ``counts`` always holds the full numbers.
    """

    keep_per_reason: int = 1000
    rows: list[tuple] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    warnings: Counter = field(default_factory=Counter)

    def add(self, file: str, line, field_: str | None, reason: str, value=None) -> None:
        line = line.item() if hasattr(line, "item") else line  # numpy scalars print as plain numbers
        key = (file, reason)
        self.counts[key] += 1
        if self.counts[key] <= self.keep_per_reason:
            self.rows.append((file, line, field_ or "", reason, "" if value is None else str(value)[:200]))
        if self.counts[key] == 1:
            where = f"{file}, line {line}" + (f", field {field_!r}" if field_ else "")
            log.warning("%s: %s (value %r)", where, reason, value)

    def warn(self, file: str, message: str, n: int = 1) -> None:
        """A problem that does not drop the record (e.g. an unknown field, re-decoded text)."""
        if (file, message) not in self.warnings:
            log.warning("%s: %s", file, message)
        self.warnings[(file, message)] += n

    def total(self, file: str | None = None) -> int:
        return sum(n for (f, _), n in self.counts.items() if file is None or f == file)

    def summary_lines(self) -> list[str]:
        lines = [f"{f}: {n} record(s) rejected: {reason}" for (f, reason), n in sorted(self.counts.items())]
        lines += [f"{f}: {message} ({n}x)" for (f, message), n in sorted(self.warnings.items())]
        return lines

    def write_csv(self, path: str | os.PathLike) -> Path:
        """Write the kept rows (one per rejected record) atomically."""
        path = Path(path)
        with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(REJECT_COLUMNS)
            writer.writerows([csv_safe(cell) for cell in row] for row in self.rows)
        return path

    @classmethod
    def read_csv(cls, path: str | os.PathLike) -> Rejects:
        out = cls()
        with open(path, encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                out.rows.append(tuple(row[c] for c in REJECT_COLUMNS))
        return out
