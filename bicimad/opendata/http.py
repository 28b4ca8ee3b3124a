"""HTTP for the open-data clients (:mod:`~bicimad.opendata.portal`, :mod:`~bicimad.opendata.live`).

One ``requests`` session per job, with urllib3's :class:`~urllib3.util.Retry` mounted on its
``HTTPAdapter`` for ``http://`` and ``https://``:

- connection errors, read timeouts before the answer starts, and answers 429 or 5xx are retried
  with exponential backoff (``backoff_s`` before the first retry, doubling after each further one,
  never above ``max_wait_s``);
- a ``Retry-After`` header (seconds or an HTTP date) is honoured as the least wait, capped at
  ``max_wait_s`` so a server cannot park a nightly run for hours;
- a 4xx other than 429 is final; after ``retries`` further attempts the last answer comes back
  (5xx) or :class:`DownloadError` is raised (no answer).

A body that breaks after the answer started is beyond urllib3's reach; the caller reports it with
:meth:`Client.fail`, which counts it against the same budget and waits the same backoff, so one
file gets ``retries + 1`` attempts in all however they fail. Only ``http`` and ``https`` URLs are
fetched (:func:`check_url`), and :meth:`Client.fetch` caps how many bytes one answer may bring.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from itertools import takewhile
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import InvalidHeader, MaxRetryError, ProtocolError
from urllib3.util import Retry

log = logging.getLogger(__name__)

#: The only URL schemes fetched.
SCHEMES = ("http", "https")
#: Answers retried: too many requests, and every server error.
RETRY_STATUSES = frozenset({429, *range(500, 600)})


class DownloadError(RuntimeError):
    """A URL could not be fetched; the message names the URL and the cause, never a request header."""


class _BodyBroken(DownloadError):
    """The connection broke off in the middle of a body (worth another attempt)."""


def check_url(url: str, what: str) -> str:
    """``url`` if it is an absolute http(s) URL; otherwise :class:`DownloadError` naming ``what``."""
    parts = urlsplit(str(url))
    if parts.scheme.lower() not in SCHEMES or not parts.hostname:
        raise DownloadError(f"{what}: {str(url)!r} is not an http:// or https:// URL (no other scheme is fetched)")
    return url


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, the port filled in from the scheme."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


class BackoffRetry(Retry):
    """urllib3's Retry with the project's backoff and an injectable ``sleep``.

    ``backoff_factor`` is the wait before the first retry; it doubles with each further consecutive
    failure, capped at ``backoff_max``. A ``Retry-After`` header raises the wait to what it asks,
    capped at ``backoff_max`` too; an unreadable one is ignored.
    """

    def __init__(self, *args, sleep: Callable[[float], None] = time.sleep, **kwargs):
        super().__init__(*args, **kwargs)
        self.sleep_fn = sleep

    def new(self, **kwargs) -> BackoffRetry:
        retry = super().new(**kwargs)
        retry.sleep_fn = self.sleep_fn
        return retry

    def get_backoff_time(self) -> float:
        failures = len(list(takewhile(lambda h: h.redirect_location is None, reversed(self.history))))
        if failures == 0:
            return 0.0
        return float(min(self.backoff_max, self.backoff_factor * 2 ** (failures - 1)))

    def sleep(self, response=None) -> None:
        wait = self.get_backoff_time()
        if response is not None and self.respect_retry_after_header:
            try:
                asked = self.get_retry_after(response)
            except InvalidHeader:
                asked = None
            if asked:
                wait = max(wait, min(asked, self.backoff_max))
        last = self.history[-1] if self.history else None
        cause = f"HTTP {last.status}" if last and last.status else type(last.error).__name__ if last and last.error else "?"
        log.info("retrying %s in %.2f s after %s (attempt %d)", last.url if last else "?", wait, cause,
                 len(self.history) + 1)
        self.sleep_fn(wait)


def _cause(exc: BaseException) -> str:
    """A short cause for an exception of requests: urllib3's reason where it gave up retrying."""
    for arg in getattr(exc, "args", ()):
        if isinstance(arg, MaxRetryError) and arg.reason is not None:
            return f"{type(arg.reason).__name__}: {arg.reason}"
    return f"{type(exc).__name__}: {exc}"


