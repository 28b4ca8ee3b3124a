"""Machinery shared by the batch jobs (nightly, what-if): TOML job configs loaded into frozen
dataclasses, an exclusive run lock, a step ledger for resumable runs, and exit codes for cron.

Why a ledger: a batch job is a chain of steps whose outputs are written atomically; a step is
recorded done (with the checksums of what it wrote) only after its outputs are in place, so a
crash at any moment leaves either a finished, recorded step or one that is simply run again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import fcntl
import json
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bicimad.config import (  # noqa: F401  (re-exported: the job configs' one TOML loader)
    REPO_ROOT,
    ConfigError,
    config_to_dict,
    load_config,
    write_config,
)
from bicimad.errors import (  # noqa: F401  (re-exported: the batch jobs' exit codes)
    EXIT_DATAERR,
    EXIT_NOINPUT,
    EXIT_OK,
    EXIT_SOFTWARE,
    EXIT_TEMPFAIL,
    EXIT_USAGE,
)
from bicimad.io import sha256_file, write_json

log = logging.getLogger(__name__)

#: Environment variable for fault injection in tests: ``STEP:POINT`` kills the process with
#: SIGKILL at POINT (``start``: the step has begun; ``written``: its outputs are written but the
#: step is not yet recorded) of step STEP.
KILL_AT_ENV = "BICIMAD_KILL_AT"


class LockHeld(RuntimeError):
    """Another live process holds the run lock."""


# ---------------------------------------------------------------------------------------------
# Run lock
# ---------------------------------------------------------------------------------------------

class RunLock:
    """An exclusive lock file holding the owner's pid.

    ``fcntl.flock`` makes the kernel drop the lock when its holder dies, so a lock file left by
    a killed run (a stale lock from a dead pid) is simply taken over by the next run; a live
    holder makes :meth:`acquire` raise :class:`LockHeld` naming its pid.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES):
                raise LockHeld(f"{self.path} is held by another run ({holder or 'pid unknown'})") from None
            raise
        previous = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
        if previous:
            log.warning("taking over stale lock %s (%s)", self.path, previous)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {dt.datetime.now().isoformat(timespec='seconds')}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        # Empty the file before unlocking, so the next run sees a clean lock, not a stale one.
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# ---------------------------------------------------------------------------------------------
# Step ledger
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Step:
    """One step of a batch job: ``run(ctx)`` writes its outputs atomically and returns their
    paths and optional facts for the manifest."""

    name: str
    run: Callable[[Any], StepResult]


@dataclasses.dataclass
class StepResult:
    outputs: list[Path] = dataclasses.field(default_factory=list)
    facts: dict = dataclasses.field(default_factory=dict)


def _maybe_kill(step: str, point: str) -> None:
    if os.environ.get(KILL_AT_ENV) == f"{step}:{point}":
        log.warning("fault injection: killing the process at %s:%s", step, point)
        logging.shutdown()
        os.kill(os.getpid(), signal.SIGKILL)


class Ledger:
    """Which steps of a run are done, with the checksums of their outputs (``ledger.json``).

    A step counts as done only if it is recorded and every recorded output still exists with
    the recorded checksum; otherwise it (and every step after it) runs again.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.entries: dict[str, dict] = {}
        if self.path.exists():
            try:
                self.entries = json.loads(self.path.read_text(encoding="utf-8"))["steps"]
            except (ValueError, KeyError) as exc:
                raise ConfigError(f"{self.path}: unreadable step ledger ({exc}); delete it to rerun all steps") from None

    def is_done(self, step: str) -> bool:
        entry = self.entries.get(step)
        if entry is None:
            return False
        base = self.path.parent
        for rel, digest in entry["outputs"].items():
            path = base / rel
            if not path.exists() or sha256_file(path) != digest:
                log.warning("step %s: output %s is missing or changed; running the step again", step, rel)
                return False
        return True

    def record(self, step: str, outputs: Iterable[Path], facts: dict, seconds: float) -> None:
        base = self.path.parent.resolve()
        digests = {}
        for out in outputs:
            full = Path(out).resolve()  # a relative path means relative to the working directory
            try:
                key = str(full.relative_to(base))
            except ValueError:
                key = str(full)
            digests[key] = sha256_file(full)
        self.entries[step] = {
            "outputs": digests,
            "facts": facts,
            "seconds": round(seconds, 3),
            "finished": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        write_json(self.path, {"steps": self.entries})

    def forget_from(self, names: list[str], first: str) -> None:
        """Drop ``first`` and every later step: their inputs may have changed."""
        dropped = names[names.index(first):]
        if any(n in self.entries for n in dropped):
            for name in dropped:
                self.entries.pop(name, None)
            write_json(self.path, {"steps": self.entries})


def run_steps(steps: list[Step], ctx: Any, ledger: Ledger, force: bool = False) -> dict[str, str]:
    """Run the steps in order, skipping the ones the ledger holds as done.

    Returns ``{step: "done" | "skipped"}``. A step that raises stops the chain; nothing is
    recorded for it, so the next run starts there.
    """
    names = [s.name for s in steps]
    status: dict[str, str] = {}
    rerun = force
    for step in steps:
        if not rerun and ledger.is_done(step.name):
            log.info("step %s: already done, skipped", step.name)
            status[step.name] = "skipped"
            continue
        if not rerun:
            ledger.forget_from(names, step.name)
            rerun = True  # every later step consumes this one's outputs
        log.info("step %s: started", step.name)
        _maybe_kill(step.name, "start")
        t0 = time.perf_counter()
        result = step.run(ctx) or StepResult()
        _maybe_kill(step.name, "written")
        ledger.record(step.name, result.outputs, result.facts, time.perf_counter() - t0)
        log.info("step %s: done in %.1f s", step.name, time.perf_counter() - t0)
        status[step.name] = "done"
    return status


# ---------------------------------------------------------------------------------------------
# Provenance
# ---------------------------------------------------------------------------------------------

def git_commit(repo: Path = REPO_ROOT) -> dict:
    """The code version: commit hash and whether the working tree had uncommitted changes."""
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip() != ""
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": dirty}


def file_inputs(paths: Iterable[Path]) -> list[dict]:
    """Inputs for a manifest: path, size and sha256 of each existing file."""
    rows = []
    for path in sorted({Path(p) for p in paths}):
        if path.is_file():
            rows.append({"path": str(path), "bytes": path.stat().st_size, "sha256": sha256_file(path)})
    return rows
