"""Rendering: sections, subject, feed health, and what a hostile feed cannot inject."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from test_digest_data import HOSTILE_TITLE, NOW, TOPICS, add_article, make_settings, open_db, seed

from chipwatch.digest import build_digests, due_recipients, load_feed_health, preview
from chipwatch.digest.deliver import SmtpTransport
from chipwatch.digest.select import plain_text, safe_url
from chipwatch.errors import DeliveryError
from chipwatch.settings import Recipient, SmtpSettings
from chipwatch.store.models import DigestRow

FORBIDDEN = (
    "<script",
    "onerror",
    "onclick",
    "onmouseover",
    "javascript:",
    "<img",
    "tracker.example",
    "alert(",
)


@pytest.fixture
def rendered_message(tmp_path: Path, database_url: str):  # noqa: ANN201
    settings = make_settings(tmp_path)
    factory = open_db(settings)
    with factory() as session:
        seed(session)
        (digest_id,) = build_digests(session, settings, TOPICS, load_feed_health(session), NOW)
        raw = session.get(DigestRow, digest_id).message
    return BytesParser(policy=policy.default).parsebytes(raw)


def test_hostile_feed_strings_do_not_reach_html_or_text(rendered_message) -> None:  # noqa: ANN001
    html = rendered_message.get_body(("html",)).get_content()
    text = rendered_message.get_body(("plain",)).get_content()
    for needle in FORBIDDEN:
        assert needle not in html.lower(), needle
        assert needle not in text.lower(), needle
    assert "Chip curbs widen" in html and "Sly Feed" in html  # the text survives, not markup
    # Every link is http(s); the page loads nothing remote (no img, no external CSS).
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(h.startswith(("https://", "http://")) for h in hrefs)
    assert not re.search(r"\bsrc=", html)
    assert "<link" not in html


def test_plain_text_strips_markup_even_when_escaped() -> None:
    assert plain_text(HOSTILE_TITLE) == "Chip curbs widen"
    assert plain_text("&lt;script&gt;alert(1)&lt;/script&gt;ok") == "ok"
    assert plain_text("AT&amp;T  says 3 < 5") == "AT&T says 3 < 5"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://a.example/x?y=1", "https://a.example/x?y=1"),
        ("http://a.example", "http://a.example"),
        ("javascript:alert(1)", None),
        ("JaVaScRiPt://x", None),
        ("data:text/html,hi", None),
        ('https://a.example/"onmouseover=x', None),
        ("//a.example/x", None),
        ("https:///x", None),
        (None, None),
    ],
)
def test_safe_url(url: str | None, expected: str | None) -> None:
    assert safe_url(url) == expected


def test_html_is_phone_and_dark_mode_ready(rendered_message) -> None:  # noqa: ANN001
    html = rendered_message.get_body(("html",)).get_content()
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "prefers-color-scheme: dark" in html
    assert 'name="viewport"' in html and "max-width:680px" in html
    assert "overflow-wrap:anywhere" in html


def test_sections_follow_topic_order_and_feed_health(rendered_message) -> None:  # noqa: ANN001
    html = rendered_message.get_body(("html",)).get_content()
    positions = [
        html.find(f'id="topic-{t}"')
        for t in (
            "ai-chip-licensing",
            "rare-earths-leverage",
            "security-debate",
            "china-response",
            "novel",
        )
    ]
    assert all(p > 0 for p in positions) and positions == sorted(positions)
    assert "Failing: Flaky Feed" in html and "3 errors in a row" in html
    assert "Disabled: Gone Feed" in html and "HTTP 410 Gone" in html
    assert "Fine Feed" not in html  # healthy feeds are not listed
    assert "<b>unavailable" not in html


@pytest.mark.usefixtures("database_url")
def test_stories_ranked_and_capped(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings = settings.__class__(
        **{**settings.__dict__, "digest": settings.digest.__class__(max_items_per_topic=2)}
    )
    factory = open_db(settings)
    with factory() as session:
        for i, relevance in enumerate((0.6, 0.95, 0.8)):
            add_article(
                session,
                title=f"Licence story number {i} of {relevance}",
                text=f"Distinct body {i} about chips.",
                relevance=relevance,
                source=f"Outlet {i}",
            )
        session.commit()
        rendered = preview(session, settings, TOPICS, [], tmp_path / "p.html", now=NOW)
    html = rendered.html
    assert html.index("of 0.95") < html.index("of 0.8")
    assert "of 0.6" not in html and "1 more stories kept for the next digest" in html
    assert rendered.subject == "chipwatch: 2 stories, 2 licensing"


def test_smtp_refused_connection_is_a_delivery_error() -> None:
    from smtpserver import free_port

    transport = SmtpTransport(
        SmtpSettings(host="127.0.0.1", port=free_port(), security="none", timeout_seconds=2)
    )
    with pytest.raises(DeliveryError, match="127.0.0.1"):
        transport.send(b"Subject: x\r\n\r\nbody\r\n", "a@example.org", "<x@y>")


def test_due_recipients_follow_each_schedule(tmp_path: Path) -> None:
    recipients = (
        Recipient("paris@example.org"),  # default 07:30 Europe/Paris
        Recipient("ny@example.org", schedule="0 8 * * 1-5", timezone="America/New_York"),
    )
    settings = make_settings(tmp_path, recipients=recipients)
    morning = datetime(2025, 8, 12, 5, 45, tzinfo=UTC)  # 07:45 in Paris, 01:45 in New York
    last = {
        "paris@example.org": datetime(2025, 8, 11, 5, 31),
        "ny@example.org": datetime(2025, 8, 11, 12, 1),
    }
    assert [r.address for r in due_recipients(settings, last, morning)] == ["paris@example.org"]
    later = morning + timedelta(hours=6, minutes=30)  # 08:15 in New York
    assert {r.address for r in due_recipients(settings, last, later)} == {
        "paris@example.org",
        "ny@example.org",
    }
    ran = {"paris@example.org": datetime(2025, 8, 12, 5, 46)}
    # Never served: the New York run of Monday 08:00 fell within the last day, catch it up.
    assert [r.address for r in due_recipients(settings, ran, morning)] == ["ny@example.org"]
    ran["ny@example.org"] = datetime(2025, 8, 11, 12, 1)
    assert due_recipients(settings, ran, morning + timedelta(minutes=5)) == []
    # Cron weekdays: 1-5 is Monday to Friday (APScheduler alone would read Tuesday-Saturday).
    saturday = datetime(2025, 8, 16, 12, 30, tzinfo=UTC)
    friday_run = {**ran, "ny@example.org": datetime(2025, 8, 15, 12, 1)}
    assert "ny@example.org" not in {
        r.address for r in due_recipients(settings, friday_run, saturday)
    }
    monday = datetime(2025, 8, 18, 12, 30, tzinfo=UTC)
    assert "ny@example.org" in {r.address for r in due_recipients(settings, friday_run, monday)}
    # Default recipient when none is configured.
    default = make_settings(tmp_path)
    assert [r.address for r in due_recipients(default, {}, morning)] == ["reader@localhost"]
