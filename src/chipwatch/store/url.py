"""The `database_url` setting: which backend, checked without importing SQLAlchemy
(settings are validated in every process, parse workers included)."""

from __future__ import annotations

import difflib
import re
from functools import cache
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

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
    check_postgres_url(rest)
    return f"{POSTGRES_DRIVER}://{rest}"


# libpq options that take one of a few words: a typo there fails only when connecting,
# where it would read as a server fault (exit 5) instead of a mistake in the setting.
CHOICES: dict[str, tuple[str, ...]] = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "target_session_attrs": (
        "any", "read-write", "read-only", "primary", "standby", "prefer-standby",
    ),
    "gssencmode": ("disable", "prefer", "require"),
    "channel_binding": ("disable", "prefer", "require"),
    "sslcertmode": ("disable", "allow", "require"),
    "sslnegotiation": ("postgres", "direct"),
    "load_balance_hosts": ("disable", "random"),
}  # fmt: skip
# libpq options that take a whole number (psycopg reads connect_timeout itself and
# raised a bare error on "abc").
INTEGERS = frozenset(
    {"connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
     "keepalives_count", "tcp_user_timeout"}
)  # fmt: skip


def check_postgres_url(rest: str) -> None:
    """Refuse, as a DatabaseUrlError, what would otherwise fail only when connecting (or
    as a traceback inside SQLAlchemy's URL parser): an unclosed IPv6 bracket, a port that
    is no TCP port, an unknown option or a value libpq does not take."""
    try:
        parts = urlsplit("//" + rest)
        port = parts.port
    except ValueError as exc:
        raise DatabaseUrlError(_netloc_problem(rest, exc)) from None
    if port == 0:
        raise DatabaseUrlError(_netloc_problem(rest, ValueError("Port 0")))
    if not parts.path.strip("/"):
        raise DatabaseUrlError(f"a PostgreSQL URL must name the database: {EXPECTED}")
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        problem = _option_problem(name, value)
        if problem:
            raise DatabaseUrlError(problem)


def _netloc_problem(rest: str, exc: ValueError) -> str:
    netloc = rest.partition("/")[0].rpartition("@")[2]  # no user or password in messages
    if "," in netloc:  # libpq's host1:5432,host2:5432, which SQLAlchemy does not read
        return f"several hosts go in the query (?host=h1:5432&host=h2:5432), got {netloc!r}"
    if str(exc).startswith("Port"):  # urlsplit's "Port out of range", "Port could not be cast"
        return f"the port in {netloc!r} is not a TCP port (1-65535)"
    return f"{exc} in {netloc!r}: {EXPECTED}"


_WHOLE = re.compile(r"-?[0-9]{1,9}")  # libpq reads a C int


def _option_problem(name: str, value: str) -> str | None:
    known = _libpq_options()
    if known is not None and name not in known:
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        return f"unknown connection option {name!r}{hint}"
    if name in CHOICES and value not in CHOICES[name]:
        return f"{name}={value!r} is not one of {', '.join(CHOICES[name])}"
    if name == "port":  # one per host: ?port=5432,5433 (an empty one is the default)
        ports = [p for p in value.split(",") if p]
        if not all(p.isascii() and p.isdigit() and 1 <= int(p) <= 65535 for p in ports):
            return f"port={value!r} is not a TCP port (1-65535)"
    if name in INTEGERS and not _WHOLE.fullmatch(value):
        return f"{name}={value!r} is not a whole number"
    return None


@cache
def _libpq_options() -> frozenset[str] | None:
    """The option names the installed libpq knows (asked only for a URL with a query:
    importing psycopg costs a parse worker 0.1 s); None without psycopg."""
    try:
        from psycopg import pq
    except ImportError:
        return None
    return frozenset(d.keyword.decode() for d in pq.Conninfo.get_defaults())


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
