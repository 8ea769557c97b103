"""The outbox against a real SMTP server on 127.0.0.1 and a real SQLite file."""

from __future__ import annotations

import mailbox
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from smtpserver import SmtpServer
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from test_digest_data import NOW, TOPICS, add_article, make_settings, open_db, seed

from chipwatch.digest import build_digests, list_outbox, load_feed_health, preview, send_pending
from chipwatch.settings import Recipient, Settings
from chipwatch.store.models import DeliveryRow, DigestRow

pytestmark = pytest.mark.usefixtures("database_url")  # on SQLite and PostgreSQL


class Crash(Exception):
    """Stands for the process dying between the SMTP acceptance and the commit."""


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    smtp = SmtpServer().start()
    yield smtp
    smtp.stop()


def seeded(settings: Settings) -> sessionmaker[Session]:
    """The database of `settings`, with the sample articles stored."""
    factory = open_db(settings)
    with factory() as session:
        seed(session)
    return factory


@pytest.fixture
def setup(tmp_path: Path, server: SmtpServer) -> tuple[Settings, sessionmaker[Session]]:
    settings = make_settings(tmp_path, smtp_host=server.host, smtp_port=server.port)
    factory = seeded(settings)
    return settings, factory


def run(settings: Settings, factory: sessionmaker[Session], now=NOW, **kwargs):  # noqa: ANN001, ANN201
    with factory() as session:
        built = build_digests(session, settings, TOPICS, load_feed_health(session), now)
        return built, send_pending(session, settings, now, **kwargs)


def count(factory: sessionmaker[Session], model: type) -> int:
    with factory() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_digest_arrives_as_multipart_alternative_with_sections(setup, server) -> None:  # noqa: ANN001
    settings, factory = setup
    built, report = run(settings, factory)
    assert len(built) == 1 and report.sent == built and not report.failed
    assert len(server.messages) == 1
    message = server.messages[0]
    assert message.get_content_type() == "multipart/alternative"
    parts = {part.get_content_type(): part.get_content() for part in message.iter_parts()}
    assert set(parts) == {"text/plain", "text/html"}
    html, text = parts["text/html"], parts["text/plain"]
    subject = str(message["Subject"])
    assert subject == (
        "chipwatch: 5 stories, 1 licensing, 1 rare earths, 1 security, 1 China response, 1 novel"
    )
    for topic in TOPICS:
        if topic.id != "chipmaker-stakes":  # no story leads with it
            assert f'id="topic-{topic.id}"' in html
            assert topic.name.replace("'", "&#39;") in html
            assert topic.name in text
    assert "Novel: no topic yet" in html and "Novel: no topic yet" in text
    lead_url = (
        "https://harbor-wire.example/washington-lets-nvidia-resume-h20-sales-to-china-for-a-15"
    )
    assert f'href="{lead_url}' in html and lead_url in text
    assert "Also reported" in html and "Le Quotidien Tech" in html  # the French report joined
    assert "Flaky Feed" in text and "Gone Feed" in text  # feed health footer
    assert message["List-Id"] and message["Date"] and message["To"] == "reader@localhost"
    with factory() as session:
        row = session.scalars(select(DigestRow)).one()
        assert row.status == "sent" and row.transport == "smtp"
        assert str(message["Message-ID"]) == row.message_id
    assert count(factory, DeliveryRow) == 7  # every shown article, "also in" included


def test_second_run_delivers_nothing_again(setup, server) -> None:  # noqa: ANN001
    settings, factory = setup
    run(settings, factory)
    built, report = run(settings, factory, now=NOW + timedelta(hours=1))
    assert built == [] and report.sent == []
    assert len(server.messages) == 1
    with factory() as session:  # one new article: only it goes out next
        add_article(session, title="Fresh licence news on MI308 exports", text="New today.")
        session.commit()
    built, report = run(settings, factory, now=NOW + timedelta(hours=2))
    assert len(server.messages) == 2
    assert "1 story" in str(server.messages[1]["Subject"])
    assert "Fresh licence news" in server.messages[1].get_body(("plain",)).get_content()


@pytest.mark.parametrize("outage", ["down", "451"])
def test_outage_then_recovery_delivers_exactly_once(setup, server, outage: str) -> None:  # noqa: ANN001
    settings, factory = setup
    if outage == "down":
        server.stop()
    else:
        server.refuse = "451 4.3.0 Mailbox busy, try later"
    built, report = run(settings, factory)
    assert len(built) == 1 and report.sent == [] and len(report.failed) == 1
    with factory() as session:
        row = session.get(DigestRow, built[0])
        assert row.status == "pending" and row.attempts == 1 and row.last_error
        assert row.next_attempt_at == NOW + timedelta(minutes=5)
        entry = list_outbox(session)[0]
        assert entry.status == "pending" and entry.last_error == row.last_error
    assert count(factory, DeliveryRow) == 0  # nothing marked delivered
    server.refuse = None
    server.start()
    # The retry waits for its backoff; a new build does not take the pending articles.
    built2, report = run(settings, factory, now=NOW + timedelta(minutes=1))
    assert built2 == [] and report.waiting == 1 and server.messages == []
    _, report = run(settings, factory, now=NOW + timedelta(minutes=6))
    assert report.sent == built and len(server.messages) == 1
    _, report = run(settings, factory, now=NOW + timedelta(hours=1))
    assert report.sent == [] and len(server.messages) == 1
    assert count(factory, DeliveryRow) == 7


