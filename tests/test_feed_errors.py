"""One bad feed never stops the poll: typed per-feed errors, recorded and counted.

The end-to-end cases run `chipwatch poll` in a subprocess, as cron would, against feeds
served on 127.0.0.1 and a real SQLite file: a URL httpx cannot parse
(`http://0177.0.0.1/feed.xml`) from each origin (a stored source, a page's advertised
feed, a full-text entry link, a redirect), next to a good feed; and an import failing in
the parse workers (a module shadowed on PYTHONPATH that raises ImportError).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from feedserver import FeedServer, Item, rss

from chipwatch.errors import (
    BodyTooLarge,
    DeadlineExceeded,
    ExitCode,
    FeedError,
    FeedErrorKind,
    FetchError,
    InvalidURLError,
    ParseError,
    UnsafeURLError,
    feed_error,
)
from chipwatch.parse import NotAFeed
from chipwatch.settings import PollSettings
from chipwatch.store.sources import FeedState, FetchOutcome, decide

BAD = "http://0177.0.0.1/feed.xml"  # octal IPv4: httpx.URL raises InvalidURL on it
NOW = datetime(2026, 3, 2, 8, 0, 0)
POLL = PollSettings(min_interval_minutes=15, max_interval_minutes=1440, max_consecutive_errors=3)
REPO = Path(__file__).resolve().parents[1]


# --- one place from any exception --------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "kind", "permanent"),
    [
        (httpx.InvalidURL("Invalid IPv4 address"), FeedErrorKind.INVALID_URL, True),
        (InvalidURLError(BAD, "malformed"), FeedErrorKind.INVALID_URL, True),
        (
            UnsafeURLError("h", "resolves to non-public address 10.0.0.1"),
            FeedErrorKind.UNSAFE,
            True,
        ),
        (BodyTooLarge("u", "body larger than 10 bytes"), FeedErrorKind.TOO_LARGE, False),
        (DeadlineExceeded("u", "fetch took longer than 1 s"), FeedErrorKind.TIMEOUT, False),
        (httpx.ReadTimeout("slow"), FeedErrorKind.TIMEOUT, False),
        (httpx.ConnectError("refused"), FeedErrorKind.NETWORK, False),
        (ConnectionResetError("reset"), FeedErrorKind.NETWORK, False),
        (FetchError("u", "HTTP 404", status=404), FeedErrorKind.HTTP, True),
        (FetchError("u", "HTTP 503", status=503), FeedErrorKind.HTTP, False),
        (NotAFeed("u", ()), FeedErrorKind.NOT_A_FEED, True),
        (ParseError("u", "not a recognisable RSS"), FeedErrorKind.PARSE, False),
        (ImportError("No module named 'lxml_html_clean'"), FeedErrorKind.INTERNAL, False),
        (KeyError("title"), FeedErrorKind.INTERNAL, False),
    ],
)
def test_every_exception_becomes_one_typed_error(
    exc: Exception, kind: FeedErrorKind, permanent: bool
) -> None:
    error = feed_error(exc, "u")
    assert (error.kind, error.permanent) == (kind, permanent)
    assert error.message and "\n" not in error.message and not error.message.startswith("u: ")
    if kind is FeedErrorKind.INTERNAL:
        assert error.message.startswith(f"internal error: {type(exc).__name__}")


def test_an_http_error_keeps_its_status() -> None:
    assert FeedError.http(404, "Not Found") == FeedError(
        FeedErrorKind.HTTP, "HTTP 404 Not Found", 404, True
    )
    assert feed_error(FetchError("u", "x", status=429)).http_status == 429


# --- the policy, without a database ------------------------------------------------------


def failure(kind: FeedErrorKind = FeedErrorKind.NETWORK, **extra: object) -> FetchOutcome:
    return FetchOutcome(ok=False, error=FeedError(kind, "it broke"), **extra)  # type: ignore[arg-type]


def test_failures_back_off_exponentially_and_disable_at_the_limit() -> None:
    state = FeedState("Feed", 0, None)
    waits = []
    for _ in range(3):
        changes = decide(state, failure(FeedErrorKind.INTERNAL), POLL, NOW)
        state = FeedState("Feed", changes["consecutive_errors"], None)  # type: ignore[arg-type]
        waits.append(changes["next_check_at"] - NOW)  # type: ignore[operator]
    assert waits == [timedelta(minutes=15), timedelta(minutes=30), timedelta(minutes=60)]
    assert changes["enabled"] is False and changes["last_error_kind"] == "internal"
    assert changes["disabled_reason"] == "3 consecutive errors; last (internal): it broke"


def test_a_failure_below_the_limit_keeps_the_feed_and_records_the_kind() -> None:
    changes = decide(FeedState("Feed", 0, 60), failure(FeedErrorKind.INVALID_URL), POLL, NOW)
    assert "enabled" not in changes
    assert (changes["consecutive_errors"], changes["last_error_kind"]) == (1, "invalid_url")
    assert changes["last_error"] == "it broke" and changes["last_checked_at"] == NOW


def test_gone_disables_at_once_and_retry_after_is_capped() -> None:
    gone = decide(FeedState("", 0, None), failure(FeedErrorKind.HTTP, gone=True), POLL, NOW)
    assert gone["enabled"] is False and "410" in str(gone["disabled_reason"])
    pause = decide(FeedState("", 0, None), failure(retry_after_seconds=10**9), POLL, NOW)
    assert pause["next_check_at"] == NOW + timedelta(minutes=POLL.max_interval_minutes)


def test_success_resets_errors_and_sets_the_adaptive_interval() -> None:
    ok = FetchOutcome(ok=True, status=200, etag='"v2"', entries_per_week=7 * 24, title="Named")
    changes = decide(FeedState("", 4, None), ok, POLL, NOW)
    assert changes["consecutive_errors"] == 0 and changes["last_error_kind"] is None
    assert changes["interval_minutes"] == 60  # one entry an hour
    assert changes["next_check_at"] == NOW + timedelta(minutes=60)
    busy = FetchOutcome(ok=True, status=200, entries_per_week=7 * 24 * 60)  # one a minute
    assert decide(FeedState("", 0, None), busy, POLL, NOW)["interval_minutes"] == 15
    assert changes["name"] == "Named" and changes["etag"] == '"v2"'
    unchanged = FetchOutcome(ok=True, status=304, not_modified=True)
    kept = decide(FeedState("Mine", 0, 120), unchanged, POLL, NOW)
    assert "etag" not in kept and "name" not in kept and "interval_minutes" not in kept
    assert kept["next_check_at"] == NOW + timedelta(minutes=120)


# --- end to end: `chipwatch poll` with one bad feed --------------------------------------


GOOD_ITEMS = [
    Item("Export rules tightened on lithography tools", "http://example.test/a1", "g-a1"),
    Item("Second good entry about wafer fabs", "http://example.test/a2", "g-a2"),
]


@pytest.fixture()
def server() -> Iterator[FeedServer]:
    with FeedServer() as srv:
        srv.add("/good.xml", rss(GOOD_ITEMS), headers={"Content-Type": "application/rss+xml"})
        yield srv


def write_config(tmp_path: Path, sources: list[tuple[str, bool]]) -> Path:
    path = tmp_path / "chipwatch.toml"
    lines = [
        f'data_dir = "{tmp_path / "data"}"',
        f'topics = "{REPO / "config" / "topics.toml"}"',
        f'corpus_dir = "{REPO / "config" / "corpus"}"',
        "[fetch]",
        "allow_private_networks = true",
        "deadline_seconds = 10",
    ]
    for url, full_text in sources:
        lines += ["[[sources]]", f'url = "{url}"', f"full_text = {str(full_text).lower()}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def chipwatch(
    config: Path, *args: str, pythonpath: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [sys.executable, "-m", "chipwatch", "--config", str(config), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=env,
    )


def stored(config: Path) -> tuple[list[str], dict[str, tuple[int, str | None, str | None]]]:
    """(article titles, {source url: (errors, kind, last error)}) from the SQLite file."""
    with sqlite3.connect(config.parent / "data" / "chipwatch.sqlite3") as db:
        titles = [t for (t,) in db.execute("SELECT title FROM articles ORDER BY title")]
        rows = db.execute(
            "SELECT url, consecutive_errors, last_error_kind, last_error FROM sources"
        ).fetchall()
    return titles, {url: (errors, kind, error) for url, errors, kind, error in rows}


def assert_one_failed(result: subprocess.CompletedProcess[str], config: Path, url: str) -> str:
    """The good feed's entries stored, the bad feed's error recorded with its kind, exit 3,
    no traceback; returns the recorded error."""
    assert result.returncode == ExitCode.PARTIAL, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "1 failed" in result.stdout
    titles, sources = stored(config)
    assert {item.title for item in GOOD_ITEMS} <= set(titles)
    errors, kind, error = sources[url]
    assert errors == 1 and kind is not None and error
    return f"{kind}: {error}"


def test_a_stored_unparseable_url_next_to_a_good_feed(tmp_path: Path, server: FeedServer) -> None:
    # A source stored by an earlier version (before URLs were checked at the door).
    config = write_config(tmp_path, [(server.url("/good.xml"), False)])
    assert chipwatch(config, "feeds", "list").returncode == 0  # creates the database
    with sqlite3.connect(tmp_path / "data" / "chipwatch.sqlite3") as db:
        db.execute(
            "INSERT INTO sources (url, name, site_url, language, article_text, enabled,"
            " consecutive_errors, created_at) VALUES (?, 'Old bad', NULL, '', NULL, 1, 0, ?)",
            (BAD, NOW.isoformat(sep=" ")),
        )
    result = chipwatch(config, "poll", "--no-classify")
    recorded = assert_one_failed(result, config, BAD)
    assert recorded.startswith("invalid_url: ") and "0177.0.0.1" in recorded
    assert f"error: {BAD}: [invalid_url]" in result.stdout
    status = chipwatch(config, "feeds", "status")
    assert status.returncode == 0 and "invalid_url" in status.stdout


def test_a_configured_unparseable_url_is_refused_at_start_up(tmp_path: Path) -> None:
    config = write_config(tmp_path, [("http://good.test/feed", False), (BAD, False)])
    result = chipwatch(config, "poll")
    assert result.returncode == ExitCode.CONFIG and "Traceback" not in result.stderr
    assert str(config) in result.stderr and "sources[1].url" in result.stderr
    assert "0177.0.0.1" in result.stderr


def test_a_page_advertising_an_unparseable_feed(tmp_path: Path, server: FeedServer) -> None:
    page = f'<html><head><link rel="alternate" type="application/rss+xml" href="{BAD}"></head>'
    server.add(
        "/page.html", page + "<body>news</body></html>", headers={"Content-Type": "text/html"}
    )
    config = write_config(
        tmp_path, [(server.url("/good.xml"), False), (server.url("/page.html"), False)]
    )
    result = chipwatch(config, "poll", "--no-classify")
    recorded = assert_one_failed(result, config, server.url("/page.html"))
    assert recorded.startswith(f"invalid_url: the feed the page advertises ({BAD}) failed")


def test_a_full_text_entry_link_that_does_not_parse(tmp_path: Path, server: FeedServer) -> None:
    items = [Item("Entry with a hostile link", f"{BAD}?a=1", "h-1", "Its summary, kept.")]
    server.add("/full.xml", rss(items), headers={"Content-Type": "application/rss+xml"})
    config = write_config(
        tmp_path, [(server.url("/good.xml"), False), (server.url("/full.xml"), True)]
    )
    result = chipwatch(config, "poll", "--no-classify")
    recorded = assert_one_failed(result, config, server.url("/full.xml"))
    assert recorded.startswith("invalid_url: full text: entry link")
    assert "Entry with a hostile link" in stored(config)[0]  # kept, with its summary


def test_a_redirect_to_an_unparseable_url(tmp_path: Path, server: FeedServer) -> None:
    server.add("/moved.xml", status=301, headers={"Location": BAD})
    config = write_config(
        tmp_path, [(server.url("/good.xml"), False), (server.url("/moved.xml"), False)]
    )
    result = chipwatch(config, "poll", "--no-classify")
    assert assert_one_failed(result, config, server.url("/moved.xml")).startswith("invalid_url")


def shadow(tmp_path: Path, module: str) -> Path:
    """A PYTHONPATH folder where importing `module` fails, as a broken install would."""
    folder = tmp_path / "shadow"
    (folder / module).mkdir(parents=True)
    (folder / module / "__init__.py").write_text(
        f'raise ImportError("simulated broken install: {module}")\n', encoding="utf-8"
    )
    return folder


def test_an_import_error_in_the_parse_worker_fails_each_feed_not_the_poll(
    tmp_path: Path, server: FeedServer
) -> None:
    # The workers import numpy when they first detect a language (the poller does not).
    server.add("/other.xml", rss(GOOD_ITEMS[:1]), headers={"Content-Type": "application/rss+xml"})
    config = write_config(
        tmp_path, [(server.url("/good.xml"), False), (server.url("/other.xml"), False)]
    )
    result = chipwatch(config, "poll", "--no-classify", pythonpath=shadow(tmp_path, "numpy"))
    assert result.returncode == ExitCode.ALL_FAILED, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "2 failed" in result.stdout
    _, sources = stored(config)
    for errors, kind, error in sources.values():
        assert (errors, kind) == (1, "internal")
        assert error is not None and "ImportError" in error and "numpy" in error
    again = chipwatch(config, "poll", "--no-classify", "--all", pythonpath=tmp_path / "shadow")
    assert again.returncode == ExitCode.ALL_FAILED
    assert {errors for errors, _, _ in stored(config)[1].values()} == {2}  # counted each time
    healed = chipwatch(config, "poll", "--no-classify", "--all")
    assert healed.returncode == ExitCode.OK, healed.stdout + healed.stderr
    titles, sources = stored(config)
    assert {item.title for item in GOOD_ITEMS} <= set(titles)
    assert all(errors == 0 and kind is None for errors, kind, _ in sources.values())


def test_a_missing_full_text_dependency_keeps_the_entries(
    tmp_path: Path, server: FeedServer
) -> None:
    # What a plain `pip install` without lxml_html_clean did: `import trafilatura` fails.
    server.add(
        "/article.html",
        "<html><body><p>Full text.</p></body></html>",
        headers={"Content-Type": "text/html; charset=utf-8"},
    )
    items = [Item("Entry whose page needs trafilatura", server.url("/article.html"), "t-1", "Sum.")]
    server.add("/full.xml", rss(items), headers={"Content-Type": "application/rss+xml"})
    config = write_config(
        tmp_path, [(server.url("/good.xml"), False), (server.url("/full.xml"), True)]
    )
    result = chipwatch(
        config, "poll", "--no-classify", pythonpath=shadow(tmp_path, "lxml_html_clean")
    )
    recorded = assert_one_failed(result, config, server.url("/full.xml"))
    assert recorded.startswith("internal: full text: internal error: ImportError")
    assert "Entry whose page needs trafilatura" in stored(config)[0]


# --- at the door: feeds add, feeds import ------------------------------------------------


def test_feeds_add_refuses_a_page_advertising_an_unparseable_feed(
    tmp_path: Path, server: FeedServer
) -> None:
    page = f'<html><head><link rel="alternate" type="application/rss+xml" href="{BAD}"></head>'
    server.add("/page.html", page + "</html>", headers={"Content-Type": "text/html"})
    config = write_config(tmp_path, [])
    result = chipwatch(config, "feeds", "add", server.url("/page.html"))
    assert result.returncode == ExitCode.CONFIG and "Traceback" not in result.stderr
    assert BAD in result.stderr and len(result.stderr.strip().splitlines()) == 1
    typed = chipwatch(config, "feeds", "add", "http://[::1/feed")
    assert typed.returncode == ExitCode.CONFIG and "malformed URL" in typed.stderr


def test_feeds_import_skips_a_bad_outline_and_imports_the_rest(
    tmp_path: Path, server: FeedServer
) -> None:
    opml = tmp_path / "feeds.opml"
    opml.write_text(
        '<opml version="2.0"><body>'
        f'<outline text="good" xmlUrl="{server.url("/good.xml")}"/>'
        f'<outline text="bad" xmlUrl="{BAD}"/>'
        '<outline text="also good" xmlUrl="https://other.test/feed"/>'
        "</body></opml>",
        encoding="utf-8",
    )
    config = write_config(tmp_path, [])
    result = chipwatch(config, "feeds", "import", str(opml))
    assert result.returncode == ExitCode.OK, result.stderr
    assert "imported 2 new feeds" in result.stdout and "1 skipped" in result.stdout
    assert f"{opml}: outline 2: skipped" in result.stdout and "0177.0.0.1" in result.stdout
    listed = chipwatch(config, "feeds", "list").stdout
    assert server.url("/good.xml") in listed and BAD not in listed


def test_a_database_of_the_first_revision_is_upgraded_with_the_kind(tmp_path: Path) -> None:
    from sqlalchemy import inspect

    from chipwatch.store.db import create_engine, open_engine, upgrade

    path = tmp_path / "old.sqlite3"
    upgrade(create_engine(f"sqlite:///{path}"), "0001")
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO sources (url, name, language, full_text, enabled, consecutive_errors,"
            " last_error, created_at) VALUES ('http://a.test/f', '', '', 0, 1, 2, 'HTTP 503', ?)",
            (NOW.isoformat(sep=" "),),
        )
    engine = open_engine(path)
    assert "last_error_kind" in {c["name"] for c in inspect(engine).get_columns("sources")}
    with engine.connect() as connection:
        row = connection.exec_driver_sql(
            "SELECT consecutive_errors, last_error, last_error_kind FROM sources"
        ).one()
    assert tuple(row) == (2, "HTTP 503", None)  # kept; the kind is known from the next poll


def test_an_internal_error_is_its_first_line() -> None:
    """A database error goes on with its SQL and parameters (a 560-character line, the
    feed's items in it): the feed's error keeps the first line."""
    error = feed_error(
        ValueError("text fields cannot contain NUL bytes\n[SQL: SELECT identity FROM x]"),
        "https://wire.test/feed",
    )
    assert error.message == "internal error: ValueError: text fields cannot contain NUL bytes"
