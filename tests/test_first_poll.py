"""A new feed's history is stored and classified but not mailed; digests select by
publication time and say their window; `prune` and `export --csv` on a real SQLite file.

Feeds come from a real HTTP server on 127.0.0.1, digests go to a real Maildir and are
read back as email.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.utils import format_datetime
from pathlib import Path

import pytest
from feedserver import FeedServer
from sqlalchemy import func, select

from chipwatch import manage, pipeline
from chipwatch.errors import UsageError
from chipwatch.settings import Recipient, Settings, SourceConfig, load_settings, with_overrides
from chipwatch.store.models import ArticleRow, ClassificationRow, LabelRow

REPO = Path(__file__).resolve().parents[1]
NOW = datetime.now(UTC)

# Our own wording, on the subject (export licences for AI chips), so it is relevant.
ITEMS = {
    "fresh": (2, "Commerce grants licences for Nvidia H20 shipments to China"),
    "three-days": (72, "US weighs new export licence rules for AI accelerators to China"),
    "month": (24 * 30, "Washington tightens chip export controls on Chinese buyers"),
}


def rss(items: dict[str, tuple[float, str]]) -> str:
    entries = "".join(
        f"<item><title>{title}</title><link>https://news.example.org/{slug}</link>"
        f"<guid>{slug}</guid><pubDate>{format_datetime(NOW - timedelta(hours=age))}</pubDate>"
        f"<description>{title}. The Commerce Department's Bureau of Industry and Security "
        "reviews licence applications for advanced AI chips sold to Chinese customers, "
        "as lawmakers debate the national-security risks of the export controls."
        "</description></item>"
        for slug, (age, title) in items.items()
    )
    channel = f"<channel><title>Wire</title>{entries}</channel>"
    return f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>'


def make_settings(tmp_path: Path, url: str, **poll: object) -> Settings:
    config = tmp_path / "chipwatch.toml"
    config.write_text(
        f'topics = "{REPO / "config" / "topics.toml"}"\n'
        f'corpus_dir = "{REPO / "config" / "corpus"}"\n',
        encoding="utf-8",
    )
    settings = load_settings(config, data_dir=tmp_path / "data", environ={})
    reader = Recipient("reader@example.org", min_relevance=0.0)
    settings = replace(settings, sources=(SourceConfig(url, name="Wire"),), recipients=(reader,))
    return with_overrides(settings, fetch={"allow_private_networks": True}, poll=poll)


def mailed_links(settings: Settings) -> set[str]:
    links = set()
    for path in sorted(settings.maildir_path.glob("new/*")):
        message = message_from_bytes(path.read_bytes(), policy=policy.default)
        body = message.get_body(preferencelist=("html",))  # every link of a story
        text = body.get_content() if body is not None else ""
        links |= {slug for slug in [*ITEMS, "late"] if f"news.example.org/{slug}" in text}
    return links


def test_first_poll_history_is_stored_but_not_mailed(tmp_path: Path) -> None:
    with FeedServer() as server:
        server.add("/wire.xml", rss(ITEMS), headers={"Content-Type": "application/rss+xml"})
        settings = make_settings(tmp_path, server.url("/wire.xml"))
        first = pipeline.poll_and_classify(settings, all_feeds=True, classify=True)
        assert first.new_articles == 3 and first.backfill == 2
        assert "2 of them older than the first-poll backfill window" in str(first)

        run = pipeline.build_and_send_digests(settings, send=True, only=None)
        assert run.sent == 1
        assert mailed_links(settings) == {"fresh"}  # not the 3-day-old, not the month-old

        with pipeline.open_sessions(settings)() as session:  # stored and classified
            assert session.scalar(select(func.count()).select_from(ClassificationRow)) == 3
            flags = dict(session.execute(select(ArticleRow.url, ArticleRow.backfill)).all())
        assert flags == {
            "https://news.example.org/fresh": False,
            "https://news.example.org/three-days": True,
            "https://news.example.org/month": True,
        }

        # Later polls are no first poll: a late item dated three days back is mailed.
        late = {**ITEMS, "late": (70.0, "Chip export licence backlog grows at Commerce")}
        server.add("/wire.xml", rss(late), headers={"Content-Type": "application/rss+xml"})
        second = pipeline.poll_and_classify(settings, all_feeds=True, classify=True)
        assert second.new_articles == 1 and second.backfill == 0
        pipeline.build_and_send_digests(settings, send=True, only=None)
        assert mailed_links(settings) == {"fresh", "late"}


def test_the_backfill_window_is_a_setting_and_the_header_states_the_window(
    tmp_path: Path,
) -> None:
    with FeedServer() as server:
        server.add("/wire.xml", rss(ITEMS), headers={"Content-Type": "application/rss+xml"})
        settings = make_settings(tmp_path, server.url("/wire.xml"), first_poll_backfill_hours=96)
        report = pipeline.poll_and_classify(settings, all_feeds=True, classify=True)
        assert report.backfill == 1  # only the month-old item
        pipeline.build_and_send_digests(settings, send=True, only=None)
    # The month-old item is no backfill now but outside the 7-day publication window.
    assert mailed_links(settings) == {"fresh", "three-days"}
    (path,) = settings.maildir_path.glob("new/*")
    text = message_from_bytes(path.read_bytes(), policy=policy.default).get_body(
        preferencelist=("plain",)
    )
    assert text is not None
    start = (NOW - timedelta(days=7)).strftime("%d %b %Y")
    assert f"Articles published {start} – {NOW:%d %b %Y} (7 days)" in text.get_content()


def test_prune_removes_old_articles_but_keeps_labelled_ones(tmp_path: Path) -> None:
    with FeedServer() as server:
        server.add("/wire.xml", rss(ITEMS), headers={"Content-Type": "application/rss+xml"})
        settings = make_settings(tmp_path, server.url("/wire.xml"))
        pipeline.poll_and_classify(settings, all_feeds=True, classify=True)
    sessions = pipeline.open_sessions(settings)
    with sessions() as session:
        ids = dict(session.execute(select(ArticleRow.url, ArticleRow.id)).all())
    month_id = ids["https://news.example.org/month"]
    pipeline.label_article(sessions, ids["https://news.example.org/three-days"], True, ())

    with pytest.raises(UsageError, match="lookback_days"):
        manage.prune(settings, 2)  # inside the digest window: refused
    # Everything was fetched now: from 10 days on, nothing is old enough.
    assert manage.prune(settings, 10).startswith("removed 0 articles")
    later = NOW + timedelta(days=40)  # 40 days on, two of the three are older than 10 days
    assert manage.prune(settings, 10, now=later).startswith("removed 2 articles")
    with sessions() as session:
        left = session.scalars(select(ArticleRow.url)).all()
        assert left == ["https://news.example.org/three-days"]  # the labelled one
        assert session.scalar(select(func.count()).select_from(LabelRow)) == 1
        assert session.get(ClassificationRow, month_id) is None
    assert (REPO / "config" / "corpus" / "corpus.toml").is_file()

    # The setting stands in for --older-than.
    keep_all = with_overrides(settings, retention={"days": 0})
    with pytest.raises(UsageError, match="retention"):
        manage.prune(keep_all, None)


def test_export_csv_writes_every_classified_article(tmp_path: Path) -> None:
    hostile = {**ITEMS, "formula": (1.0, "=HYPERLINK(&quot;x&quot;) chip export licences")}
    with FeedServer() as server:
        server.add("/wire.xml", rss(hostile), headers={"Content-Type": "application/rss+xml"})
        settings = make_settings(tmp_path, server.url("/wire.xml"))
        pipeline.poll_and_classify(settings, all_feeds=True, classify=True)
    out = io.StringIO()
    assert manage.export_csv(settings, out) == 4
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [row["url"].rsplit("/", 1)[1] for row in rows] == [
        "formula",
        "fresh",
        "three-days",
        "month",
    ]
    assert rows[0]["title"].startswith("'=")  # not run as a formula by a spreadsheet
    assert {row["backfill"] for row in rows[2:]} == {"yes"}
    assert all(0.0 <= float(row["relevance"]) <= 1.0 for row in rows)
    assert set(rows[0]) == set(manage.CSV_COLUMNS)
    recent = io.StringIO()
    assert manage.export_csv(settings, recent, since_days=7) == 3
