"""``bicimad report RUN [RUN ...]``: an HTML comparison of run folders."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bicimad.errors import EXIT_NOINPUT, CommandError
from bicimad.jobs import JobResult
from bicimad.report.html import RunFolderError, build_report, load_run


@dataclasses.dataclass(frozen=True)
class ReportResult(JobResult):
    """The HTML report written."""

    path: Path

    def summary(self) -> str:
        return f"report: {self.path.resolve()}"


def report(runs: list[Path], *, out: Path | None = None, title: str = "BiciMAD occupancy comparison",
           worst: int = 10) -> ReportResult:
    """A self-contained HTML report comparing run folders (``nightly`` or ``compare`` outputs)."""
    try:
        loaded = [load_run(path) for path in runs]
    except (RunFolderError, OSError, ValueError) as exc:
        raise CommandError(str(exc), EXIT_NOINPUT) from None
    labels = [r.label for r in loaded]
    if len(set(labels)) < len(labels):  # two folders with the same name: label by full path
        for r in loaded:
            r.label = str(r.path)
    if out is None:
        out = loaded[0].path / "report.html" if len(loaded) == 1 else Path("comparison.html")
    build_report(loaded, Path(out), title=title, worst_n=worst)
    return ReportResult(path=Path(out))
