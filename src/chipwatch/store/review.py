"""Queries of the review site: per-user marks (read, star, mute/follow a story), digest
unsubscribes, topic figures, decisions on suggested topics, one article with its verdicts."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import cast

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from chipwatch.store.dialect import upsert
from chipwatch.store.models import ArticleRow, ClassificationRow, LabelRow, SourceRow
from chipwatch.store.review_models import (
    ArticleMarkRow,
    StoryMarkRow,
    TopicDecisionRow,
    UnsubscribeRow,
    UserRow,
)

NOVEL = "novel"


# --- read and star ---------------------------------------------------------------------


@dataclass(frozen=True)
class Marks:
    read: frozenset[int]
    starred: frozenset[int]


def marks_of(session: Session, user_id: int, article_ids: Iterable[int] | None = None) -> Marks:
    query = select(ArticleMarkRow).where(ArticleMarkRow.user_id == user_id)
    if article_ids is not None:
        query = query.where(ArticleMarkRow.article_id.in_(list(article_ids)))
    rows = session.scalars(query).all()
    return Marks(
        read=frozenset(r.article_id for r in rows if r.read),
        starred=frozenset(r.article_id for r in rows if r.starred),
    )


def set_mark(
    session: Session, user_id: int, article_ids: Iterable[int], field: str, on: bool, now: datetime
) -> None:
    """Set `read` or `starred` on each article for the user."""
    if field not in {"read", "starred"}:
        raise ValueError(field)
    for article_id in article_ids:
        row = {"user_id": user_id, "article_id": article_id, "read": False, "starred": False}
        upsert(
            session,
            cast(Table, ArticleMarkRow.__table__),
            {**row, field: on, "updated_at": now},
            update=[field, "updated_at"],
        )


# --- mute and follow -------------------------------------------------------------------


def story_marks(session: Session, user_id: int) -> dict[int, str]:
    rows = session.scalars(select(StoryMarkRow).where(StoryMarkRow.user_id == user_id))
    return {row.article_id: row.state for row in rows}


def mark_story(
    session: Session, user_id: int, article_ids: Iterable[int], state: str | None, now: datetime
) -> None:
    """Mute or follow (state) a story by its articles; None clears the mark."""
    ids = list(article_ids)
    session.execute(
        delete(StoryMarkRow).where(
            StoryMarkRow.user_id == user_id, StoryMarkRow.article_id.in_(ids)
        )
    )
    if state is None:
        return
    if state not in {"mute", "follow"}:
        raise ValueError(state)
    for article_id in ids:
        row = {"user_id": user_id, "article_id": article_id, "state": state, "created_at": now}
        upsert(session, cast(Table, StoryMarkRow.__table__), row, update=["state", "created_at"])


def muted_article_ids(session: Session, address: str) -> frozenset[int]:
    """Articles of stories muted by the users whose email is this digest address."""
    rows = session.scalars(
        select(StoryMarkRow.article_id)
        .join(UserRow, UserRow.id == StoryMarkRow.user_id)
        .where(UserRow.email == address, StoryMarkRow.state == "mute")
    )
    return frozenset(rows)


# --- unsubscribe -----------------------------------------------------------------------


def unsubscribe(session: Session, address: str, now: datetime) -> None:
    if session.get(UnsubscribeRow, address) is None:
        session.add(UnsubscribeRow(address=address, created_at=now))


def resubscribe(session: Session, address: str) -> None:
    session.execute(delete(UnsubscribeRow).where(UnsubscribeRow.address == address))


def is_unsubscribed(session: Session, address: str) -> bool:
    return session.get(UnsubscribeRow, address) is not None


# --- one article -----------------------------------------------------------------------


@dataclass(frozen=True)
class ArticleDetail:
    article: ArticleRow
    classification: ClassificationRow | None
    label: LabelRow | None
    source_url: str | None


def article_detail(session: Session, article_id: int) -> ArticleDetail | None:
    article = session.get(ArticleRow, article_id)
    if article is None:
        return None
    source = session.get(SourceRow, article.source_id) if article.source_id else None
    return ArticleDetail(
        article=article,
        classification=session.get(ClassificationRow, article_id),
        label=session.get(LabelRow, article_id),
        source_url=source.url if source else None,
    )


# --- topic figures ---------------------------------------------------------------------


def topic_daily_counts(session: Session, since: datetime) -> dict[str, Counter[date]]:
    """Relevant articles per topic (and "novel") per day stored, since `since`."""
    rows = session.execute(
        select(ArticleRow.fetched_at, ClassificationRow.topics, ClassificationRow.novel)
        .join(ClassificationRow, ClassificationRow.article_id == ArticleRow.id)
        .where(ClassificationRow.relevant.is_(True), ArticleRow.fetched_at >= since)
    ).all()
    counts: dict[str, Counter[date]] = defaultdict(Counter)
    for published, topics, novel in rows:
        for topic in topics or ([NOVEL] if novel else []):
            counts[topic][published.date()] += 1
    return counts


def labelled_examples(session: Session, limit: int = 200) -> list[tuple[int, str, tuple[str, ...]]]:
    """(article id, title, topics) of the relevant labels, newest first."""
    rows = session.execute(
        select(ArticleRow.id, ArticleRow.title, LabelRow.topics)
        .join(LabelRow, LabelRow.article_id == ArticleRow.id)
        .where(LabelRow.relevant.is_(True))
        .order_by(LabelRow.created_at.desc())
        .limit(limit)
    ).all()
    return [(i, title, tuple(topics or ())) for i, title, topics in rows]


def topic_decisions(session: Session) -> dict[str, str]:
    return {row.key: row.decision for row in session.scalars(select(TopicDecisionRow))}


def decide_topic(
    session: Session, key: str, decision: str, topic_id: str | None, now: datetime
) -> None:
    row = session.get(TopicDecisionRow, key)
    if row is None:
        session.add(TopicDecisionRow(key=key, decision=decision, topic_id=topic_id, created_at=now))
    else:
        row.decision, row.topic_id, row.created_at = decision, topic_id, now


def set_source_enabled(session: Session, source_id: int, enabled: bool, reason: str) -> bool:
    row = session.get(SourceRow, source_id)
    if row is None:
        return False
    row.enabled = enabled
    row.disabled_reason = None if enabled else reason
    if enabled:
        row.consecutive_errors = 0  # a re-enabled feed starts afresh
    return True
