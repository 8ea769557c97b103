"""The whole watch through the `chipwatch` command: loopback feeds -> database -> SMTP.

Real parts only: the demo's feed server on 127.0.0.1 (ETag and 304), a SQLite file in
tmp_path or a PostgreSQL database (each test runs on both), an aiosmtpd server receiving
the digest, Python's email package reading it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from chipwatch_cli import run_chipwatch as chipwatch
from smtpserver import SmtpServer, smtp_server
from sqlalchemy import text

from chipwatch.classify import load_corpus
from chipwatch.demo.run import oldest_sample
from chipwatch.demo.samples import ENGLISH_WIRE, FRENCH_GENERAL
from chipwatch.demo.server import serve_demo_feeds
from chipwatch.errors import ExitCode
from chipwatch.store.db import create_engine

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.usefixtures("database_url")  # on SQLite and PostgreSQL
RECIPIENT = "analyst@example.org"


@pytest.fixture()
def feeds() -> Iterator[tuple[str, list[str]]]:
    with serve_demo_feeds(load_corpus(REPO / "config" / "corpus")) as served:
        yield served


@pytest.fixture()
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def write_config(tmp_path: Path, feed_urls: list[str], smtp: SmtpServer) -> Path:
    sources = "".join(
        f'[[sources]]\nurl = "{url}"\nname = "feed {i}"\n\n' for i, url in enumerate(feed_urls)
    )
    # The samples are dated (mid-2025): the window reaches back to them, and their first
    # poll is no backfill (as in `chipwatch demo`).
    days = (datetime.now(UTC) - oldest_sample(list(load_corpus(REPO / "config" / "corpus")))).days
    config = tmp_path / "chipwatch.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'topics = "{REPO / "config" / "topics.toml"}"\n'
        f'corpus_dir = "{REPO / "config" / "corpus"}"\n'
        "[fetch]\nallow_private_networks = true\n"
        f"[poll]\nfirst_poll_backfill_hours = {(days + 2) * 24}\n"
        f"[digest]\nlookback_days = {days + 2}\n"
        f'[smtp]\nhost = "{smtp.host}"\nport = {smtp.port}\nsecurity = "none"\n'
        'sender = "chipwatch <watch@example.org>"\n'
        f'[[recipients]]\naddress = "{RECIPIENT}"\n\n' + sources,
        encoding="utf-8",
    )
    return config


def body_of(message: EmailMessage, kind: str) -> str:
    part = message.get_body(preferencelist=(kind,))
    assert part is not None, f"no text/{kind} part"
    return str(part.get_content())


def test_poll_classify_digest_over_smtp_once(
    tmp_path: Path, feeds: tuple[str, list[str]], smtp: SmtpServer
) -> None:
    base_url, feed_urls = feeds
    config = write_config(tmp_path, feed_urls, smtp)

    first = chipwatch(config, "poll")
    assert first.returncode == 0, first.stderr
    assert "3 feeds" in first.stdout and "0 failed" in first.stdout

    sent = chipwatch(config, "digest")
    assert sent.returncode == 0, sent.stderr
    assert len(smtp.messages) == 1
    message = smtp.messages[0]
    assert message.get_content_type() == "multipart/alternative"
    assert message["To"] == RECIPIENT
    assert message["Message-ID"]
    assert "stories" in message["Subject"] and "licensing" in message["Subject"]

    html, text = body_of(message, "html"), body_of(message, "plain")
    for section in ("licensing", "rare earths", "novel"):
        assert section.lower() in text.lower(), section
    wire = {item.slug: item for item in ENGLISH_WIRE}
    assert f"{base_url}/articles/{wire['h200-licence-review'].slug}" in html
    assert f"{base_url}/articles/{wire['magnet-licensing'].slug}" in html
    for off_subject in [*ENGLISH_WIRE, *FRENCH_GENERAL]:
        if not off_subject.relevant:
            assert f"/articles/{off_subject.slug}" not in html, off_subject.title

    # Nothing is due yet; forced, every feed answers 304 and nothing is stored twice.
    # A second digest then has nothing to send.
    assert "polled 0 feeds" in chipwatch(config, "poll").stdout
    again = chipwatch(config, "poll", "--all")
    assert again.returncode == 0, again.stderr
    assert "0 new articles" in again.stdout and "3 unchanged" in again.stdout
    assert chipwatch(config, "digest").returncode == 0
    assert len(smtp.messages) == 1

    outbox = chipwatch(config, "outbox")
    assert "sent" in outbox.stdout and RECIPIENT in outbox.stdout


def test_failed_send_exits_nonzero_and_keeps_the_digest(
    tmp_path: Path, feeds: tuple[str, list[str]], smtp: SmtpServer
) -> None:
    _, feed_urls = feeds
    config = write_config(tmp_path, feed_urls, smtp)
    assert chipwatch(config, "poll").returncode == 0
    smtp.stop()  # connection refused

    failed = chipwatch(config, "digest")
    assert failed.returncode == ExitCode.ALL_FAILED  # nothing could be sent
    assert "kept in the outbox; next try from " in failed.stdout  # when it is retried
    assert "pending" in chipwatch(config, "outbox").stdout


def test_preview_marks_nothing(
    tmp_path: Path, feeds: tuple[str, list[str]], smtp: SmtpServer
) -> None:
    _, feed_urls = feeds
    config = write_config(tmp_path, feed_urls, smtp)
    assert chipwatch(config, "poll").returncode == 0
    preview = tmp_path / "preview.html"
    shown = chipwatch(config, "digest", "--preview", str(preview))
    assert shown.returncode == 0, shown.stderr
    assert "<html" in preview.read_text(encoding="utf-8").lower()
    assert smtp.messages == []
    assert chipwatch(config, "digest").returncode == 0
    assert len(smtp.messages) == 1  # the preview reserved nothing


def run_demo(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chipwatch", "--data-dir", str(data_dir), "demo"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=REPO,
    )


def test_demo_puts_relevant_samples_in_the_digest_and_nothing_else(
    tmp_path: Path, database_url: str
) -> None:
    first = run_demo(tmp_path / "demo")
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr
    # A second run (`make demo` twice) resets the demo's own folder and finds it all again.
    result = run_demo(tmp_path / "demo")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    relevant = 5 + sum(s.relevant for s in [*ENGLISH_WIRE, *FRENCH_GENERAL])
    off_subject = sum(not s.relevant for s in [*ENGLISH_WIRE, *FRENCH_GENERAL])
    assert f"check: {relevant}/{relevant} relevant samples" in result.stdout, result.stdout
    assert f"0/{off_subject} off-subject samples" in result.stdout, result.stdout
    assert "log in as demo / demo-password" in result.stdout  # the review site's account
    assert (tmp_path / "demo" / "digest-preview.html").is_file()
    assert len(list((tmp_path / "demo" / "maildir" / "new").iterdir())) == 1
    assert (tmp_path / "demo" / "chipwatch.sqlite3").is_file()
    if database_url:  # the configured PostgreSQL is left alone: the demo runs on its SQLite
        assert "ignores it" in result.stdout and "CHIPWATCH_DATABASE_URL= " in result.stdout
        engine = create_engine(database_url)
        with engine.connect() as connection:
            for table in ("sources", "articles", "users"):
                count = connection.execute(text(f"SELECT count(*) FROM {table}")).scalar()
                assert count == 0, table
        engine.dispose()


def test_demo_refuses_a_data_folder_it_did_not_make(tmp_path: Path) -> None:
    data = tmp_path / "data"
    config = tmp_path / "chipwatch.toml"
    config.write_text(f'data_dir = "{data}"\n', encoding="utf-8")
    assert chipwatch(config, "outbox").returncode == 0  # a real database of the user's
    (data / "maildir" / "new").mkdir(parents=True)
    (data / "maildir" / "new" / "kept").write_text("a digest the user keeps\n")
    before = sorted((p.relative_to(data), p.stat().st_size) for p in data.rglob("*"))
    result = run_demo(data)
    assert result.returncode == ExitCode.CONFIG, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert str(data) in lines[0] and "pass an empty --data-dir" in lines[0]
    assert sorted((p.relative_to(data), p.stat().st_size) for p in data.rglob("*")) == before
