"""Every difference between SQLite and PostgreSQL the store has to know, in one place.

- connection set-up: SQLite's PRAGMAs (WAL, foreign keys, busy timeout); nothing on
  PostgreSQL, whose defaults already are what the PRAGMAs ask SQLite for, but a
  connect timeout (`CONNECT_TIMEOUT_SECONDS`) unless the URL sets one;
- parameters of driver SQL: `?` for sqlite3, `%s` for psycopg (and key lookups pass
  one array per kind with `= ANY(%s)` there: `store.lookup.present_keys`);
- "insert unless present" (`INSERT OR IGNORE` / `ON CONFLICT DO NOTHING`) and "insert or
  update" (`ON CONFLICT DO UPDATE`, the same words on both);
- text: PostgreSQL refuses NUL characters in text columns (SQLite stores them), so the
  repositories pass feed-supplied strings through `text_value` on both backends;
- locking: PostgreSQL serialises schema upgrades with an advisory lock and lets
  senders claim an outbox row with `FOR UPDATE SKIP LOCKED`; SQLite has one writer
  at a time anyway (the file lock), so both are no-ops there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import URL, Connection, Engine, Select, Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

# Any constant: the key of the advisory lock schema upgrades take on PostgreSQL.
MIGRATION_LOCK_KEY = 0x63686970  # "chip"


T = TypeVar("T")


class WriteConflict(Exception):
    """Another transaction wrote the same row at the same moment, twice in a row."""


def once_more_on_conflict(work: Callable[[], T]) -> T:
    """Run `work` (its own transaction); where a transaction done at the same moment took
    a unique key first, run it once more on what that one stored; then WriteConflict."""
    for _attempt in range(2):
        try:
            return work()
        except IntegrityError:
            continue
    raise WriteConflict


class Backend(StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"


def backend_of(bind: Engine | Connection | Session) -> Backend:
    dialect_name = bind.get_bind().dialect.name if isinstance(bind, Session) else bind.dialect.name
    return Backend(dialect_name)


def sqlite_file(engine: Engine) -> str | None:
    database = engine.url.database or ""
    if backend_of(engine) is not Backend.SQLITE or database in ("", ":memory:"):
        return None
    return database


def lookup_target(engine: Engine) -> str | None:
    """What the parse workers' `StoreLookup` reads: the SQLite file, or the server as a
    libpq URL (psycopg without SQLAlchemy); None for an in-memory database."""
    if backend_of(engine) is Backend.POSTGRESQL:
        return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    return sqlite_file(engine)


# Seconds a PostgreSQL connection attempt may take. Without it a port where something
# else listens (an HTTP server, a proxy that never answers) held a command for psycopg's
# 130 s per attempt; ten is ample for a server that answers at all.
CONNECT_TIMEOUT_SECONDS = 10


def engine_options(url: URL, *, pre_ping: bool = True) -> dict[str, Any]:
    if url.get_backend_name() != Backend.POSTGRESQL:
        return {}
    options: dict[str, Any] = {"connect_args": connect_args(url)}
    if pre_ping:
        # A connection that died with the server (restart, failover) is replaced, not
        # handed to a stage; cheap next to a poll's work. Not for a worker: a round trip
        # per session, 4-5 per feed job; a job that meets a dead connection fails, the
        # pool drops its connections (SQLAlchemy's disconnect handling) and the job is
        # retried (queue.app.RETRY).
        options["pool_pre_ping"] = True
    return options


def connect_args(url: URL) -> dict[str, Any]:
    """The default connect timeout, unless the user chose one: in the URL's query or in
    libpq's PGCONNECT_TIMEOUT (connect_args would override both)."""
    if "connect_timeout" in url.query or "PGCONNECT_TIMEOUT" in os.environ:
        return {}
    return {"connect_timeout": CONNECT_TIMEOUT_SECONDS}


def configure(engine: Engine) -> None:
    if backend_of(engine) is Backend.SQLITE:
        event.listen(engine, "connect", _sqlite_pragmas)


def _sqlite_pragmas(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the digest read while a poll writes; busy_timeout waits out short locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def text_value(value: str) -> str:
    """A string as a text column takes it on both backends: without NUL characters."""
    return value.replace("\x00", "") if "\x00" in value else value


def placeholder(connection: Connection) -> str:
    """The positional parameter mark of driver SQL (`exec_driver_sql`) on this backend."""
    return "?" if connection.dialect.paramstyle == "qmark" else "%s"


def insert_ignoring_duplicates(
    session: Session, table: Table, rows: Sequence[Mapping[str, object]]
) -> None:
    """Insert the rows; a row that would break a unique constraint is skipped."""
    if not rows:
        return
    module = postgresql if backend_of(session) is Backend.POSTGRESQL else sqlite
    session.execute(module.insert(table).on_conflict_do_nothing(), list(rows))


def upsert(
    session: Session, table: Table, row: Mapping[str, object], update: Sequence[str]
) -> None:
    """Insert the row, or where its primary key is taken set the `update` columns: two
    requests doing the same (a double click) both succeed instead of one meeting the
    unique constraint."""
    module = postgresql if backend_of(session) is Backend.POSTGRESQL else sqlite
    statement = module.insert(table).values(dict(row))
    keys = [column.name for column in table.primary_key.columns]
    session.execute(
        statement.on_conflict_do_update(
            index_elements=keys, set_={name: statement.excluded[name] for name in update}
        )
    )


def lock_for_migration(connection: Connection) -> None:
    """Held until the upgrade's transaction ends (PostgreSQL); SQLite needs none."""
    if backend_of(connection) is Backend.POSTGRESQL:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})


SYNC_LOCK_KEY = 0x73796E63  # "sync": the config's sources written by one process at a time


def serialise_sync(session: Session) -> None:
    """PostgreSQL: wait for any other process syncing the config's sources (workers start
    together on many hosts) until this transaction ends; SQLite's writer lock does it."""
    if backend_of(session) is Backend.POSTGRESQL:
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SYNC_LOCK_KEY})


def claim(query: Select[Any]) -> Select[Any]:
    """Rows one sender works on: others skip them until its transaction ends
    (`FOR UPDATE SKIP LOCKED` on PostgreSQL; SQLAlchemy renders nothing on SQLite)."""
    return query.with_for_update(skip_locked=True)
