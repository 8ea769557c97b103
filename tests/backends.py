"""The database backends the store tests run on: SQLite files and a PostgreSQL server.

Each PostgreSQL test gets a database of its own, created from a template migrated once
per test session and dropped afterwards; every name carries the process id and a random
part, so parallel runs (other worktrees, CI) never share or drop each other's data.
The server is `CHIPWATCH_TEST_POSTGRES_URL` (default: the local one, user postgres,
trust authentication); where none answers, the PostgreSQL cases skip with the reason.
"""

from __future__ import annotations

import functools
import os
import uuid

import psycopg
from psycopg import sql

ADMIN_URL = os.environ.get(
    "CHIPWATCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
BACKENDS = ("sqlite", "postgresql")
PREFIX = f"chipwatch_test_{os.getpid()}_"


def configured_url() -> str:
    """The database_url the current test runs on ("" = the SQLite file in data_dir)."""
    return os.environ.get("CHIPWATCH_DATABASE_URL", "")


@functools.cache
def server_problem() -> str | None:
    """Why no PostgreSQL server can be used (None: it can)."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"no PostgreSQL server at {_where()} ({first_line}); .ci/run starts one"


def _where() -> str:
    return ADMIN_URL.rpartition("@")[2]


def url_of(name: str) -> str:
    base = ADMIN_URL.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"


def new_name(kind: str) -> str:
    return f"{PREFIX}{kind}_{uuid.uuid4().hex[:10]}"


def create_database(name: str, template: str | None = None) -> str:
    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(statement)
    return url_of(name)


def drop_database(name: str) -> None:
    # FORCE: a test may leave its engine's pooled connections open.
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
