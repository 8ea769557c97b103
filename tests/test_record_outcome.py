"""Recording poll outcomes on a real SQLite file: one source at a time (`record_outcome`)
and a writer batch at a time (`record_outcomes`, Core statements)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from chipwatch.collect import Writer
from chipwatch.errors import FeedError
from chipwatch.settings import PollSettings, Settings
from chipwatch.store.db import open_database
from chipwatch.store.models import SourceRow
from chipwatch.store.sources import (
    FetchOutcome,
    add_source,
    record_outcome,
    record_outcomes,
    remove_source,
)
from chipwatch.types import Article, Source

NOW = datetime(2025, 3, 5, 12, 0, 0)
POLL = PollSettings(max_consecutive_errors=3)
NOT_MODIFIED = FetchOutcome(ok=True, status=304, not_modified=True)


@pytest.fixture
def sessions(tmp_path: Path, database_url: str) -> sessionmaker[Session]:
    return open_database(database_url or f"sqlite:///{tmp_path / 'chipwatch.sqlite3'}").sessions


def add(sessions: sessionmaker[Session], *urls: str) -> list[int]:
    with sessions.begin() as session:
        return [add_source(session, url, now=NOW)[0].id for url in urls]


def row(sessions: sessionmaker[Session], source_id: int) -> SourceRow:
    with sessions() as session:
        found = session.get(SourceRow, source_id)
        assert found is not None
        return found


def moved(url: str) -> FetchOutcome:
    return FetchOutcome(ok=True, status=200, permanent_redirect=url, etag='"e"')


def test_success_after_failures_resets_and_keeps_what_the_outcome_does_not_decide(
    sessions,
) -> None:
    (feed,) = add(sessions, "http://a.test/feed")
    with sessions.begin() as session:
        session.get(SourceRow, feed).name = "My own name"  # type: ignore[union-attr]
    fail = FetchOutcome(ok=False, status=500, error=FeedError.http(500))
    for hour in range(2):
        with sessions.begin() as session:
            record_outcomes(session, [(feed, fail, NOW + timedelta(hours=hour))], POLL)
    assert row(sessions, feed).consecutive_errors == 2
    ok = FetchOutcome(
        ok=True, status=200, etag='"v1"', title="Feed title", site_url="http://a.test/",
        entries_per_week=14.0, max_age_seconds=7200.0,
    )  # fmt: skip
    with sessions.begin() as session:
        assert record_outcomes(session, [(feed, ok, NOW)], POLL) == ["My own name"]
    stored = row(sessions, feed)
    assert (stored.consecutive_errors, stored.last_error, stored.last_status) == (0, None, 200)
    assert stored.name == "My own name"  # a title never replaces a name already set
    assert (stored.etag, stored.last_modified, stored.site_url) == ('"v1"', None, "http://a.test/")
    assert stored.interval_minutes == 720 and stored.last_success_at == NOW
    assert stored.next_check_at == NOW + timedelta(minutes=720)  # max-age 2 h is shorter

    with sessions.begin() as session:  # a 304 without validators keeps the stored ones
        record_outcomes(session, [(feed, NOT_MODIFIED, NOW + timedelta(hours=1))], POLL)
    assert row(sessions, feed).etag == '"v1"'


def test_errors_disable_at_the_limit_and_410_at_once(sessions) -> None:
    flaky, gone = add(sessions, "http://a.test/flaky", "http://a.test/gone")
    fail = FetchOutcome(
        ok=False, status=503, error=FeedError.http(503), retry_after_seconds=3 * 3600
    )
    for hour in range(3):
        with sessions.begin() as session:
            outcomes = [(flaky, fail, NOW + timedelta(hours=hour))]
            if hour == 0:
                outcomes.append((gone, FetchOutcome(ok=False, status=410, gone=True), NOW))
            record_outcomes(session, outcomes, POLL)
        if hour == 0:
            first = row(sessions, flaky)
            assert first.enabled and first.consecutive_errors == 1
            assert first.next_check_at == NOW + timedelta(hours=3)  # Retry-After wins
    stored = row(sessions, flaky)
    assert not stored.enabled and stored.consecutive_errors == 3
    assert stored.disabled_reason == "3 consecutive errors; last (http): HTTP 503"
    assert not row(sessions, gone).enabled
    assert row(sessions, gone).disabled_reason == "HTTP 410 Gone: the publisher removed this feed"
    assert row(sessions, gone).last_error == "unknown error"


def test_moves_within_one_batch_see_each_other(sessions) -> None:
    a, b, c, d, e = add(sessions, *(f"http://a.test/{name}" for name in "abcde"))
    with sessions.begin() as session:
        names = record_outcomes(
            session,
            [
                (a, moved("http://new.test/x"), NOW),  # a fresh URL: moved
                (b, moved("http://new.test/x"), NOW),  # the URL a just took: parked
                (c, moved("http://a.test/d"), NOW),  # d's URL, d moves later: parked
                (d, moved("http://new.test/d"), NOW),
                (e, moved("http://new.test/d"), NOW),  # the URL d just took: parked
            ],
            POLL,
        )
    assert names == ["", "", "", "", ""]
    stored = {key: row(sessions, key) for key in (a, b, c, d, e)}
    assert stored[a].url == "http://new.test/x" and stored[a].etag == '"e"'
    assert stored[b].url == "http://a.test/b" and not stored[b].enabled
    assert (
        stored[b].disabled_reason == f"moved permanently to http://new.test/x, already source #{a}"
    )
    assert stored[c].disabled_reason == f"moved permanently to http://a.test/d, already source #{d}"
    assert stored[d].url == "http://new.test/d" and stored[d].enabled
    assert not stored[e].enabled

    # Once d has left its URL, another source may take it (validators are reset).
    with sessions.begin() as session:
        record_outcomes(session, [(c, moved("http://a.test/d"), NOW)], POLL)
    assert row(sessions, c).url == "http://a.test/d" and row(sessions, c).last_modified is None


def test_a_removed_source_is_skipped_and_the_batch_still_written(sessions) -> None:
    kept, removed = add(sessions, "http://a.test/kept", "http://a.test/removed")
    with sessions.begin() as session:
        remove_source(session, removed)
    with sessions.begin() as session:
        names = record_outcomes(
            session, [(removed, NOT_MODIFIED, NOW), (kept, NOT_MODIFIED, NOW)], POLL
        )
    assert names == [None, ""]
    assert row(sessions, kept).last_checked_at == NOW


def test_record_outcome_returns_the_stored_row_and_keeps_pending_changes(sessions) -> None:
    (feed,) = add(sessions, "http://a.test/feed")
    with sessions.begin() as session:
        loaded = session.get(SourceRow, feed)
        assert loaded is not None
        loaded.language = "fr"  # pending in the unit of work when the outcome comes
        result = record_outcome(session, feed, moved("http://new.test/feed"), POLL, NOW)
        assert result is loaded and result.url == "http://new.test/feed"
        assert result.last_checked_at == NOW and result.language == "fr"
        assert record_outcome(session, 12345, NOT_MODIFIED, POLL, NOW) is None
    stored = row(sessions, feed)
    assert stored.url == "http://new.test/feed" and stored.language == "fr"


REFUSE_UPDATES = {
    "sqlite": [
        "CREATE TRIGGER refuse_bad BEFORE UPDATE ON sources WHEN OLD.url = '{url}' "
        "BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"
    ],
    "postgresql": [
        "CREATE FUNCTION refuse_bad() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'refused by test trigger'; END $$",
        "CREATE TRIGGER refuse_bad BEFORE UPDATE ON sources FOR EACH ROW "
        "WHEN (OLD.url = '{url}') EXECUTE FUNCTION refuse_bad()",
    ],
}


def test_a_failing_feed_write_does_not_lose_the_batch(sessions, tmp_path: Path) -> None:
    """A batch whose statements fail is written again feed by feed: the others keep
    their articles and outcomes, only the failing feed gets the error."""
    urls = [f"http://a.test/{name}" for name in ("one", "bad", "two")]
    ids = add(sessions, *urls)
    with sessions.begin() as session:  # the database itself refuses any update of "bad"
        for statement in REFUSE_UPDATES[session.get_bind().dialect.name]:
            session.execute(text(statement.format(url=urls[1])))
    settings = Settings(
        config_path=tmp_path / "c.toml", config_dir=tmp_path, data_dir=tmp_path,
        topics_path=tmp_path / "t.toml", corpus_dir=tmp_path / "corpus", poll=POLL,
    )  # fmt: skip

    def article(source_id: int) -> Article:
        return Article(f"guid:{source_id}:x", urls[0], f"http://n.test/{source_id}", "t",
                       f"text {source_id} " * 10, NOW, NOW, "en", f"hash-{source_id}")  # fmt: skip

    async def write_together() -> list[list[int] | BaseException]:
        writer = Writer(sessions, settings)
        try:
            busy = asyncio.ensure_future(writer.call(time.sleep, 0.3))
            await asyncio.sleep(0.05)  # the writer thread is busy: the three queue up
            stores = [
                writer.store(Source(key, url, ""), NOT_MODIFIED, [article(key)], NOW)
                for key, url in zip(ids, urls, strict=True)
            ]
            results = await asyncio.gather(*stores, return_exceptions=True)
            await busy
            return results
        finally:
            writer.close()

    first, bad, second = asyncio.run(write_together())
    assert isinstance(bad, Exception) and "refused by test trigger" in str(bad)
    assert isinstance(first, list) and isinstance(second, list) and len(first + second) == 2
    assert row(sessions, ids[0]).last_checked_at == NOW
    assert row(sessions, ids[2]).last_checked_at == NOW
    assert row(sessions, ids[1]).last_checked_at is None
    with sessions() as session:
        stored = session.execute(text("SELECT source_id FROM articles ORDER BY id")).all()
    assert [r[0] for r in stored] == [ids[0], ids[2]]


def test_strings_longer_than_their_columns_do_not_fail_the_write(sessions) -> None:
    """PostgreSQL refuses what does not fit a column (SQLite keeps it): a cut name is
    fine, a cut validator would never match again, so it is not kept."""
    (feed,) = add(sessions, "http://a.test/feed")
    huge = FetchOutcome(
        ok=True, status=200, etag='"' + "e" * 2000 + '"', last_modified="x" * 300,
        title="T" * 1000,
    )  # fmt: skip
    with sessions.begin() as session:
        record_outcomes(session, [(feed, huge, NOW)], POLL)
    stored = row(sessions, feed)
    assert (stored.etag, stored.last_modified, stored.last_status) == (None, None, 200)
    assert stored.name == "T" * 300
    with sessions.begin() as session:
        named, _ = add_source(session, "http://a.test/other", "N" * 1000, now=NOW)
        assert named.name == "N" * 300
