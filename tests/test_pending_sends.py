"""Pending sends said out loud: after a failed send `digest` and `outbox` say how many
digests wait and when the next attempt is due; `digest --retry-now` sends them at once.

Against a real SMTP server on 127.0.0.1 (aiosmtpd) that is down, then up, and the
real `chipwatch` command where the words are the user's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from backends import configured_url
from chipwatch_cli import run_chipwatch
from smtpserver import SmtpServer
from sqlalchemy import update
from test_digest_data import NOW, TOPICS, make_settings, open_db, seed

from chipwatch.digest import build_digests, load_feed_health, pending, send_pending
from chipwatch.errors import ExitCode
from chipwatch.store.models import DigestRow

pytestmark = pytest.mark.usefixtures("database_url")  # on SQLite and PostgreSQL

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    smtp = SmtpServer().start()
    yield smtp
    smtp.stop()


def test_pending_after_failed_send_then_retry_now(tmp_path: Path, server: SmtpServer) -> None:
    settings = make_settings(tmp_path, smtp_host=server.host, smtp_port=server.port)
    sessions = open_db(settings)
    with sessions() as session:
        seed(session)
    server.stop()  # down: connection refused
    with sessions() as session:
        built = build_digests(session, settings, TOPICS, load_feed_health(session), NOW)
        report = send_pending(session, settings, NOW)
        assert len(built) == 1 and len(report.failed) == 1
        said = pending(session).describe(NOW + timedelta(minutes=1))
    assert said == (
        "1 digest pending after a failed send; next attempt at 09:05 UTC (in 4 min); "
        "`chipwatch digest --retry-now` to send now"
    )
    server.start()
    with sessions() as session:
        waiting = send_pending(session, settings, NOW + timedelta(minutes=1))
        assert waiting.waiting == 1 and server.messages == []  # the backoff holds
        now = send_pending(session, settings, NOW + timedelta(minutes=1), retry_now=True)
        assert now.sent == built and len(server.messages) == 1
        again = send_pending(session, settings, NOW + timedelta(minutes=2), retry_now=True)
        assert again.sent == [] and len(server.messages) == 1  # at-least-once, not twice
        row = session.get(DigestRow, built[0])
        assert row is not None and server.message_ids() == [row.message_id]
        assert pending(session).describe(NOW) == ""


def test_digest_and_outbox_say_what_waits_and_retry_now_sends(
    tmp_path: Path, server: SmtpServer
) -> None:
    settings = make_settings(tmp_path, smtp_host=server.host, smtp_port=server.port)
    sessions = open_db(settings)
    with sessions() as session:
        seed(session)
    server.stop()
    with sessions() as session:
        build_digests(session, settings, TOPICS, load_feed_health(session), NOW)
        assert len(send_pending(session, settings, NOW).failed) == 1
    # The failure happened "just now": its retry is due in 12 minutes of real time.
    due = datetime.now(UTC).replace(tzinfo=None, microsecond=0) + timedelta(minutes=12)
    with sessions.begin() as session:
        session.execute(update(DigestRow).values(next_attempt_at=due))
    url = configured_url()
    config = tmp_path / "chipwatch.toml"
    config.write_text(
        (f'database_url = "{url}"\n' if url else "") + f'data_dir = "{settings.data_dir}"\n'
        f'topics = "{REPO / "config" / "topics.toml"}"\n'
        f'corpus_dir = "{REPO / "config" / "corpus"}"\n'
        f'[smtp]\nhost = "{server.host}"\nport = {server.port}\nsecurity = "none"\n',
        encoding="utf-8",
    )
    listing = run_chipwatch(config, "outbox")
    assert listing.returncode == 0, listing.stderr
    line = listing.stdout.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"1 digest pending after a failed send; next attempt at {due:%H:%M} UTC "
        r"\(in 1[12] min\); `chipwatch digest --retry-now` to send now",
        line,
    ), line
    still_down = run_chipwatch(config, "digest", "--retry-now")
    assert still_down.returncode == ExitCode.ALL_FAILED
    assert "failed 1" in still_down.stdout and "pending after a failed send" in still_down.stdout
    server.start()
    # --no-send with --retry-now sent anyway; now nothing happens and it says why.
    for extra in (
        ["--no-send"],
        ["--preview", str(tmp_path / "p.html")],
        ["--recipient", "x@y.org"],
    ):
        refused = run_chipwatch(config, "digest", "--retry-now", *extra)
        assert refused.returncode == ExitCode.CONFIG and "--retry-now" in refused.stderr
    assert server.messages == [] and not (tmp_path / "p.html").exists()
    sent = run_chipwatch(config, "digest", "--retry-now")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == "retried pending digests: sent 1, failed 0"
    assert len(server.messages) == 1
    assert "pending" not in run_chipwatch(config, "outbox").stdout
