"""The poll pipeline end to end: loopback HTTP server -> a SQLite file in tmp_path, or a
fresh PostgreSQL database (each store test runs on both; see conftest.py)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from feedserver import FeedServer, Item, rss
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from chipwatch.collect import ParsePool, PollReport, discover_feed_url, poll
from chipwatch.errors import ParseError
from chipwatch.settings import FetchSettings, PollSettings, Settings
from chipwatch.store import lookup
from chipwatch.store.articles import insert_articles
from chipwatch.store.db import open_database
from chipwatch.store.dialect import lookup_target
from chipwatch.store.models import ArticleRow, SourceRow
from chipwatch.store.sources import add_source, feed_health
from chipwatch.types import Source
from chipwatch.worker import DocumentJob, process_document

NOW = datetime(2025, 3, 5, 12, 0, 0)
ITEMS = [
    Item("Chip export licences tightened", "http://news.test/a?utm_source=rss", "g-a",
         "The ministry narrowed the licence exemptions for advanced lithography tools."),
    Item("New rules for memory chips", "http://news.test/b", "g-b",
         "Exporters of high-bandwidth memory must now file a notice before each shipment."),
]  # fmt: skip


@pytest.fixture(scope="module")
def pool() -> Iterator[ParsePool]:
    parse_pool = ParsePool(workers=2)
    yield parse_pool
    parse_pool.close()


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        yield running


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        config_path=tmp_path / "chipwatch.toml",
        config_dir=tmp_path,
        data_dir=tmp_path / "data",
        topics_path=tmp_path / "topics.toml",
        corpus_dir=tmp_path / "corpus",
        fetch=FetchSettings(allow_private_networks=True, deadline_seconds=5),
        poll=PollSettings(max_consecutive_errors=3),
        database_url=database_url,
    )


@pytest.fixture
def sessions(settings: Settings) -> sessionmaker[Session]:
    return open_database(settings.store_url).sessions


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """For what only exists on SQLite: the parse workers' read-only lookup of the file."""
    return Settings(
        config_path=tmp_path / "chipwatch.toml",
        config_dir=tmp_path,
        data_dir=tmp_path / "data",
        topics_path=tmp_path / "topics.toml",
        corpus_dir=tmp_path / "corpus",
    )


@pytest.fixture
def sqlite_sessions(sqlite_settings: Settings) -> sessionmaker[Session]:
    return open_database(sqlite_settings.store_url).sessions


def run_poll(
    settings: Settings, sessions: sessionmaker[Session], pool: ParsePool, now: datetime = NOW
) -> PollReport:
    return asyncio.run(poll(settings, sessions, all_feeds=True, now=now, pool=pool))


def add(sessions: sessionmaker[Session], url: str, **options: object) -> int:
    with sessions.begin() as session:
        row, _ = add_source(session, url, **options)  # type: ignore[arg-type]
        return row.id


def source(sessions: sessionmaker[Session], source_id: int) -> SourceRow:
    with sessions() as session:
        row = session.get(SourceRow, source_id)
        assert row is not None
        return row


def articles(sessions: sessionmaker[Session]) -> list[ArticleRow]:
    with sessions() as session:
        return list(session.scalars(select(ArticleRow).order_by(ArticleRow.id)))


def test_new_articles_then_304(server, settings, sessions, pool) -> None:
    server.add("/feed", rss(ITEMS), etag='"one"')
    feed_id = add(sessions, server.url("/feed"))
    first = run_poll(settings, sessions, pool)
    assert first.new_articles == 2 and first.feeds[0].status == "new"
    stored = articles(sessions)
    assert [a.id for a in stored] == list(first.new_article_ids)
    assert stored[0].url == "http://news.test/a"  # utm_source dropped
    assert stored[0].language == "en" and stored[0].source_id == feed_id
    assert source(sessions, feed_id).etag == '"one"'

    second = run_poll(settings, sessions, pool, NOW + timedelta(hours=1))
    assert second.feeds[0].status == "not-modified" and second.new_articles == 0
    assert server.request_headers["/feed"]["If-None-Match"] == '"one"'
    assert len(articles(sessions)) == 2


