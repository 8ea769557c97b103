"""The database: Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from chipwatch.store.db import open_engine
from chipwatch.store.models import Base
from chipwatch.store.search import include_name


def test_migrations_match_the_models(tmp_path: Path) -> None:
    engine = open_engine(tmp_path / "chipwatch.sqlite3")
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": include_name})
        differences = compare_metadata(context, Base.metadata)
    assert differences == [], "models changed without a migration: " + repr(differences)


def test_opening_twice_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "chipwatch.sqlite3"
    open_engine(path).dispose()
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO sources (url, name, language, article_text, enabled, consecutive_errors,"
            " created_at) VALUES ('https://example.org/feed', 'x', '', 'feed', 1, 0, '2026-01-01')"
        )
    engine = open_engine(path)  # already at head: nothing to do, nothing lost
    assert "sources" in inspect(engine).get_table_names()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM sources").fetchone() == (1,)


def test_database_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = open_engine(tmp_path / "chipwatch.sqlite3")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
