"""Counts for metrics and `chipwatch health`, read from the database. Portable SQL.

One snapshot per scrape or health check: a handful of aggregate queries, and one pass
over the relevant articles' topic lists (JSON, counted here rather than in SQL, which
SQLite and PostgreSQL spell differently).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from chipwatch.store.models import ArticleRow, ClassificationRow, DigestRow, SourceRow


@dataclass(frozen=True)
class Snapshot:
    feeds_by_state: dict[str, int]  # ok | failing | disabled | new (never polled)
    articles: int
    classified: int
    relevant_by_topic: dict[str, int]  # "" = relevant, no topic
    novel: int
    digests_by_status: dict[str, int]  # pending | sent | failed
    last_poll_success: datetime | None  # naive UTC, the newest success of any feed
    last_digest_sent: datetime | None
    oldest_unsent_digest: datetime | None  # created_at of the oldest pending/failed one
    relevant: int = field(default=0)


def snapshot(session: Session) -> Snapshot:
    feeds: Counter[str] = Counter()
    for enabled, errors, success in session.execute(
        select(SourceRow.enabled, SourceRow.consecutive_errors, SourceRow.last_success_at)
    ):
        if not enabled:
            feeds["disabled"] += 1
        elif errors:
            feeds["failing"] += 1
        else:
            feeds["ok" if success is not None else "new"] += 1
    by_topic: Counter[str] = Counter()
    relevant = 0
    for (topics,) in session.execute(
        select(ClassificationRow.topics).where(ClassificationRow.relevant.is_(True))
    ):
        relevant += 1
        by_topic.update(topics or [""])
    digests: dict[str, int] = {
        status: count
        for status, count in session.execute(
            select(DigestRow.status, func.count()).group_by(DigestRow.status)
        )
    }
    unsent = DigestRow.status.in_(("pending", "failed"))
    return Snapshot(
        feeds_by_state={state: feeds[state] for state in ("ok", "failing", "disabled", "new")},
        articles=_count(session, ArticleRow.id),
        classified=_count(session, ClassificationRow.article_id),
        relevant_by_topic=dict(by_topic),
        novel=session.scalar(select(func.count()).where(ClassificationRow.novel.is_(True))) or 0,
        digests_by_status={s: int(digests.get(s, 0)) for s in ("pending", "sent", "failed")},
        last_poll_success=session.scalar(select(func.max(SourceRow.last_success_at))),
        last_digest_sent=session.scalar(select(func.max(DigestRow.sent_at))),
        oldest_unsent_digest=session.scalar(select(func.min(DigestRow.created_at)).where(unsent)),
        relevant=relevant,
    )


def _count_where(session: Session, condition: Any) -> int:
    return int(session.scalar(select(func.count()).where(condition)) or 0)


def _count(session: Session, column: Any) -> int:
    return int(session.scalar(select(func.count(column))) or 0)


def count_unclassified(session: Session) -> int:
    """Stored articles without a classification (the backlog `classify` works through)."""
    query = (
        select(func.count())
        .select_from(ArticleRow)
        .outerjoin(ClassificationRow, ClassificationRow.article_id == ArticleRow.id)
        .where(ClassificationRow.article_id.is_(None))
    )
    return int(session.scalar(query) or 0)