def test_an_entry_with_a_malformed_link_costs_the_feed_nothing(
    server, settings, sessions, pool
) -> None:
    odd = [
        Item("Licence rules for wafer tools", "http://[::1", "g-odd",
             "An entry whose link no URL parser accepts: an unclosed IPv6 literal."),
        Item("Port out of range", "http://news.test:99999/c", "g-port",
             "Another link that cannot be used, on a port that cannot exist."),
    ]  # fmt: skip
    server.add("/feed", rss([*odd, *ITEMS]))
    add(sessions, server.url("/feed"))
    report = run_poll(settings, sessions, pool)
    assert report.feeds[0].status == "new", report.feeds[0]
    stored = {a.title: a.url for a in articles(sessions)}
    assert len(stored) == 4  # the odd ones kept, without a link
    assert stored["Licence rules for wafer tools"] is None
    assert stored["Port out of range"] is None
    assert stored["New rules for memory chips"] == "http://news.test/b"


def test_changed_guids_do_not_duplicate(server, settings, sessions, pool) -> None:
    server.add("/feed", rss(ITEMS))
    add(sessions, server.url("/feed"))
    run_poll(settings, sessions, pool)
    renamed = [replace(item, guid=f"new-{item.guid}") for item in ITEMS]
    server.add("/feed", rss(renamed))
    report = run_poll(settings, sessions, pool, NOW + timedelta(hours=1))
    assert report.new_articles == 0 and len(articles(sessions)) == 2
    # no link and a new GUID: the content hash still recognises it
    no_links = [replace(item, guid=f"third-{item.guid}", link=None) for item in ITEMS]
    server.add("/feed", rss(no_links))
    assert run_poll(settings, sessions, pool, NOW + timedelta(hours=2)).new_articles == 0


def test_one_story_in_many_feeds_of_one_poll_is_stored_once(
    server, settings, sessions, pool
) -> None:
    # Feeds finishing together are checked and written as one batch: each story must
    # still be stored once, by the first feed written, whatever the batching.
    for i in range(8):
        own = Item(f"Story only feed {i} carries", f"http://news.test/own/{i}", f"own-{i}",
                   "A story of its own, long enough to count as a content hash.")  # fmt: skip
        server.add(f"/feed{i}", rss([*ITEMS, own]))
        add(sessions, server.url(f"/feed{i}"))
    report = run_poll(settings, sessions, pool)
    stored = articles(sessions)
    assert report.new_articles == len(stored) == 2 + 8
    assert sorted(a.url for a in stored if "/own/" not in (a.url or "")) == [
        "http://news.test/a",
        "http://news.test/b",
    ]
    assert sum(f.new_articles for f in report.feeds) == 10


def _document_job(body: bytes, store_path: str | None) -> DocumentJob:
    feed = Source(id=1, url="http://feed.test/rss", name="feed")
    return DocumentJob(feed, body, "application/rss+xml", feed.url, NOW, 100, 10_000, 10.0,
                       store_path=store_path)  # fmt: skip


def test_worker_extracts_only_what_is_not_stored(settings, sessions, database_url) -> None:
    # Stored: item a (by GUID); item b under another GUID and URL but the same text.
    first = process_document(_document_job(rss(ITEMS), None))
    assert first.entries == 2 and [a.language for a in first.articles] == ["en", "en"]
    same_text = replace(first.articles[1], identity="guid:1:elsewhere", url="http://x.test/")
    with sessions.begin() as session:
        insert_articles(session, [first.articles[0], same_text], source_id=None)
    third = Item("Foundry output rises", "http://news.test/c", "g-c",
                 "A third story that nobody has stored yet, about wafer output.")  # fmt: skip
    body = rss([*ITEMS, third])

    # What the poll hands the workers: the SQLite file, or the PostgreSQL server's URL.
    target = lookup_target(open_database(settings.store_url).engine)
    assert target == (database_url.replace("+psycopg", "") or str(settings.database_path))
    result = process_document(_document_job(body, target))
    assert result.entries == 3
    assert [a.url for a in result.articles] == ["http://news.test/c"]
    assert result.articles[0].language == "en"
    # Without the store (or with an unreadable one) every entry is extracted: the
    # writer's own check then decides.
    assert len(process_document(_document_job(body, None)).articles) == 3
    broken = settings.data_dir / "not-a-database.db"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"this is not SQLite" * 100)
    assert len(process_document(_document_job(body, str(broken))).articles) == 3
    no_server = "postgresql://postgres@127.0.0.1:9/none?connect_timeout=2"
    assert len(process_document(_document_job(body, no_server)).articles) == 3


