"""The `database_url` setting: which backend, checked without importing SQLAlchemy
(settings are validated in every process, parse workers included)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

SQLITE_FILENAME = "chipwatch.sqlite3"
POSTGRES_DRIVER = "postgresql+psycopg"
EXPECTED = "expected sqlite:///PATH or postgresql://USER@HOST[:PORT]/DATABASE"


class DatabaseUrlError(ValueError):
    """The database_url setting names no backend chipwatch supports."""


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def normalise_url(url: str) -> str:
    """The SQLAlchemy URL for a `database_url` setting; raises DatabaseUrlError.

    `postgresql://` and `postgres://` (what libpq tools and hosting panels print) mean
    psycopg 3, the one PostgreSQL driver installed; `postgresql+psycopg://` is kept."""
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise DatabaseUrlError(f"{EXPECTED}, got {_redacted(text)!r}")
    if scheme in ("sqlite", "sqlite+pysqlite"):
        if not rest.startswith("/") or rest == "/":
            raise DatabaseUrlError(f"a SQLite URL needs a file: sqlite:///PATH, got {text!r}")
        return text
    if scheme not in ("postgresql", "postgres", POSTGRES_DRIVER):
        raise DatabaseUrlError(f"unsupported database {scheme!r}: {EXPECTED}")
    if not urlsplit("//" + rest).path.strip("/"):
        raise DatabaseUrlError(f"a PostgreSQL URL must name the database: {EXPECTED}")
    return f"{POSTGRES_DRIVER}://{rest}"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _redacted(text: str) -> str:
    # A password in a mistyped URL must not end up in a log.
    head, at, tail = text.rpartition("@")
    return f"***@{tail}" if at else text


def libpq_url(url: str) -> str:
    """The libpq form (`postgresql://...`) of a PostgreSQL `database_url`, for psycopg
    connections made outside SQLAlchemy (the task queue, the host gate)."""
    _, _, rest = normalise_url(url).partition("://")
    return f"postgresql://{rest}"
