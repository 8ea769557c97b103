"""The database on both backends: the migrations build exactly the schema the models
describe, from an empty database and from every earlier revision, and keep the data."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from backends import create_database, drop_database, new_name
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    func,
    insert,
    select,
)

from chipwatch.errors import ConfigError
from chipwatch.settings import load_settings
from chipwatch.store.db import (
    MIGRATIONS_DIR,
    create_engine,
    current_revision,
    head_revision,
    open_database,
    upgrade,
)
from chipwatch.store.dialect import Backend
from chipwatch.store.models import ArticleRow, Base
from chipwatch.store.search import include_name
from chipwatch.store.sources import add_source, get_source, remove_source
from chipwatch.store.url import DatabaseUrlError, normalise_url
from chipwatch.types import Article

WHEN = datetime(2026, 1, 1, 12, 0, 0)


@pytest.fixture
def url(database_url: str, tmp_path: Path) -> str:
    """The database of this test: a SQLite file in tmp_path or a fresh PostgreSQL one."""
    return database_url or f"sqlite:///{tmp_path / 'data' / 'chipwatch.sqlite3'}"


@pytest.fixture
def empty_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A database with no schema at all (the template copies are migrated already)."""
    if not database_url:
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    name = new_name("empty")
    yield create_database(name)
    drop_database(name)


def _differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": include_name})
        return list(compare_metadata(context, Base.metadata))


def test_migrations_match_the_models(empty_url: str) -> None:
    database = open_database(empty_url)
    assert current_revision(database.engine) == head_revision()
    assert _differences(database.engine) == [], "models changed without a migration"
    database.dispose()