def test_store_lookup_follows_the_file_and_never_creates_one(
    sqlite_settings, sqlite_sessions
) -> None:
    settings, sessions = sqlite_settings, sqlite_sessions
    stored = process_document(_document_job(rss(ITEMS), None)).articles[0]
    with sessions.begin() as session:
        insert_articles(session, [stored], source_id=None)
    path = settings.database_path
    check = lookup.StoreLookup(str(path))
    assert check.present([stored.identity])[0] == {stored.identity}
    # Another database moved to the same path: answered from it, not from the old one.
    other = settings.data_dir / "other.db"
    open_database(f"sqlite:///{other}").sessions().close()  # its engine stays open
    other.replace(path)
    assert check.present([stored.identity]) == (set(), set(), set())
    # No file at all: nothing is known to be stored, and no empty file appears.
    path.unlink()
    assert check.present([stored.identity]) == (set(), set(), set())
    assert not path.exists()


def test_parse_workers_import_neither_http_nor_database_drivers() -> None:
    # The forkserver preloads chipwatch.worker; every import it carries is paid by each
    # worker of each poll, in CPU and in memory.
    heavy = "{'httpx', 'sqlalchemy', 'psycopg'}"
    code = f"import sys, chipwatch.worker; print(sorted({heavy} & set(sys.modules)))"
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


def test_lookup_names_the_articles_table_and_its_key_columns() -> None:
    assert ArticleRow.__tablename__ == lookup.ARTICLES_TABLE
    assert all(column in ArticleRow.__table__.columns for column in lookup.KEY_COLUMNS)


def test_filter_new_many_in_order_sees_the_groups_before(sessions) -> None:
    from chipwatch.store.articles import filter_new_many, insert_new
    from chipwatch.types import Article

    def article(key: str, url: str | None, text: str) -> Article:
        return Article(f"guid:1:{key}", "http://feed.test/", url, "t", text, NOW, NOW, "en",
                       content_hash=f"h-{text}")  # fmt: skip

    long = "x" * 50
    with sessions.begin() as session:
        insert_new(session, [article("old", "http://n.test/old", long + "old")], source_id=None)
    first = [article("a", "http://n.test/a", long + "a"), article("old2", "http://n.test/old", "")]
    second = [
        article("b", "http://n.test/a", long + "b"),  # same URL as the first group's
        article("c", None, long + "a"),  # same content hash as the first group's
        article("d", "http://n.test/d", long + "d"),
    ]
    with sessions() as session:
        apart = filter_new_many(session, [first, second])
        in_order = filter_new_many(session, [first, second], in_order=True)
    assert [[a.identity for a in g] for g in apart] == [
        ["guid:1:a"],
        ["guid:1:b", "guid:1:c", "guid:1:d"],
    ]
    assert [[a.identity for a in g] for g in in_order] == [["guid:1:a"], ["guid:1:d"]]


@pytest.mark.parametrize("status", [301, 308])
def test_permanent_redirect_updates_stored_url(server, settings, sessions, pool, status) -> None:
    server.add("/new", rss(ITEMS))
    server.redirect("/old", "/new", status=status)
    feed_id = add(sessions, server.url("/old"))
    report = run_poll(settings, sessions, pool)
    assert report.feeds[0].moved_to == server.url("/new")
    assert source(sessions, feed_id).url == server.url("/new")


