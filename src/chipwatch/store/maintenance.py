"""`chipwatch db check` and `chipwatch db backup`: the database looked at, never changed.

Both open an engine without upgrading the schema (`create_engine`), so a check of an old
or damaged database reports what it finds instead of migrating or refusing first.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url, text

from chipwatch.errors import StorageError
from chipwatch.store import faults
from chipwatch.store.db import (
    create_engine,
    current_revision,
    head_revision,
    refuse_unknown_revision,
    schema_problem,
)
from chipwatch.store.dialect import Backend, backend_of
from chipwatch.store.url import normalise_url


@dataclass(frozen=True)
class CheckReport:
    target: str
    backend: Backend
    integrity: str  # "ok", or what PRAGMA integrity_check found (SQLite); "connected" (PostgreSQL)
    revision: str | None
    head: str | None
    schema_problem: str = ""  # tables or columns the revision has and the file lacks

    @property
    def ok(self) -> bool:
        return self.integrity in ("ok", "connected") and not self.schema_problem

    def __str__(self) -> str:
        if self.revision == self.head:
            schema = f"schema revision {self.revision} (current)"
        elif self.revision is None:
            schema = f"no schema yet (the next command creates revision {self.head})"
        else:
            schema = (
                f"schema revision {self.revision} (the next command upgrades it to {self.head})"
            )
        if self.schema_problem:
            schema = f"{schema}; {self.schema_problem}"
        return f"{self.target}: {self.backend} database, integrity {self.integrity}; {schema}"


def check(url: str) -> CheckReport:
    """Integrity (SQLite: PRAGMA integrity_check, whole file) and schema revision; raises
    StorageError where the database cannot be read at all or is of a newer revision."""
    database = _sqlite_file(url)
    if database is not None:  # before the engine: it makes the folder, connecting the file
        require_database_file(database)
    engine = create_engine(url)
    try:
        backend = backend_of(engine)
        with engine.connect() as connection:
            if backend is Backend.SQLITE:
                rows = [r[0] for r in connection.exec_driver_sql("PRAGMA integrity_check")]
                integrity = "ok" if rows == ["ok"] else "; ".join(rows[:5])
            else:
                connection.execute(text("SELECT 1"))
                integrity = "connected"
        revision = current_revision(engine)
        refuse_unknown_revision(engine, revision)
        problem = schema_problem(engine, revision) if backend is Backend.SQLITE else ""
        return CheckReport(
            faults.target_of(engine), backend, integrity, revision, head_revision(), problem
        )
    finally:
        engine.dispose()


DATABASE_HINT = "check data_dir or database_url"  # the settings that name the database


def _sqlite_file(url: str) -> str | None:
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def require_database_file(path: str) -> None:
    """A SQLite database that is not there is reported, not made: SQLite creates a missing
    file on connecting, and a check or a backup must leave the disk as it found it."""
    if Path(path).is_dir():
        raise StorageError(path, "a folder, not a database file", DATABASE_HINT)
    if not Path(path).exists():
        raise StorageError(
            path, "no such database file", f"{DATABASE_HINT} (any other command creates it)"
        )


def backup(url: str, destination: Path) -> Path:
    """A consistent copy of the SQLite database (the backup API: pages copied under a read
    lock, so a poll writing meanwhile is safe), written beside `destination` and renamed
    into place; an existing file is never overwritten."""
    engine = create_engine(url)
    try:
        source = faults.target_of(engine)
        if backend_of(engine) is not Backend.SQLITE:
            raise ValueError("postgresql")
    finally:
        engine.dispose()
    if destination.exists():
        raise FileExistsError(str(destination))
    require_database_file(source)
    partial = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
    try:
        with sqlite3.connect(f"{Path(source).resolve().as_uri()}?mode=ro", uri=True) as src:
            with sqlite3.connect(partial) as dst:
                src.backup(dst)
            dst.close()
        src.close()
        os.replace(partial, destination)
    except sqlite3.Error as exc:
        raise faults.from_db_error(source, exc) from exc
    except OSError as exc:
        raise faults.from_os_error(destination, exc) from exc
    finally:
        partial.unlink(missing_ok=True)
    return destination
