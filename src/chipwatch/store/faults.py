"""Where storage failures become `StorageError`: one line naming the file, and a hint.

The one place at the store's edge that knows the drivers' errors. `install(engine)` hooks
SQLAlchemy's `handle_error` event, so any statement or connection of that engine that
fails for a storage reason (sqlite3/psycopg OperationalError, a plain DatabaseError such
as "file is not a database") raises StorageError instead, wherever it was run. Errors that
are bugs (IntegrityError, ProgrammingError, DataError) are left as they are. `from_os_error`
does the same for the data folder (mkdir, the job lock files).

chipwatch never repairs or rewrites a damaged file: every hint says what the user can do.
"""

from __future__ import annotations

import errno
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import exc as sa_exc

from chipwatch.errors import StorageError

DAMAGED = (
    "it is damaged or not a chipwatch database; chipwatch left it untouched: restore a "
    "backup (`chipwatch db backup PATH` makes one), or move it aside to start a new one"
)
LOCKED = "another process holds a lock on it; try again when that process has finished"
READ_ONLY = (
    "the file or its folder is read-only for this user: give write access to the file, "
    "its folder and the -wal/-shm files next to it"
)
CANNOT_OPEN = (
    "the path cannot be opened as a database file: check that it is a file (not a "
    "folder) and that its folder exists and is writable"
)
FULL = (
    "the disk (or this process's file-size limit) is full: free space and run again; "
    "the failed transaction was rolled back"
)
IO = (
    "a read or write failed: the disk may be full (or a file-size limit reached) or "
    "failing; free space, check `dmesg`, and run again (the failed transaction was rolled back)"
)
SERVER = "the database server does not answer or refused: check database_url and the server"
NEWER = "upgrade chipwatch; an older version never downgrades a database"

# Substrings of the drivers' messages, most specific first (sqlite3 has one class for all).
_HINTS: tuple[tuple[str, str], ...] = (
    ("file is not a database", DAMAGED),
    ("malformed", DAMAGED),
    ("file is encrypted", DAMAGED),
    # A table or column of the schema revision is missing: the schema was edited by hand
    # or by another program (it read as a failing disk).
    ("no such table", DAMAGED),
    ("no such column", DAMAGED),
    ("database or disk is full", FULL),
    ("no space left", FULL),
    ("file too large", FULL),
    ("readonly", READ_ONLY),
    ("read-only", READ_ONLY),
    ("locked", LOCKED),
    ("busy", LOCKED),
    ("unable to open database file", CANNOT_OPEN),
    ("disk i/o error", IO),
    ("connection", SERVER),
    ("could not translate host", SERVER),
    ("failed to resolve host", SERVER),  # psycopg resolves names itself (it read as a disk fault)
)

# Classes that are a bug of ours, not a state of the storage.
_NOT_STORAGE = (sa_exc.IntegrityError, sa_exc.ProgrammingError, sa_exc.DataError)


def target_of(engine: Engine) -> str:
    """What the messages name: the SQLite file, or the server URL without its password."""
    if engine.dialect.name == "sqlite":
        return engine.url.database or ":memory:"
    return engine.url.render_as_string(hide_password=True)


def hint_for(message: str) -> str:
    lowered = message.lower()
    for needle, hint in _HINTS:
        if needle in lowered:
            return hint
    return IO


def from_db_error(target: str, exc: BaseException) -> StorageError:
    original = getattr(exc, "orig", None) or exc
    problem = " ".join(str(original).split())[:300] or type(original).__name__
    return StorageError(target, problem, hint_for(problem))


def is_storage_error(exc: BaseException) -> bool:
    if isinstance(exc, _NOT_STORAGE):
        return False
    return isinstance(exc, sa_exc.OperationalError | sa_exc.DatabaseError)


def from_os_error(path: object, exc: OSError) -> StorageError:
    """The data folder: a mkdir or a lock file that failed."""
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        hint = READ_ONLY
    elif exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        hint = FULL
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
        hint = "a part of the path is a file where chipwatch needs a folder (or the reverse)"
    else:
        hint = IO
    return StorageError(str(path), exc.strerror or str(exc), hint)


def install(engine: Engine) -> None:
    """Every storage failure of this engine's statements and connections as StorageError."""
    target = target_of(engine)

    def translate(context: Any) -> None:
        exc = context.sqlalchemy_exception
        if exc is not None and is_storage_error(exc):
            raise from_db_error(target, exc) from exc

    event.listen(engine, "handle_error", translate)