def test_410_disables(server, settings, sessions, pool) -> None:
    server.add("/feed", b"", status=410)
    feed_id = add(sessions, server.url("/feed"))
    report = run_poll(settings, sessions, pool)
    row = source(sessions, feed_id)
    assert report.feeds[0].status == "gone"
    assert not row.enabled and "410" in (row.disabled_reason or "")


def test_429_retry_after_sets_next_check(server, settings, sessions, pool) -> None:
    server.add("/feed", b"", status=429, headers={"Retry-After": "7200"})
    feed_id = add(sessions, server.url("/feed"))
    run_poll(settings, sessions, pool)
    row = source(sessions, feed_id)
    assert row.next_check_at is not None and row.next_check_at >= NOW + timedelta(hours=2)
    assert row.consecutive_errors == 1 and row.enabled


def test_consecutive_errors_disable(server, settings, sessions, pool) -> None:
    server.add("/feed", b"oops", status=500)
    feed_id = add(sessions, server.url("/feed"))
    for hour in range(3):
        run_poll(settings, sessions, pool, NOW + timedelta(hours=hour))
    row = source(sessions, feed_id)
    assert not row.enabled and row.consecutive_errors == 3
    assert "3 consecutive errors" in (row.disabled_reason or "")
    health = {h.id: h for h in feed_health_list(sessions)}
    assert health[feed_id].last_error == "HTTP 500 Internal Server Error"


def feed_health_list(sessions: sessionmaker[Session]):
    with sessions() as session:
        return feed_health(session)


def test_backoff_grows_and_success_resets(server, settings, sessions, pool) -> None:
    server.add("/feed", b"oops", status=503)
    feed_id = add(sessions, server.url("/feed"))
    run_poll(settings, sessions, pool)
    first_wait = source(sessions, feed_id).next_check_at - NOW  # type: ignore[operator]
    run_poll(settings, sessions, pool)
    second_wait = source(sessions, feed_id).next_check_at - NOW  # type: ignore[operator]
    assert second_wait > first_wait
    server.add("/feed", rss(ITEMS))
    run_poll(settings, sessions, pool)
    row = source(sessions, feed_id)
    assert row.consecutive_errors == 0 and row.last_error is None and row.last_success_at == NOW


def test_one_broken_feed_does_not_stop_the_others(server, settings, sessions, pool) -> None:
    server.add("/good1", rss(ITEMS[:1]))
    server.add("/good2", rss(ITEMS[1:]))
    server.add("/broken", b"<rss><channel><item><title>half")
    server.add("/html", b"<!DOCTYPE html><html><body>Welcome</body></html>", headers={
        "Content-Type": "text/html"})  # fmt: skip
    for path in ("/good1", "/broken", "/html", "/good2"):
        add(sessions, server.url(path))
    add(sessions, "http://127.0.0.1:1/refused")
    report = run_poll(settings, sessions, pool)
    by_url = {f.url.rsplit("/", 1)[1]: f for f in report.feeds}
    assert by_url["good1"].new_articles == 1 and by_url["good2"].new_articles == 1
    assert str(by_url["html"].error) == "HTML page, not a feed"
    assert by_url["refused"].error is not None
    assert report.feeds_failed >= 2


def test_html_page_autodiscovery_follows_and_remembers(server, settings, sessions, pool) -> None:
    server.add("/feed.xml", rss(ITEMS))
    page = '<html><head><link rel="alternate" type="application/rss+xml" href="/feed.xml">'
    server.add("/", page + "</head><body>site</body></html>", headers={"Content-Type": "text/html"})
    feed_id = add(sessions, server.url("/"))
    report = run_poll(settings, sessions, pool)
    assert report.new_articles == 2
    assert source(sessions, feed_id).url == server.url("/feed.xml")
    assert asyncio.run(discover_feed_url(server.url("/"), settings.fetch)) == server.url(
        "/feed.xml"
    )
    server.add(
        "/plain", "<html><body>nothing here</body></html>", headers={"Content-Type": "text/html"}
    )
    with pytest.raises(ParseError, match="HTML page, not a feed"):
        asyncio.run(discover_feed_url(server.url("/plain"), settings.fetch))


