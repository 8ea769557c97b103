"""What the review site changes in the digest: a muted story's later articles stay out of
that user's digest (and only theirs), on a real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from review_site import REPO

from chipwatch.classify import load_topics
from chipwatch.digest.outbox import render_for
from chipwatch.pipeline import open_sessions
from chipwatch.settings import Recipient, load_settings
from chipwatch.store.models import ArticleRow, ClassificationRow
from chipwatch.store.review import mark_story
from chipwatch.store.users import add_user

NOW = datetime.now(UTC).replace(tzinfo=None)
STORY = (
    "Commerce Department officials said on Tuesday that licences for Nvidia H20 "
    "accelerators bound for Chinese buyers will carry a 15 percent revenue share, "
    "according to two people briefed on the plan by Howard Lutnick's office."
)
OTHER = (
    "Beijing ordered its largest platforms to pause purchases of foreign accelerators "
    "while regulators review the security of imported chips, officials in Shenzhen said."
)


def _article(session, number: int, title: str, text: str, age: timedelta) -> int:  # noqa: ANN001
    row = ArticleRow(
        identity=f"test:{number}",
        content_hash=f"{number:064d}",
        source_name=f"Outlet {number}",
        url=f"https://example.org/{number}",
        title=title,
        text=text,
        language="en",
        published_at=NOW - age,
        fetched_at=NOW - age,
    )
    session.add(row)
    session.flush()
    session.add(
        ClassificationRow(
            article_id=row.id,
            relevant=True,
            relevance=0.9,
            topics=["ai-chip-licensing"],
            topic_scores={"ai-chip-licensing": 0.9},
            novel=False,
            language="en",
            evidence={},
            model_key="test",
            classified_at=NOW,
        )
    )
    return row.id


def test_a_muted_story_keeps_its_later_articles_out_of_that_users_digest(tmp_path: Path) -> None:
    config = tmp_path / "chipwatch.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\ntopics = "{REPO / "config" / "topics.toml"}"\n'
        f'corpus_dir = "{REPO / "config" / "corpus"}"\n',
        encoding="utf-8",
    )
    settings = load_settings(config)
    sessions = open_sessions(settings)
    with sessions.begin() as session:
        first = _article(
            session, 1, "H20 licences to carry a revenue share", STORY, timedelta(days=2)
        )
        later = _article(
            session,
            2,
            "H20 licences will carry a revenue share",
            STORY + " More.",
            timedelta(hours=3),
        )
        other = _article(
            session, 3, "Beijing pauses foreign accelerator purchases", OTHER, timedelta(hours=2)
        )
        user = add_user(session, "ann", "scrypt$x", "ann@example.org", NOW)
        assert user is not None
        mark_story(session, user.id, [first], "mute", NOW)
    topics = load_topics(settings.topics_path)
    with sessions() as session:
        muted = render_for(session, settings, topics, [], Recipient("ann@example.org"), NOW)
        plain = render_for(session, settings, topics, [], Recipient("bob@example.org"), NOW)
    assert set(plain.article_ids) == {first, later, other}  # one story of two, and one more
    assert set(muted.article_ids) == {other}  # the later article joined the muted story