class Client:
    """A ``requests`` session with :class:`BackoffRetry` mounted, timeouts, and the retry budget.

    ``session`` (default: a new one, closed by :meth:`close`) gets the retrying adapter mounted for
    ``http://`` and ``https://``.
    """

    def __init__(self, session=None, *, connect_timeout_s: float, read_timeout_s: float, retries: int,
                 backoff_s: float, max_wait_s: float = 120.0, sleep: Callable[[float], None] = time.sleep,
                 user_agent: str | None = None):
        self.own = session is None
        self.session = session or requests.Session()
        if user_agent:
            self.session.headers.setdefault("User-Agent", user_agent)
        self.timeout = (connect_timeout_s, read_timeout_s)
        self.retries, self.backoff_s, self.max_wait_s, self.sleep = int(retries), backoff_s, max_wait_s, sleep
        self.adapter = HTTPAdapter(max_retries=self.new_retry())
        self.session.mount("http://", self.adapter)
        self.session.mount("https://", self.adapter)

    def new_retry(self) -> BackoffRetry:
        """A fresh budget: ``retries`` further attempts after the first."""
        return BackoffRetry(
            total=self.retries, connect=None, read=None, status=None, other=None, allowed_methods={"GET"},
            status_forcelist=RETRY_STATUSES, backoff_factor=self.backoff_s, backoff_max=self.max_wait_s,
            raise_on_status=False, respect_retry_after_header=True, sleep=self.sleep,
        )

    @property
    def attempts(self) -> int:
        return self.retries + 1

    def get(self, url: str, *, retry: BackoffRetry | None = None, headers: dict | None = None,
            stream: bool = False, allow_redirects: bool = True):
        """GET ``url`` through the retrying adapter; return ``(response, retry)``.

        ``retry`` carries a budget already partly spent (by :meth:`fail`); the one returned is what
        is left after this call. A 5xx or 429 answer comes back only once the budget is spent.
        Raises :class:`DownloadError` when no answer came within the budget.
        """
        retry = retry or self.new_retry()
        self.adapter.max_retries = retry
        try:
            response = self.session.get(url, headers=headers, timeout=self.timeout, stream=stream,
                                        allow_redirects=allow_redirects)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.RetryError) as exc:
            raise DownloadError(f"{url}: gave up after {self.attempts} attempts ({_cause(exc)})") from None
        except requests.RequestException as exc:
            raise DownloadError(f"{url}: {_cause(exc)}") from None
        finally:
            self.adapter.max_retries = self.new_retry()
        spent = getattr(response.raw, "retries", None)
        return response, spent if isinstance(spent, BackoffRetry) else retry

    def fail(self, url: str, retry: BackoffRetry, cause: str) -> BackoffRetry:
        """Count a failure urllib3 did not see (a body broken mid-way) and wait the backoff.

        Returns the budget left; raises :class:`DownloadError` naming ``cause`` when it is spent.
        """
        try:
            retry = retry.increment("GET", url, error=ProtocolError(cause))
        except MaxRetryError:
            raise DownloadError(f"{url}: gave up after {self.attempts} attempts ({cause})") from None
        retry.sleep()
        return retry

    def gave_up(self, url: str, response) -> DownloadError:
        """The error for a retryable answer that still came back when the budget was spent."""
        return DownloadError(f"{url}: gave up after {self.attempts} attempts (HTTP {response.status_code})")

    def fetch(self, url: str, *, limit: int, headers: dict | None = None, allow_redirects: bool = True,
              what: str = "answer"):
        """GET a whole (small) answer: ``(response, body)``, at most ``limit`` bytes of body.

        A body that breaks off is fetched again within the same budget. The status is the
        caller's to judge, except that a retryable one still there at the end raises.
        """
        retry = None
        while True:
            response, retry = self.get(url, retry=retry, headers=headers, stream=True, allow_redirects=allow_redirects)
            if response.status_code in RETRY_STATUSES:
                response.close()
                raise self.gave_up(url, response)
            try:
                return response, self._read(response, url, limit, what)
            except _BodyBroken as exc:
                retry = self.fail(url, retry, str(exc))

    def _read(self, response, url: str, limit: int, what: str) -> bytes:
        """The whole body of a streamed ``response``, refusing more than ``limit`` bytes.

        Raises :class:`DownloadError` above the limit (announced or counted), and the subclass
        ``_BodyBroken`` when the connection breaks off mid-body.
        """
        announced = response.headers.get("Content-Length", "")
        if announced.isdigit() and int(announced) > limit:
            response.close()
            raise DownloadError(f"{url}: the {what} is {int(announced)} bytes, above the limit of {limit} bytes")
        chunks, size = [], 0
        try:
            for chunk in response.iter_content(1 << 16):
                size += len(chunk)
                if size > limit:
                    raise DownloadError(f"{url}: the {what} is larger than the limit of {limit} bytes")
                chunks.append(chunk)
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            raise _BodyBroken(f"the {what} broke off ({_cause(exc)})") from None
        finally:
            response.close()
        return b"".join(chunks)

    def close(self) -> None:
        if self.own:
            self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
