"""article_text replaces full_text: config, OPML, CLI, and the migration (SQLite and,
where a server is reachable, PostgreSQL)."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command

from chipwatch.errors import ConfigError
from chipwatch.settings import ArticleSettings, load_settings
from chipwatch.store.db import _alembic_config, open_engine


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "chipwatch.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_article_text_and_the_older_full_text(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "[[sources]]\nurl = 'https://a.test/f'\narticle_text = 'fetch'\n"
        "[[sources]]\nurl = 'https://b.test/f'\nfull_text = true\n"
        "[[sources]]\nurl = 'https://c.test/f'\nfull_text = false\n"
        "[[sources]]\nurl = 'https://d.test/f'\n",
    )
    modes = [s.article_text for s in load_settings(path, environ={}).sources]
    assert modes == ["fetch", "fetch", "feed", ""]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (
            "[[sources]]\nurl = 'https://a.test/f'\narticle_text = 'page'\n",
            "sources[0].article_text",
        ),
        ("[articles]\nper_host_concurrency = 0\n", "articles.per_host_concurrency"),
        ("[articles]\nmax_per_cycle = -1\n", "articles.max_per_cycle"),
        ("[news_search]\ngoogle_news_url = 'news.google.com'\n", "news_search.google_news_url"),
        ("[articles]\nbudget = 3\n", "articles.budget"),
    ],
)
def test_bad_article_settings_name_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, text), environ={})
    assert error.value.field == field


def test_article_settings_from_the_environment(tmp_path: Path) -> None:
    env = {
        "CHIPWATCH_ARTICLES_MAX_PER_CYCLE": "7",
        "CHIPWATCH_NEWS_SEARCH_BING_URL": "http://b.test",
    }
    settings = load_settings(write(tmp_path, ""), environ=env)
    assert settings.articles == ArticleSettings(max_per_cycle=7)
    assert settings.news_search.bing_url == "http://b.test"


def test_cli_feeds_add_refuses_a_bad_mode(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from chipwatch.cli import app

    config = write(tmp_path, f"data_dir = '{tmp_path / 'data'}'\n")
    result = CliRunner().invoke(
        app, ["--config", str(config), "feeds", "add", "https://a.test/f", "--article-text", "x"]
    )
    assert result.exit_code == 2 and "article_text" in result.output


# --- the migration -----------------------------------------------------------------------


def _seed_0001(connection: sa.Connection) -> None:
    for url, full in (("https://a.test/f", True), ("https://b.test/f", False)):
        connection.execute(
            sa.text(
                "INSERT INTO sources (url, name, language, full_text, enabled,"
                " consecutive_errors, created_at) VALUES (:u, '', '', :f, :e, 0, :c)"
            ),
            {"u": url, "f": full, "e": True, "c": "2026-01-01 00:00:00"},
        )


def _check_migration(url: str) -> None:
    engine = sa.create_engine(url)
    config = _alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        _seed_0001(connection)
        command.upgrade(config, "head")
        rows = connection.execute(sa.text("SELECT url, article_text FROM sources ORDER BY url"))
        assert list(rows) == [("https://a.test/f", "fetch"), ("https://b.test/f", None)]
        columns = {c["name"] for c in sa.inspect(connection).get_columns("sources")}
        assert "full_text" not in columns
        assert "fetched_pages" in sa.inspect(connection).get_table_names()
        command.downgrade(config, "0001")
        rows = connection.execute(sa.text("SELECT url, full_text FROM sources ORDER BY url"))
        assert [(u, bool(f)) for u, f in rows] == [
            ("https://a.test/f", True),
            ("https://b.test/f", False),
        ]
    engine.dispose()


def test_migration_on_sqlite(tmp_path: Path) -> None:
    _check_migration(f"sqlite:///{tmp_path / 'm.sqlite3'}")
    fresh = tmp_path / "fresh.sqlite3"
    open_engine(fresh).dispose()
    with sqlite3.connect(fresh) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(articles)")}
    assert "text_kind" in columns


@pytest.fixture
def postgres_url() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL driver comes with issue 11")
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        connection = psycopg.connect(admin, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    name = f"chipwatch_mig_{uuid.uuid4().hex[:8]}"
    connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        connection.close()


def test_migration_on_postgresql(postgres_url: str) -> None:
    _check_migration(postgres_url)


def test_cli_feeds_add_records_the_mode(tmp_path: Path) -> None:
    from feedserver import FeedServer, Item, rss
    from typer.testing import CliRunner

    from chipwatch.cli import app

    config = write(
        tmp_path, f"data_dir = '{tmp_path / 'data'}'\n[fetch]\nallow_private_networks = true\n"
    )
    with FeedServer() as server:
        server.add("/a", rss([Item("A", "http://a.test/1", "a-1", "Text.")]))
        server.add("/b", rss([Item("B", "http://b.test/1", "b-1", "Text.")]))
        runner = CliRunner()
        for path, flags in (("/a", ["--article-text", "fetch"]), ("/b", ["--full-text"])):
            result = runner.invoke(
                app, ["--config", str(config), "feeds", "add", server.url(path), *flags]
            )
            assert result.exit_code == 0, result.output
    with sqlite3.connect(tmp_path / "data" / "chipwatch.sqlite3") as db:
        assert db.execute("SELECT article_text FROM sources ORDER BY id").fetchall() == [
            ("fetch",),
            ("fetch",),
        ]