def _revisions() -> list[str]:
    """Every revision, oldest first."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return [
        script.revision
        for script in reversed(list(ScriptDirectory.from_config(config).walk_revisions()))
    ]


@pytest.mark.parametrize("start", _revisions())
def test_upgrade_from_every_earlier_revision_keeps_the_data(empty_url: str, start: str) -> None:
    """A database left at `start` with a row in every table reaches head with all rows."""
    engine = create_engine(empty_url)
    upgrade(engine, start)
    assert current_revision(engine) == start
    counts = _seed_every_table(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert _differences(engine) == []
    with engine.connect() as connection:
        tables = MetaData()
        tables.reflect(connection)
        after = {
            name: connection.scalar(select(func.count()).select_from(tables.tables[name]))
            for name in counts
        }
    assert after == counts
    engine.dispose()


def _seed_every_table(engine: Engine) -> dict[str, int]:
    """One row per table of the schema as it is at this revision (parents first)."""
    tables = MetaData()
    with engine.begin() as connection:
        tables.reflect(connection)
        for table in tables.sorted_tables:
            if table.name == "alembic_version" or not include_name(table.name, "table"):
                continue  # the full-text index is filled by triggers
            row: dict[str, object] = {}
            for column in table.columns:
                if column.foreign_keys:
                    row[column.name] = 1  # the parent's first row, seeded before
                elif column.primary_key and isinstance(column.type, Integer):
                    continue  # generated
                elif not column.nullable and column.server_default is None:
                    row[column.name] = _sample(column.type)
            connection.execute(insert(table), [row])
    return {
        t.name: 1
        for t in tables.sorted_tables
        if t.name != "alembic_version" and include_name(t.name, "table")
    }


def _sample(kind: object) -> object:
    samples: list[tuple[type, object]] = [
        (Boolean, True),
        (Integer, 1),
        (Float, 0.5),
        (DateTime, WHEN),
        (LargeBinary, b"x"),
        (JSON, []),
        (String, "x"),
        (Text, "x"),
    ]
    for cls, value in samples:
        if isinstance(kind, cls):
            return value
    raise AssertionError(f"no sample value for column type {kind!r}: add one")


def test_opening_twice_keeps_the_data(url: str) -> None:
    first = open_database(url)
    with first.write() as session:
        add_source(session, "https://example.org/feed", "x", now=WHEN)
    first.dispose()
    again = open_database(url)  # already at head: nothing to do, nothing lost
    with again.read() as session:
        row = get_source(session, "https://example.org/feed")
        assert row is not None and row.name == "x"
    again.dispose()


def test_foreign_keys_hold_on_both_backends(url: str) -> None:
    """Removing a feed keeps its articles (source_id becomes NULL): the ON DELETE rule
    only acts where foreign keys are enforced (a PRAGMA on SQLite)."""
    database = open_database(url)
    with database.write() as session:
        source, _ = add_source(session, "https://example.org/feed", now=WHEN)
        session.add(
            ArticleRow(
                identity="guid:1",
                content_hash="0" * 64,
                source_id=source.id,
                title="t",
                text="x",
                published_at=WHEN,
                fetched_at=WHEN,
            )
        )
    with database.write() as session:
        assert remove_source(session, "https://example.org/feed")
    with database.read() as session:
        assert session.scalars(select(ArticleRow.source_id)).all() == [None]
    database.dispose()


def test_backend_is_told_by_the_url(url: str, database_url: str) -> None:
    database = open_database(url)
    expected = Backend.POSTGRESQL if database_url else Backend.SQLITE
    assert database.backend is expected
    # The file the SQLite lookups and backups read; a server has none.
    assert (database.sqlite_file is None) == (expected is Backend.POSTGRESQL)
    database.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "chipwatch.sqlite3"
    database = open_database(f"sqlite:///{path}")
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    database.dispose()
    with sqlite3.connect(path) as db:  # a plain file any sqlite3 tool can read
        assert db.execute("SELECT count(*) FROM sources").fetchone() == (0,)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://postgres@127.0.0.1/chip", "postgresql+psycopg://postgres@127.0.0.1/chip"),
        ("postgres://u:p@db.example:5433/chip", "postgresql+psycopg://u:p@db.example:5433/chip"),
        ("postgresql+psycopg://h/chip", "postgresql+psycopg://h/chip"),
        ("sqlite:////var/lib/chipwatch/c.sqlite3", "sqlite:////var/lib/chipwatch/c.sqlite3"),
        ("  sqlite:///relative.sqlite3 ", "sqlite:///relative.sqlite3"),
    ],
)
def test_database_urls_are_normalised(given: str, expected: str) -> None:
    assert normalise_url(given) == expected


@pytest.mark.parametrize(
    ("given", "complaint"),
    [
        ("mysql://h/chip", "unsupported database 'mysql'"),
        ("postgresql://h", "must name the database"),
        ("postgresql+psycopg2://h/chip", "unsupported database"),
        ("sqlite://", "needs a file"),
        ("/var/lib/chip.sqlite3", "expected sqlite:///PATH"),
    ],
)
def test_bad_database_urls_are_refused(given: str, complaint: str) -> None:
    with pytest.raises(DatabaseUrlError, match=complaint):
        normalise_url(given)


def test_database_url_setting_from_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "chipwatch.toml"
    config.write_text('database_url = "postgresql://postgres@127.0.0.1:5432/from_file"\n')
    from_file = load_settings(config, environ={})
    assert from_file.store_url == "postgresql+psycopg://postgres@127.0.0.1:5432/from_file"
    from_env = load_settings(
        config, environ={"CHIPWATCH_DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"}
    )
    assert from_env.store_url == f"sqlite:///{tmp_path / 'x.sqlite3'}"
    config.write_text("")
    default = load_settings(config, environ={})
    assert default.store_url == f"sqlite:///{default.data_dir / 'chipwatch.sqlite3'}"
    with pytest.raises(ConfigError) as refused:
        load_settings(config, environ={"CHIPWATCH_DATABASE_URL": "mysql://h/chip"})
    assert refused.value.source == "CHIPWATCH_DATABASE_URL"
    assert refused.value.field == "database_url"


def test_articles_round_trip_on_both_backends(url: str) -> None:
    """Dedupe driver SQL (placeholders differ per driver) finds what was stored, and a
    NUL character from a feed (refused by PostgreSQL's text columns) is dropped."""
    from chipwatch.store.articles import filter_new, insert_new

    article = Article(
        identity="guid:round-trip",
        source_url="https://example.org/feed",
        url="https://example.org/a",
        title="Licences for\x00 lithography tools",
        text="The ministry narrowed\x00 the exemptions.",
        published=WHEN,
        fetched_at=WHEN,
        language="en",
        content_hash="f" * 64,
    )
    database = open_database(url)
    with database.write() as session:
        assert len(insert_new(session, [article, article], source_id=None)) == 1
    with database.read() as session:
        assert filter_new(session, [article]) == []
        stored = session.execute(select(ArticleRow.title, ArticleRow.text)).one()
    assert tuple(stored) == (
        "Licences for lithography tools",
        "The ministry narrowed the exemptions.",
    )
    database.dispose()


def test_a_label_or_mark_written_twice_is_one_row_on_both_backends(url: str) -> None:
    """Label, star and story marks are written as "insert or update" (two requests of a
    double click must not meet the primary key); undo restores on both backends."""
    from chipwatch.store.labels import get_label, relabel, undo_last
    from chipwatch.store.review import mark_story, marks_of, set_mark, story_marks
    from chipwatch.store.users import add_user

    database = open_database(url)
    with database.write() as session:
        session.add(
            ArticleRow(
                identity="guid:marks", content_hash="1" * 64, title="t", text="x",
                published_at=WHEN, fetched_at=WHEN,
            )
        )  # fmt: skip
        user = add_user(session, "reader", "not-a-real-hash", "reader@example.org", WHEN)
        assert user is not None
        user_id = user.id
    with database.write() as session:
        article_id = session.scalars(select(ArticleRow.id)).one()
        for on in (True, True, False, True):
            set_mark(session, user_id, [article_id], "starred", on, WHEN)
        set_mark(session, user_id, [article_id], "read", True, WHEN)
        for state in ("mute", "follow", "follow"):
            mark_story(session, user_id, [article_id], state, WHEN)
        relabel(session, article_id, True, ["security-debate"], "reader", WHEN)
        relabel(session, article_id, False, [], "reader", WHEN)
    with database.write() as session:
        marks = marks_of(session, user_id, [article_id])
        assert marks.starred == {article_id} and marks.read == {article_id}
        assert story_marks(session, user_id) == {article_id: "follow"}
        label = get_label(session, article_id)
        assert label is not None and (label.relevant, label.topics) == (False, ())
        assert undo_last(session, article_id, "reader")
    with database.write() as session:
        label = get_label(session, article_id)
        assert label is not None and label.topics == ("security-debate",)
        assert undo_last(session, article_id, "reader")
    with database.read() as session:
        assert get_label(session, article_id) is None
    database.dispose()


def test_the_stages_build_no_sql() -> None:
    """Outside store/, SQLAlchemy is only the Session type (a transaction handed to the
    repositories), and the models only their enums: every query sits behind store/."""
    import ast

    source = Path(__file__).resolve().parents[1] / "src" / "chipwatch"
    allowed = {"sqlalchemy.orm": {"Session", "sessionmaker"}}
    offenders = []
    for path in sorted(source.rglob("*.py")):
        if "store" in path.relative_to(source).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [(alias.name, "*") for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [(node.module, alias.name) for alias in node.names]
            else:
                continue
            for module, name in names:
                if module.startswith("sqlalchemy") and name not in allowed.get(module, set()):
                    offenders.append(f"{path.name}: {module}.{name}")
                if module == "chipwatch.store.models" and not name.endswith(("Kind", "Status")):
                    offenders.append(f"{path.name}: {module}.{name}")
    assert offenders == []


def test_an_unreachable_database_is_one_line_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chipwatch_cli import run_chipwatch

    config = tmp_path / "chipwatch.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    monkeypatch.setenv("CHIPWATCH_DATABASE_URL", "postgresql://watch:secret@127.0.0.1:9/chip")
    listed = run_chipwatch(config, "feeds", "list")
    assert listed.returncode == 5  # storage: the database cannot be reached
    assert "Traceback" not in listed.stderr
    (line,) = listed.stderr.strip().splitlines()
    assert "postgresql+psycopg://watch:***@127.0.0.1:9/chip" in line
    assert "secret" not in line