def test_crash_after_smtp_accept_resends_same_message_id(setup, server) -> None:  # noqa: ANN001
    settings, factory = setup

    def crash(_row: DigestRow) -> None:
        raise Crash

    with pytest.raises(Crash):
        run(settings, factory, after_send=crash)
    assert len(server.messages) == 1
    with factory() as session:
        assert session.scalars(select(DigestRow)).one().status == "pending"
    assert count(factory, DeliveryRow) == 0
    _, report = run(settings, factory, now=NOW + timedelta(minutes=1))
    assert len(report.sent) == 1
    # The receiver sees the same message twice, with one Message-ID to dedupe on.
    assert len(server.messages) == 2
    assert server.message_ids()[0] == server.message_ids()[1]
    assert server.raw[0] == server.raw[1]


def test_crash_after_maildir_delivery_leaves_one_copy(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)  # no SMTP host: Maildir
    factory = seeded(settings)

    def crash(_row: DigestRow) -> None:
        raise Crash

    with pytest.raises(Crash):
        run(settings, factory, after_send=crash)
    box = mailbox.Maildir(settings.maildir_path)
    assert len(box) == 1
    _, report = run(settings, factory, now=NOW + timedelta(minutes=1))
    assert len(report.sent) == 1
    assert len(mailbox.Maildir(settings.maildir_path)) == 1
    with factory() as session:
        sent = session.scalars(select(DigestRow).where(DigestRow.status == "sent")).one()
        assert sent.transport == "maildir"


def test_preview_writes_html_and_marks_nothing(setup, server, tmp_path: Path) -> None:  # noqa: ANN001
    settings, factory = setup
    target = tmp_path / "preview.html"  # an existing folder: preview makes none
    with factory() as session:
        rendered = preview(session, settings, TOPICS, [], target, now=NOW)
    assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert rendered.story_count == 5
    assert count(factory, DigestRow) == 0 and count(factory, DeliveryRow) == 0
    built, _ = run(settings, factory)
    assert len(built) == 1 and len(server.messages) == 1


def test_empty_policies(tmp_path: Path, server: SmtpServer) -> None:
    recipients = (
        Recipient("skipper@example.org", languages=("ja",)),
        Recipient("noter@example.org", languages=("ja",), when_empty="send"),
    )
    settings = make_settings(
        tmp_path, smtp_host=server.host, smtp_port=server.port, recipients=recipients
    )
    factory = seeded(settings)
    built, report = run(settings, factory)
    assert len(built) == 1 and len(report.sent) == 1
    (message,) = server.messages
    assert message["To"] == "noter@example.org"
    assert message["Subject"] == "chipwatch: nothing new"
    assert "Nothing new" in message.get_body(("plain",)).get_content()
    with factory() as session:
        statuses = dict(session.execute(select(DigestRow.recipient, DigestRow.status)).all())
    assert statuses == {"skipper@example.org": "skipped", "noter@example.org": "sent"}


def test_recipient_filters(tmp_path: Path, server: SmtpServer) -> None:
    recipients = (
        Recipient("rare@example.org", topics=("rare-earths-leverage",), include_novel=False),
        Recipient("french@example.org", languages=("fr",), min_relevance=0.85),
    )
    settings = make_settings(
        tmp_path, smtp_host=server.host, smtp_port=server.port, recipients=recipients
    )
    factory = seeded(settings)
    run(settings, factory)
    by_rcpt = {str(m["To"]): m for m in server.messages}
    assert str(by_rcpt["rare@example.org"]["Subject"]) == "chipwatch: 1 story, 1 rare earths"
    french = by_rcpt["french@example.org"].get_body(("plain",)).get_content()
    assert "Puces H20" in french and "Washington lets" not in french


def test_a_refusal_is_recorded_as_the_server_said_it(setup, server) -> None:  # noqa: ANN001
    settings, factory = setup
    server.refuse_rcpt = "550 5.1.1 No such user here"
    built, report = run(settings, factory)
    assert len(report.failed) == 1
    with factory() as session:
        error = session.get(DigestRow, built[0]).last_error
    assert "550 5.1.1 No such user here" in error and "b'" not in error  # was a bytes repr


def test_a_server_that_is_not_smtp_is_named_so(tmp_path: Path) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def greet_with_noise() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"\x00\xff binary noise, no reply code\r\n")

    threading.Thread(target=greet_with_noise, daemon=True).start()
    settings = make_settings(tmp_path, smtp_host="127.0.0.1", smtp_port=listener.getsockname()[1])
    factory = seeded(settings)
    built, report = run(settings, factory)
    listener.close()
    assert len(report.failed) == 1
    with factory() as session:
        error = session.get(DigestRow, built[0]).last_error
    # (was "-1 inary noise, no reply code")
    assert error.endswith("not an SMTP server: its reply has no SMTP reply code"), error


@pytest.mark.parametrize("smtputf8", [False, True])
def test_an_address_that_is_not_ascii(tmp_path: Path, smtputf8: bool) -> None:
    """smtplib refused it with a UnicodeEncodeError that escaped the send loop: that
    digest, and every other reader's after it, stayed unsent at each run."""
    recipients = (Recipient("josé@exämple.org"), Recipient("plain@example.org"))
    server = SmtpServer(smtputf8=smtputf8).start()
    try:
        settings = make_settings(
            tmp_path, smtp_host=server.host, smtp_port=server.port, recipients=recipients
        )
        factory = seeded(settings)
        _built, report = run(settings, factory)
    finally:
        server.stop()
    received = sorted(address for _, rcpts in server.envelopes for address in rcpts)
    if smtputf8:
        assert not report.failed and received == ["josé@exämple.org", "plain@example.org"]
    else:
        assert received == ["plain@example.org"] and len(report.failed) == 1
        assert "not ASCII and the server does not offer SMTPUTF8" in report.failed[0][1]