def test_ttl_and_adaptive_interval(server, settings, sessions, pool) -> None:
    server.add("/feed", rss(ITEMS, ttl=180))
    feed_id = add(sessions, server.url("/feed"))
    run_poll(settings, sessions, pool)
    row = source(sessions, feed_id)
    # 2 entries in the last week -> 5040 min, clamped to max_interval (1440)
    assert row.interval_minutes == 1440
    assert row.next_check_at == NOW + timedelta(minutes=1440)
    assert row.name == "Test feed"


def test_due_sources_only(server, settings, sessions, pool) -> None:
    server.add("/feed", rss(ITEMS))
    add(sessions, server.url("/feed"))
    asyncio.run(poll(settings, sessions, now=NOW, pool=pool))
    again = asyncio.run(poll(settings, sessions, now=NOW + timedelta(minutes=5), pool=pool))
    assert again.feeds_polled == 0


def test_full_text_source(server, settings, sessions, pool) -> None:
    body = " ".join(
        f"Paragraph {i} explains how the new licence regime applies to wafer fabrication"
        " equipment shipped to foreign subsidiaries."
        for i in range(12)
    )
    page = f"<html><head><title>Rules</title></head><body><article><h1>Rules</h1><p>{body}</p>"
    server.add("/story", page + "</article></body></html>", headers={"Content-Type": "text/html"})
    item = Item("Rules for fab tools", server.url("/story"), "s-1", "Short teaser only.")
    server.add("/feed", rss([item]))
    add(sessions, server.url("/feed"), article_text="fetch")
    run_poll(settings, sessions, pool)
    (stored,) = articles(sessions)
    assert "wafer fabrication equipment" in stored.text and len(stored.text) > 500


def test_an_item_link_with_a_nul_is_dropped_and_the_feed_stored_on_both_backends(
    server: FeedServer, settings: Settings, sessions: sessionmaker[Session], pool: ParsePool
) -> None:
    """PostgreSQL refuses NUL in text: the raw link in the dedupe lookup failed the whole
    feed as an internal error (its clean item too), on that backend only."""
    import json

    when = NOW.strftime("%Y-%m-%dT%H:%M:%SZ")
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Wire",
        "items": [
            {"id": "n1", "url": "https://wire.test/1", "title": "Licences for H20 sales",
             "content_text": "The first item.", "date_published": when},
            {"id": "n2", "url": "https://wire.test/2\u0000x", "title": "Second item",
             "content_text": "The second item.", "date_published": when},
        ],
    }  # fmt: skip
    headers = {"Content-Type": "application/feed+json"}
    server.add("/feed.json", json.dumps(feed).encode(), headers=headers)
    feed_id = add(sessions, server.url("/feed.json"))
    report = run_poll(settings, sessions, pool)
    assert report.feeds_failed == 0, report
    stored = {row.title: row.url for row in articles(sessions)}
    assert stored == {"Licences for H20 sales": "https://wire.test/1", "Second item": None}
    assert source(sessions, feed_id).consecutive_errors == 0


def test_an_entry_with_nothing_to_read_is_not_stored(
    server: FeedServer, settings: Settings, sessions: sessionmaker[Session], pool: ParsePool
) -> None:
    """No title, no text, no usable link: such JSON items were stored as empty articles."""
    import json

    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "Wire",
        "items": [
            {"id": None},
            {"id": "odd", "url": 12345, "title": ["array"]},
            {"id": "blank", "title": "   ", "content_text": "  "},
            {"id": "ok", "title": "Licences for H20 sales", "content_text": "Granted."},
            {"id": "link-only", "url": "https://wire.test/only-a-link"},
        ],
    }
    headers = {"Content-Type": "application/feed+json"}
    server.add("/feed.json", json.dumps(feed).encode(), headers=headers)
    add(sessions, server.url("/feed.json"))
    report = run_poll(settings, sessions, pool)
    assert report.feeds_failed == 0, report
    stored = sorted((row.title, row.url) for row in articles(sessions))
    assert stored == [("", "https://wire.test/only-a-link"), ("Licences for H20 sales", None)]
