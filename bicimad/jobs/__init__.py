"""The batch jobs: each a typed function that composes the parts below it and returns a result.

``ingest``, ``demand`` (backtest, train, forecast), ``simulate`` (one day, fidelity), ``rl``,
``agent`` (train the fleet policy), ``compare``, ``nightly``, ``whatif`` and ``report``. The command
line (``bicimad``) only parses arguments and calls these functions; a job never re-enters the
command line, and nothing below the command line imports this package's command-line module.
"""

from __future__ import annotations


class JobResult:
    """Base of the jobs' result dataclasses: ``summary()`` is what the command line prints."""

    exit_code: int = 0

    def summary(self) -> str:
        return ""

    def print(self) -> int:
        """Print the summary (the command line's output) and return the exit code."""
        text = self.summary()
        if text:
            print(text)
        return self.exit_code
