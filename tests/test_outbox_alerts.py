"""Alerts: immediate short mails for alert topics, rate-limited per recipient."""

from __future__ import annotations

import mailbox
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from test_digest_data import NOW, TOPICS, add_article, make_settings, open_db

from chipwatch.digest import build_alerts, build_digests, list_outbox, send_pending
from chipwatch.store.models import DeliveryRow, DigestRow

pytestmark = pytest.mark.usefixtures("database_url")  # on SQLite and PostgreSQL


def test_alerts_are_rate_limited_and_do_not_consume_the_digest(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    factory = open_db(settings)
    with factory() as session:
        for i in range(5):  # five distinct high-scoring licence stories
            add_article(
                session,
                title=f"Licence decision number {i} on accelerator model X{i}Z",
                text=f"Unrelated words {i} " * 5,
                relevance=0.9 + i / 100,
                source=f"Outlet {i}",
            )
        add_article(session, title="Low-scoring licence chatter", text="Maybe.", relevance=0.6)
        add_article(
            session,
            title="Rare earth story",
            text="Magnets.",
            relevance=0.99,
            topics=("rare-earths-leverage",),
        )  # not an alert topic
        session.commit()

        first = build_alerts(session, settings, TOPICS, NOW, per_hour=3)
        assert len(first) == 3
        assert build_alerts(session, settings, TOPICS, NOW + timedelta(minutes=30)) == []
        later = build_alerts(session, settings, TOPICS, NOW + timedelta(minutes=61), per_hour=3)
        assert len(later) == 2  # the rest, never one already alerted
        assert build_alerts(session, settings, TOPICS, NOW + timedelta(hours=3)) == []

        rows = session.scalars(select(DigestRow).where(DigestRow.kind == "alert")).all()
        assert all(
            r.subject.startswith("chipwatch alert: licensing: Licence decision") for r in rows
        )
        assert send_pending(session, settings, NOW + timedelta(hours=3)).sent
        assert session.scalars(select(DeliveryRow)).all() == []  # alerts mark nothing
        assert len(mailbox.Maildir(settings.maildir_path)) == 5

        # The digest still carries every article, alerted ones included.
        (digest_id,) = build_digests(session, settings, TOPICS, [], NOW + timedelta(hours=3))
        assert session.get(DigestRow, digest_id).subject.startswith("chipwatch: 7 stories")
        kinds = [e.kind for e in list_outbox(session)]
        assert kinds.count("alert") == 5 and kinds.count("digest") == 1


def test_old_news_new_to_the_watch_raises_no_alert(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    factory = open_db(settings)
    with factory() as session:
        add_article(
            session,
            title="Licence decision from last spring on accelerator model Q7",
            text="Found today in a feed added today.",
            relevance=0.97,
            published=NOW - timedelta(days=200),
        )
        session.commit()
        assert build_alerts(session, settings, TOPICS, NOW) == []
