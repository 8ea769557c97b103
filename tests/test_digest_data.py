"""Shared test data for the digest tests: settings, topics and a seeded database.

Not a test module itself (it holds no tests); the digest, outbox and story tests import it.
The articles are written for these tests.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from backends import configured_url
from sqlalchemy.orm import Session, sessionmaker

from chipwatch.settings import Recipient, Settings, SmtpSettings
from chipwatch.store.db import open_database
from chipwatch.store.models import ArticleRow, ClassificationRow, SourceRow
from chipwatch.types import Topic

NOW = datetime(2025, 8, 12, 9, 0, 0)  # naive UTC, as stored

TOPICS: tuple[Topic, ...] = (
    Topic("ai-chip-licensing", "US licensing of AI chip sales to China", "licences", alert=True),
    Topic("rare-earths-leverage", "Rare earths and critical minerals as leverage", "minerals"),
    Topic("security-debate", "National-security debate", "hawks and doves"),
    Topic("chipmaker-stakes", "Chipmakers' commercial stakes", "revenue"),
    Topic("china-response", "China's response and domestic alternatives", "Beijing"),
)

HOSTILE_TITLE = '<script>alert("t")</script>Chip curbs <img src=x onerror="alert(1)"> widen'
HOSTILE_TEXT = (
    'Officials widened the curbs. <a href="javascript:alert(2)" onclick="steal()">details</a>'
    ' <img src="https://tracker.example/pixel.gif" width=1> &lt;script&gt;alert(3)&lt;/script&gt;'
    " The rule covers Huawei Ascend parts."
)


def make_settings(
    tmp_path: Path,
    *,
    smtp_host: str = "",
    smtp_port: int = 25,
    recipients: tuple[Recipient, ...] = (),
) -> Settings:
    smtp = SmtpSettings(host=smtp_host, port=smtp_port, security="none", timeout_seconds=5.0)
    return Settings(
        config_path=tmp_path / "chipwatch.toml",
        config_dir=tmp_path,
        data_dir=tmp_path / "data",
        topics_path=tmp_path / "topics.toml",
        corpus_dir=tmp_path / "corpus",
        smtp=smtp,
        recipients=recipients,
        database_url=configured_url(),  # set by the `database_url` fixture (conftest)
    )


def with_smtp(settings: Settings, host: str, port: int) -> Settings:
    return replace(settings, smtp=replace(settings.smtp, host=host, port=port))


def open_db(settings: Settings) -> sessionmaker[Session]:
    return open_database(settings.store_url).sessions


_counter = 0


def add_article(
    session: Session,
    *,
    title: str,
    text: str,
    source: str = "Wire",
    language: str = "en",
    url: str | None = None,
    published: datetime = NOW - timedelta(hours=3),
    fetched: datetime | None = None,
    relevance: float = 0.9,
    topics: tuple[str, ...] = ("ai-chip-licensing",),
    topic_scores: dict[str, float] | None = None,
    novel: bool = False,
    summary: str = "",
    matched: dict[str, list[str]] | None = None,
) -> int:
    global _counter
    _counter += 1
    article = ArticleRow(
        identity=f"test:{_counter}:{title[:40]}",
        content_hash=f"{_counter:064d}",
        source_name=source,
        url=url if url is not None else f"https://{_slug(source)}.example/{_slug(title)}",
        title=title,
        text=text,
        language=language,
        published_at=published,
        fetched_at=fetched or published + timedelta(minutes=20),
    )
    session.add(article)
    session.flush()
    evidence: dict[str, Any] = {"summary": summary, "matched_terms": matched or {}, "passages": []}
    session.add(
        ClassificationRow(
            article_id=article.id,
            relevant=relevance >= 0.5,
            relevance=relevance,
            topics=list(topics),
            topic_scores=topic_scores or {t: 0.8 for t in topics},
            novel=novel,
            language=language,
            evidence=evidence,
            model_key="test",
            classified_at=NOW - timedelta(hours=1),
        )
    )
    session.flush()
    return article.id


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "x"


def seed(session: Session) -> dict[str, int]:
    """A small week of news: one cross-lingual story, one syndicated copy, other topics,
    a novel item, a hostile entry, and items that must stay out."""
    ids = {
        "h20_en": add_article(
            session,
            title="Washington lets Nvidia resume H20 sales to China for a 15% cut",
            text="Commerce Secretary Howard Lutnick confirmed that Nvidia and AMD will hand 15% "
            "of their China revenue from H20 and MI308 chips to the US government in exchange "
            "for export licences. Critics in Congress called the arrangement unprecedented.",
            source="Harbor Wire",
            topics=("ai-chip-licensing", "chipmaker-stakes"),
            topic_scores={"ai-chip-licensing": 0.93, "chipmaker-stakes": 0.6},
            relevance=0.95,
            summary="Licences for the H20 in exchange for a revenue share.",
        ),
        "h20_fr": add_article(
            session,
            title="Puces H20 : Nvidia pourra revendre en Chine contre 15 % de ses recettes",
            text="Selon Howard Lutnick, Nvidia et AMD verseront 15 % des revenus tirés des puces "
            "H20 et MI308 vendues en Chine au gouvernement américain pour obtenir les licences.",
            source="Le Quotidien Tech",
            language="fr",
            published=NOW - timedelta(hours=2),
            topics=("ai-chip-licensing",),
            relevance=0.9,
        ),
        "h20_copy": add_article(
            session,
            title="Washington lets Nvidia resume H20 sales to China for a 15% cut",
            text="Commerce Secretary Howard Lutnick confirmed that Nvidia and AMD will hand 15% "
            "of their China revenue from H20 and MI308 chips to the US government in exchange "
            "for export licences. Critics in Congress called the arrangement unprecedented.",
            source="Metro Daily",
            published=NOW - timedelta(hours=1),
            topics=("ai-chip-licensing",),
            relevance=0.88,
        ),
        "magnets": add_article(
            session,
            title="Beijing slows permanent magnet export permits before trade talks",
            text="Chinese customs have held up licences for rare earth magnets, a lever "
            "negotiators expect to trade against American chip restrictions.",
            source="Ore Report",
            topics=("rare-earths-leverage",),
            relevance=0.8,
            published=NOW - timedelta(days=1),
            matched={"rare-earths-leverage": ["rare earth", "magnet"]},
        ),
        "senators": add_article(
            session,
            title="US-Senatoren wollen Exportlizenzen für KI-Chips gesetzlich begrenzen",
            text="Eine Gruppe von Senatoren legte einen Entwurf vor, der dem Handelsministerium "
            "Ausnahmen für Lieferungen nach China untersagen würde.",
            source="Rundschau Digital",
            language="de",
            topics=("security-debate",),
            relevance=0.75,
            published=NOW - timedelta(days=2),
        ),
        "asml": add_article(
            session,
            title="The Hague adds servicing of older DUV scanners to its licence list",
            text="The Dutch government now requires a licence to maintain ASML immersion "
            "systems already installed in China.",
            source="Lowlands Tech",
            topics=(),
            topic_scores={},
            novel=True,
            relevance=0.7,
            published=NOW - timedelta(hours=30),
        ),
        "hostile": add_article(
            session,
            title=HOSTILE_TITLE,
            text=HOSTILE_TEXT,
            source='<b onmouseover="alert(5)">Sly Feed</b>',
            url="javascript:alert(4)",
            topics=("china-response",),
            relevance=0.7,
            published=NOW - timedelta(hours=10),
            summary='<img src="https://tracker.example/e.gif" onerror="x()">Matched Ascend',
        ),
        "irrelevant": add_article(
            session,
            title="A new gaming GPU launches with more memory",
            text="The card ships next month.",
            relevance=0.1,
            topics=(),
        ),
        "old": add_article(
            session,
            title="An old licence story from last month",
            text="Stored long ago.",
            published=NOW - timedelta(days=30),
        ),
    }
    session.add_all(
        [
            SourceRow(
                url="https://feeds.example/ok",
                name="Fine Feed",
                enabled=True,
                consecutive_errors=0,
                created_at=NOW,
            ),
            SourceRow(
                url="https://feeds.example/broken",
                name="Flaky Feed",
                enabled=True,
                consecutive_errors=3,
                last_error="HTTP 503 <b>unavailable</b>",
                created_at=NOW,
            ),
            SourceRow(
                url="https://feeds.example/gone",
                name="Gone Feed",
                enabled=False,
                consecutive_errors=10,
                disabled_reason="HTTP 410 Gone",
                created_at=NOW,
            ),
        ]
    )
    session.commit()
    return ids


EXPECTED_SHOWN = ("h20_en", "h20_fr", "h20_copy", "magnets", "senators", "asml", "hostile")
