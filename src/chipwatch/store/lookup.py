"""Which article keys are stored already: the SQL shared by the writer and the workers.

Plain `sqlite3`, or psycopg imported only when the store is PostgreSQL; no SQLAlchemy:
the parse workers import this module, and each import they avoid is CPU and memory in
every worker of every pool. The table and column names are the `articles` table's
(`store.models.ArticleRow`; tests/test_collect.py checks them).
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

RowFetcher = Callable[[str, tuple[Any, ...]], Sequence[Sequence[str | None]]]


def present_keys(
    fetch_rows: RowFetcher,
    identities: Iterable[str] = (),
    urls: Iterable[str | None] = (),
    hashes: Iterable[str | None] = (),
    *,
    arrays: bool = False,
) -> tuple[set[str], set[str], set[str]]:
    """The identities, URLs and content hashes among those given that are stored already.

    `fetch_rows(sql, params)` runs one statement and returns its rows: the writer's
    session (`_present`) or a parse worker's read-only connection (`StoreLookup`) share
    this SQL. One statement per chunk for the three kinds (`identity IN (..) OR url IN
    (..) OR content_hash IN (..)`, each term on its index), written as driver SQL: these
    checks run for every feed of a poll, and building three ORM `IN` queries per check
    cost more CPU than SQLite answering them. Every value a matching row holds is
    stored, so the rows' three columns can be taken whole.

    `arrays` (PostgreSQL, psycopg): one `= ANY(%s)` array parameter per kind instead of
    `?` lists in chunks, one SELECT per kind joined by UNION ALL. The statement's text
    then depends only on which kinds are asked, so psycopg prepares it once per
    connection and the server skips parsing and planning a new IN list for every feed."""
    wanted = [
        sorted(set(identities)),
        sorted({u for u in urls if u}),
        sorted({h for h in hashes if h}),
    ]
    found: tuple[set[str], set[str], set[str]] = (set(), set(), set())
    if arrays:
        asked = [(c, v) for c, v in zip(KEY_COLUMNS, wanted, strict=True) if v]
        if asked:
            # UNION ALL, not OR: on a table without statistics yet (a first poll) the
            # planner scans it either way, and three single-column scans cost a third
            # of one three-column OR (measured on 6,000 rows: ~1.4 vs ~4.3 ms).
            sql = " UNION ALL ".join(
                f"SELECT {', '.join(KEY_COLUMNS)} FROM {ARTICLES_TABLE} WHERE {column} = ANY(%s)"
                for column, _ in asked
            )
            _collect(found, fetch_rows(sql, tuple(values for _, values in asked)))
        return _without_null(found)
    per_kind = PARAMS_PER_QUERY // 3
    for start in range(0, max(map(len, wanted)), per_kind):
        chunks = [values[start : start + per_kind] for values in wanted]
        terms = [
            f"{column} IN ({','.join('?' * len(chunk))})"
            for column, chunk in zip(KEY_COLUMNS, chunks, strict=True)
            if chunk
        ]
        sql = f"SELECT {', '.join(KEY_COLUMNS)} FROM {ARTICLES_TABLE} WHERE {' OR '.join(terms)}"
        _collect(found, fetch_rows(sql, tuple(v for c in chunks for v in c)))
    return _without_null(found)


Found = tuple[set[str], set[str], set[str]]


def _collect(found: Found, rows: Sequence[Sequence[Any]]) -> None:
    for values, column in zip(found, zip(*rows, strict=True), strict=False):
        values.update(column)


def _without_null(
    found: tuple[set[str], set[str], set[str]],
) -> tuple[set[str], set[str], set[str]]:
    for values in found:
        values.discard(None)  # NULL url or content_hash
    return found


POSTGRES_PREFIX = "postgresql://"


class StoreLookup:
    """Read-only "already stored?" checks for the parse workers: on the SQLite file, or
    on a PostgreSQL server (`target` a `postgresql://` libpq URL, `lookup_target`).

    A worker asks before the costly per-entry steps (plain text, hash, language), so a
    changed feed, mostly old entries, costs little more than its parse. It is only a
    shortcut: the writer checks again before inserting (another feed may have stored the
    same story since), and any error here means "nothing is known to be stored"."""

    def __init__(self, target: str) -> None:
        self.database_path = target
        self._postgres = target.startswith(POSTGRES_PREFIX)
        self._connection: Any = None
        self._file: tuple[int, int] | None = None
        self._errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)

    def present(
        self,
        identities: Iterable[str] = (),
        urls: Iterable[str | None] = (),
        hashes: Iterable[str | None] = (),
    ) -> tuple[set[str], set[str], set[str]]:
        try:
            self._ensure_open()
            return present_keys(self._fetch_rows, identities, urls, hashes, arrays=self._postgres)
        except self._errors:
            self.close()  # reopened by the next check
            return set(), set(), set()

    def _ensure_open(self) -> None:
        if self._postgres:
            if self._connection is None:
                self._connection = self._open_postgres()
            return
        # A file replaced at the same path (restored backup, new data dir) must not be
        # answered from the old one: "stored" there would drop articles never stored.
        stat = os.stat(self.database_path)
        if self._connection is not None and self._file != (stat.st_dev, stat.st_ino):
            self.close()
        if self._connection is None:
            self._connection = self._open()
            self._file = (stat.st_dev, stat.st_ino)

    def _fetch_rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        assert self._connection is not None
        return self._connection.execute(sql, params).fetchall()

    def _open_postgres(self) -> Any:
        try:
            import psycopg
        except ImportError as exc:  # no driver: no shortcut
            raise OSError(str(exc)) from exc
        self._errors = (sqlite3.Error, OSError, psycopg.Error)
        # Autocommit: each check sees what the writer committed so far; read-only, so a
        # mistake here can never write.
        return psycopg.connect(
            self.database_path,
            autocommit=True,
            connect_timeout=5,
            options="-c default_transaction_read_only=on",
        )

    def _open(self) -> sqlite3.Connection:
        # mode=rw: never create a file where the database should be. WAL (set by the
        # writer's engine): readers neither wait for nor block it.
        uri = f"{Path(self.database_path).resolve().as_uri()}?mode=rw"
        connection = sqlite3.connect(uri, uri=True, timeout=5, check_same_thread=False)
        connection.execute("PRAGMA query_only=ON")
        return connection

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None
