"""User-facing errors and the exit codes the command line and the batch jobs share.

Everything in :mod:`bicimad` raises :class:`CommandError` for a failure the user can act on; the
command line prints its message without a traceback and exits with its code.
The codes follow ``sysexits.h`` where one fits, so cron wrappers can tell "fix the config" from
"retry later".
"""

from __future__ import annotations

EXIT_OK = 0            #: the run finished (or was already complete)
EXIT_USAGE = 2         #: bad command line or bad job config: fix it, do not retry
EXIT_BAD_INPUT = 3     #: ingest: input problems make the output wrong (too many rejects, or any with --strict)
EXIT_DATAERR = 65      #: input data present but unusable (schema, values)
EXIT_NOINPUT = 66      #: input data missing (no data for the date, missing folder)
EXIT_STALE = 69        #: input too old or too thin to plan on (nightly freshness limits); fix the feed
EXIT_IOERR = 74        #: a file or folder could not be read or written (the path is named)
EXIT_SOFTWARE = 70     #: a step failed unexpectedly; re-running resumes from that step
EXIT_TEMPFAIL = 75     #: another run holds the lock; try again later


class CommandError(Exception):
    """A user-facing failure: printed without a traceback, exit code ``code``."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code
