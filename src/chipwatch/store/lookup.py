"""Which article keys are stored already: the SQL shared by the writer and the workers.

Plain `sqlite3`, no SQLAlchemy: the parse workers import this module, and each import
they avoid is CPU and memory in every worker of every pool. The table and column names
are the `articles` table's (`store.models.ArticleRow`; tests/test_store.py checks them).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

ARTICLES_TABLE = "articles"
KEY_COLUMNS = ("identity", "url", "content_hash")
PARAMS_PER_QUERY = 900  # SQLite's oldest default cap is 999 bound parameters

RowFetcher = Callable[[str, tuple[str, ...]], Sequence[Sequence[str | None]]]


def present_keys(
    fetch_rows: RowFetcher,
    identities: Iterable[str] = (),
    urls: Iterable[str | None] = (),
    hashes: Iterable[str | None] = (),
    *,
    placeholder: str = "?",
) -> tuple[set[str], set[str], set[str]]:
    """The identities, URLs and content hashes among those given that are stored already.

    `fetch_rows(sql, params)` runs one statement and returns its rows: the writer's
    session (`_present`) or a parse worker's read-only connection (`StoreLookup`) share
    this SQL. One statement per chunk for the three kinds (`identity IN (..) OR url IN
    (..) OR content_hash IN (..)`, each term on its index), written as driver SQL: these
    checks run for every feed of a poll, and building three ORM `IN` queries per check
    cost more CPU than SQLite answering them. Every value a matching row holds is
    stored, so the rows' three columns can be taken whole. `placeholder` is the driver's
    positional mark (`store.dialect.placeholder`: `?` for sqlite3, `%s` for psycopg)."""
    wanted = [
        sorted(set(identities)),
        sorted({u for u in urls if u}),
        sorted({h for h in hashes if h}),
    ]
    found: tuple[set[str], set[str], set[str]] = (set(), set(), set())
    per_kind = PARAMS_PER_QUERY // 3
    for start in range(0, max(map(len, wanted)), per_kind):
        chunks = [values[start : start + per_kind] for values in wanted]
        terms = [
            f"{column} IN ({','.join([placeholder] * len(chunk))})"
            for column, chunk in zip(KEY_COLUMNS, chunks, strict=True)
            if chunk
        ]
        sql = f"SELECT {', '.join(KEY_COLUMNS)} FROM {ARTICLES_TABLE} WHERE {' OR '.join(terms)}"
        rows = fetch_rows(sql, tuple(v for c in chunks for v in c))
        for values, column in zip(found, zip(*rows, strict=True), strict=False):
            values.update(column)
    for values in found:
        values.discard(None)  # NULL url or content_hash
    return found


class StoreLookup:
    """Read-only "already stored?" checks on the SQLite file, for the parse workers.

    A worker asks before the costly per-entry steps (plain text, hash, language), so a
    changed feed, mostly old entries, costs little more than its parse. It is only a
    shortcut: the writer checks again before inserting (another feed may have stored the
    same story since), and any error here means "nothing is known to be stored"."""

    def __init__(self, database_path: str) -> None:
        self.database_path = database_path
        self._connection: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None

    def present(
        self,
        identities: Iterable[str] = (),
        urls: Iterable[str | None] = (),
        hashes: Iterable[str | None] = (),
    ) -> tuple[set[str], set[str], set[str]]:
        try:
            self._ensure_open()
            return present_keys(self._fetch_rows, identities, urls, hashes)
        except (sqlite3.Error, OSError):
            self.close()  # reopened by the next check
            return set(), set(), set()

    def _ensure_open(self) -> None:
        # A file replaced at the same path (restored backup, new data dir) must not be
        # answered from the old one: "stored" there would drop articles never stored.
        stat = os.stat(self.database_path)
        if self._connection is not None and self._file != (stat.st_dev, stat.st_ino):
            self.close()
        if self._connection is None:
            self._connection = self._open()
            self._file = (stat.st_dev, stat.st_ino)

    def _fetch_rows(self, sql: str, params: tuple[str, ...]) -> list[Any]:
        assert self._connection is not None
        return self._connection.execute(sql, params).fetchall()

    def _open(self) -> sqlite3.Connection:
        # mode=rw: never create a file where the database should be. WAL (set by the
        # writer's engine): readers neither wait for nor block it.
        uri = f"{Path(self.database_path).resolve().as_uri()}?mode=rw"
        connection = sqlite3.connect(uri, uri=True, timeout=5, check_same_thread=False)
        connection.execute("PRAGMA query_only=ON")
        return connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
