"""The exception tree of chipwatch.

ChipwatchError
 +-- ConfigError          a config file or environment variable is invalid (exit code 2)
 +-- UsageError           a file or value given on the command line is unusable (exit code 2)
 +-- FetchError           one feed could not be fetched (returned as a value per feed)
 |    +-- UnsafeURLError  refused by the network guard (scheme, private address)
 |    +-- InvalidURLError a URL that does not parse, or that we refuse to read (chipwatch.urls)
 |    +-- BodyTooLarge    the decompressed body passed the cap
 |    +-- DeadlineExceeded  the whole fetch took longer than the deadline
 +-- ParseError           bytes that are not a usable feed
 +-- ClassifierError      the classifier cannot be fitted or applied
 +-- DeliveryError        the digest could not be delivered (nothing is marked sent)
 +-- LockBusy             another run of the same job holds the lock
 +-- NotFound             a feed, article or recipient named on the command line does not exist
 +-- StorageError         the database or data folder is damaged, locked, read-only or full (5)

Library errors become one of these where they enter chipwatch; anything else propagates,
except inside one feed's handling: there `feed_error` turns any exception into a FeedError
value of that feed (kind `internal` for the unforeseen), and the poll goes on.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from enum import IntEnum, StrEnum


class ExitCode(IntEnum):
    """What every command exits with (the README's table). Schedulers and monitoring read it."""

    OK = 0
    UNEXPECTED = 1  # a bug or an unforeseen condition: the message says what to report
    CONFIG = 2  # configuration or usage
    PARTIAL = 3  # some feeds failed; the rest was done
    ALL_FAILED = 4  # every feed failed, or nothing could be sent
    STORAGE = 5  # the database is damaged, locked, read-only or its disk is full
    LOCKED = 75  # EX_TEMPFAIL: another run holds the job lock; cron may try again later
    INTERRUPTED = 130  # `run` stopped by SIGINT (128 + 2, the shells' convention)
    TERMINATED = 143  # `run` stopped by SIGTERM (128 + 15)


class ChipwatchError(Exception):
    """Base of every error chipwatch raises on purpose."""


class ConfigError(ChipwatchError):
    def __init__(self, source: str, field: str, message: str) -> None:
        self.source = source
        self.field = field
        self.message = message
        super().__init__(f"{source}: {field}: {message}" if field else f"{source}: {message}")


class UsageError(ChipwatchError):
    """A file or value given on the command line is unusable (exit code 2): the message
    names it, e.g. an unreadable OPML file or an unknown topic id."""


class FetchError(ChipwatchError):
    """A feed could not be fetched. `permanent` errors count towards disabling the feed."""

    def __init__(self, url: str, message: str, *, status: int | None = None) -> None:
        self.url = url
        self.status = status
        super().__init__(f"{url}: {message}")


class UnsafeURLError(FetchError):
    pass


class InvalidURLError(FetchError):
    pass


class BodyTooLarge(FetchError):
    pass


class DeadlineExceeded(FetchError):
    pass


class ParseError(ChipwatchError):
    def __init__(self, url: str, message: str) -> None:
        self.url = url
        super().__init__(f"{url}: {message}")


class ClassifierError(ChipwatchError):
    pass


class DeliveryError(ChipwatchError):
    pass


class LockBusy(ChipwatchError):
    pass


class NotFound(ChipwatchError):
    pass


class StorageError(ChipwatchError):
    """The database (or the data folder) cannot be used: one line naming it, and a hint.

    Made in one place, `chipwatch.store.faults`, from the driver's errors and OSErrors."""

    def __init__(self, target: str, problem: str, hint: str) -> None:
        self.target = target
        self.problem = problem
        self.hint = hint
        super().__init__(f"{target}: {problem}; {hint}")


# --- per-feed errors as values -----------------------------------------------------------


class FeedErrorKind(StrEnum):
    """What went wrong with one feed; stored with the feed and shown by `feeds status`."""

    NETWORK = "network"  # DNS, connection refused or reset, TLS, a broken body
    TIMEOUT = "timeout"  # connect or read timeout, or the whole-fetch deadline
    HTTP = "http"  # the server answered with an error status
    TOO_LARGE = "too_large"  # the (decompressed) body passed fetch.max_body_bytes
    UNSAFE = "unsafe"  # refused by the network guard: scheme, private address
    NOT_A_FEED = "not_a_feed"  # a web page, with or without an advertised feed
    PARSE = "parse"  # bytes that are not a usable feed (or parsing took too long)
    INVALID_URL = "invalid_url"  # a URL that does not parse or that we refuse to read
    INTERNAL = "internal"  # anything else: a bug or a broken installation; please report


# Kinds that retrying the same URL will not cure (shown as such; 404/410 are too).
_PERMANENT_KINDS = {FeedErrorKind.UNSAFE, FeedErrorKind.INVALID_URL, FeedErrorKind.NOT_A_FEED}
_PERMANENT_STATUSES = {400, 401, 403, 404, 405, 410, 451}


@dataclass(frozen=True)
class FeedError:
    """One feed's failure, as a value: what FetchResult, the worker and the store carry."""

    kind: FeedErrorKind
    message: str  # one line, without the feed's URL (the outcome names the feed already)
    http_status: int | None = None
    permanent: bool = False  # retrying the same URL unchanged will not help

    def __str__(self) -> str:
        return self.message

    @classmethod
    def http(cls, status: int, reason: str = "") -> FeedError:
        message = f"HTTP {status} {reason}".strip()
        return cls(FeedErrorKind.HTTP, message, status, status in _PERMANENT_STATUSES)


def feed_error(exc: BaseException, url: str = "") -> FeedError:
    """The one place where an exception met while handling one feed becomes its FeedError.

    Library exceptions are recognised by type without importing their library (the parse
    workers never import httpx)."""
    if isinstance(exc, FeedErrorRaised):
        return exc.error
    kind = _kind_of(exc)
    status = getattr(exc, "status", None) if isinstance(exc, FetchError) else None
    if kind is FeedErrorKind.INTERNAL:
        # The first line: a database error goes on with its SQL and parameters.
        first = (str(exc).strip().splitlines() or [""])[0]
        message = f"internal error: {type(exc).__name__}: {first}"
    else:
        message = str(exc) or type(exc).__name__
    if url and message.startswith(f"{url}: "):
        message = message[len(url) + 2 :]  # the outcome names the feed already
    message = " ".join(message.split())[:500]  # one line, bounded
    if kind is FeedErrorKind.HTTP and status is not None:
        permanent = status in _PERMANENT_STATUSES
    else:
        permanent = kind in _PERMANENT_KINDS
    return FeedError(kind, message, status, permanent)


class FeedErrorRaised(ChipwatchError):
    """A FeedError carried through code that can only raise (kept as it is by feed_error)."""

    def __init__(self, error: FeedError) -> None:
        self.error = error
        super().__init__(error.message)


def _kind_of(exc: BaseException) -> FeedErrorKind:
    # Most specific first: DeadlineExceeded and UnsafeURLError are FetchErrors.
    if isinstance(exc, UnsafeURLError):
        return FeedErrorKind.UNSAFE
    if isinstance(exc, InvalidURLError):
        return FeedErrorKind.INVALID_URL
    if isinstance(exc, BodyTooLarge):
        return FeedErrorKind.TOO_LARGE
    if isinstance(exc, DeadlineExceeded | TimeoutError):
        return FeedErrorKind.TIMEOUT
    if isinstance(exc, FetchError):
        return FeedErrorKind.HTTP if exc.status is not None else FeedErrorKind.NETWORK
    if isinstance(exc, ParseError):
        return FeedErrorKind.NOT_A_FEED if hasattr(exc, "alternates") else FeedErrorKind.PARSE
    httpx = sys.modules.get("httpx")  # only an httpx exception if httpx is loaded at all
    if httpx is not None:
        if isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
            return FeedErrorKind.INVALID_URL
        if isinstance(exc, httpx.TimeoutException):
            return FeedErrorKind.TIMEOUT
        if isinstance(exc, httpx.HTTPError):
            return FeedErrorKind.NETWORK
    if isinstance(exc, OSError):
        return FeedErrorKind.NETWORK
    return FeedErrorKind.INTERNAL
