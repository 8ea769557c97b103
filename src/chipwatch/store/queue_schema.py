"""Procrastinate's tables beside ours, on PostgreSQL: created by the first command, brought
up to the installed Procrastinate's version by later ones.

They live in a PostgreSQL schema of their own, `procrastinate` (the queue's connections
put it first on their search_path, `queue.app`), so chipwatch's `public` tables and their
migrations never meet them. Procrastinate ships its full schema and one SQL file per
change (`sql/migrations/NN.NN.NN_NN_*.sql`); the version applied is recorded in
`procrastinate.chipwatch_queue_schema`, and an upgrade runs the files of the versions after
it, in order. Everything happens in one transaction under an advisory lock, so two hosts
starting at once neither race nor apply a file twice: the second waits, then finds the
version it would write.
"""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from chipwatch.store import dialect

QUEUE_SCHEMA = "procrastinate"
VERSION_TABLE = f"{QUEUE_SCHEMA}.chipwatch_queue_schema"
QUEUE_LOCK_KEY = 0x71756575  # "queu": the advisory lock of this set-up
_FILE_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)_(\d+)_")


def installed_version() -> str:
    import procrastinate

    return str(procrastinate.__version__)


def ensure_queue_schema(engine: Engine) -> bool:
    """Create or upgrade the queue's schema on PostgreSQL; False on SQLite (no queue).
    A database already at this version costs one query."""
    if dialect.backend_of(engine) is not dialect.Backend.POSTGRESQL:
        return False
    wanted = installed_version()
    with engine.connect() as connection:
        if _recorded_version(connection) == wanted:
            return True
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": QUEUE_LOCK_KEY})
        current = _recorded_version(connection)  # another host may have done it meanwhile
        if current == wanted:
            return True
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {QUEUE_SCHEMA}"))
        connection.execute(text(f"SET LOCAL search_path TO {QUEUE_SCHEMA}"))
        driver = connection.connection.driver_connection
        assert driver is not None
        for script in _scripts(current):
            driver.execute(script)  # no parameters: the files' % signs stay as written
        connection.execute(
            text(f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (version text NOT NULL)")
        )
        connection.execute(text(f"DELETE FROM {VERSION_TABLE}"))
        connection.execute(text(f"INSERT INTO {VERSION_TABLE} VALUES (:v)"), {"v": wanted})
        connection.execute(text("SET LOCAL search_path TO DEFAULT"))
    return True


def _recorded_version(connection: Connection) -> str | None:
    # pg_tables, not to_regclass: after waiting for the lock, to_regclass still answered
    # from the catalog as it was before the other host's commit (seen with two at once).
    exists = connection.execute(
        text("SELECT count(*) FROM pg_tables WHERE schemaname = :schema AND tablename = :name"),
        {"schema": QUEUE_SCHEMA, "name": VERSION_TABLE.partition(".")[2]},
    ).scalar_one()
    if not exists:
        return None
    return connection.execute(text(f"SELECT version FROM {VERSION_TABLE}")).scalar()


def _scripts(current: str | None) -> list[str]:
    """The whole schema on a fresh database; else the migration files after `current`."""
    from procrastinate.schema import SchemaManager

    if current is None:
        return [SchemaManager.get_schema()]
    after = _version_tuple(current)
    files = sorted(Path(SchemaManager.get_migrations_path()).glob("*.sql"))
    return [
        path.read_text(encoding="utf-8")
        for path in files
        if (match := _FILE_VERSION.match(path.name))
        and tuple(int(g) for g in match.groups()[:3]) > after
    ]


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = [int(p) for p in re.findall(r"\d+", version)[:3]]
    return tuple(parts + [0] * (3 - len(parts)))
