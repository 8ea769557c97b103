"""Robustness on third-party corpora (../shared/feeds): every file gives entries or a
clear per-feed error; no crash, no hang, no markup left in the text we store.

- realworld/ (200 feeds): all polled over loopback HTTP into a real SQLite file;
- feedparser-corpus/ (2,106 small files): all through the same parse + extract path in
  the process pool, and every 10th one polled over HTTP as well.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from backends import configured_url
from feedserver import FeedServer

from chipwatch.collect import ParsePool, poll
from chipwatch.settings import FetchSettings, Settings
from chipwatch.store.db import open_database
from chipwatch.store.sources import add_source
from chipwatch.types import Source
from chipwatch.worker import DocumentJob, DocumentResult, process_document

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "feeds"
REALWORLD = SHARED / "realworld"
FEEDPARSER = SHARED / "feedparser-corpus"
NOW = datetime(2025, 3, 5, 12, 0, 0)
# Errors a reader can act on; anything else (a traceback text, "None") fails the test.
CLEAR_ERROR = re.compile(
    r"^(HTML page, not a feed|not a recognisable RSS|empty response body|invalid JSON|"
    r"JSON document that is not|malformed feed with no readable entries|parsing took longer|"
    r"HTTP \d{3})"
)
TAG = re.compile(r"<(script|iframe|img|a|p|div|b|i|span|style)\b[^>]*>", re.I)

pytestmark = pytest.mark.skipif(
    not REALWORLD.is_dir() or not FEEDPARSER.is_dir(),
    reason=f"feed corpora absent: expected {SHARED} (see ../shared/feeds/README.md)",
)


def corpus_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def pool() -> Iterator[ParsePool]:
    parse_pool = ParsePool(workers=2)
    yield parse_pool
    parse_pool.close()


def settings_for(tmp_path: Path) -> Settings:
    return Settings(
        database_url=configured_url(),  # the `database_url` fixture: SQLite or PostgreSQL
        config_path=tmp_path / "c.toml",
        config_dir=tmp_path,
        data_dir=tmp_path / "data",
        topics_path=tmp_path / "t.toml",
        corpus_dir=tmp_path / "corpus",
        fetch=FetchSettings(allow_private_networks=True, deadline_seconds=20),
    )


def poll_files(tmp_path: Path, root: Path, files: list[Path], pool: ParsePool):
    settings = settings_for(tmp_path)
    sessions = open_database(settings.store_url).sessions
    with FeedServer() as server:
        server.mount("/c/", root)
        with sessions.begin() as session:
            for path in files:
                add_source(session, server.url("/c/" + path.relative_to(root).as_posix()))
        return asyncio.run(poll(settings, sessions, all_feeds=True, now=NOW, pool=pool))


@pytest.mark.usefixtures("database_url")
def test_realworld_feeds_polled_over_http(tmp_path: Path, pool: ParsePool) -> None:
    files = corpus_files(REALWORLD)
    report = poll_files(tmp_path, REALWORLD, files, pool)
    assert report.feeds_polled == len(files) == 200
    for feed in report.feeds:
        assert feed.entries > 0 or CLEAR_ERROR.match(str(feed.error or "")), feed
    failed = [f for f in report.feeds if f.error]
    assert len(failed) <= 5, failed  # a handful of broken documents at most
    assert report.new_articles > 5000


def test_feedparser_corpus_through_the_parse_path(pool: ParsePool) -> None:
    files = corpus_files(FEEDPARSER)
    assert len(files) > 2000
    jobs = [
        DocumentJob(
            source=Source(1, f"http://corpus.test/{i}", ""),
            content=path.read_bytes(),
            content_type="application/xml",
            base_url=f"http://corpus.test/{path.name}",
            fetched_at=NOW,
            max_entries=500,
            max_entry_chars=100_000,
            time_limit_seconds=10,
        )
        for i, path in enumerate(files)
    ]

    async def run_all() -> list[DocumentResult]:
        return await asyncio.gather(*(pool.run(process_document, job) for job in jobs))

    results = asyncio.run(run_all())
    unclear = [
        (p.name, r.error)
        for p, r in zip(files, results, strict=True)
        if not r.articles and r.error is not None and not CLEAR_ERROR.match(str(r.error))
    ]
    assert not unclear
    # Documents whose entries were read (an entry with nothing to read or show, only a
    # <rights> or a <source>, as many of these files hold, is not stored as an article).
    with_entries = sum(1 for r in results if r.entries)
    assert with_entries > 1000 and sum(1 for r in results if r.articles) > 500
    markup = [
        (p.name, a.title)
        for p, r in zip(files, results, strict=True)
        for a in r.articles
        if TAG.search(a.title) or TAG.search(a.text)
    ]
    # Text must be plain: tags are stripped (twice for double-escaped markup).
    assert not markup, markup[:5]


@pytest.mark.usefixtures("database_url")
def test_feedparser_corpus_sample_over_http(tmp_path: Path, pool: ParsePool) -> None:
    files = corpus_files(FEEDPARSER)[::10]
    report = poll_files(tmp_path, FEEDPARSER, files, pool)
    assert report.feeds_polled == len(files)
    for feed in report.feeds:
        assert feed.error is None or CLEAR_ERROR.match(str(feed.error)), feed
