"""The exception tree of chipwatch.

ChipwatchError
 +-- ConfigError          a config file or environment variable is invalid (exit code 2)
 +-- UsageError           a file or value given on the command line is unusable (exit code 2)
 +-- FetchError           one feed could not be fetched (returned as a value per feed)
 |    +-- UnsafeURLError  refused by the network guard (scheme, private address)
 |    +-- BodyTooLarge    the decompressed body passed the cap
 |    +-- DeadlineExceeded  the whole fetch took longer than the deadline
 +-- ParseError           bytes that are not a usable feed
 +-- ClassifierError      the classifier cannot be fitted or applied
 +-- DeliveryError        the digest could not be delivered (nothing is marked sent)
 +-- LockBusy             another run of the same job holds the lock
 +-- NotFound             a feed, article or recipient named on the command line does not exist

Library errors become one of these where they enter chipwatch; anything else propagates.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What every command exits with (the README's table). Schedulers and monitoring read it."""

    OK = 0
    UNEXPECTED = 1  # a bug or an unforeseen condition: the message says what to report
    CONFIG = 2  # configuration or usage
    PARTIAL = 3  # some feeds failed; the rest was done
    ALL_FAILED = 4  # every feed failed, or nothing could be sent
    STORAGE = 5  # the database is damaged, locked, read-only or its disk is full
    LOCKED = 75  # EX_TEMPFAIL: another run holds the job lock; cron may try again later


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
