"""The classifications repository: what is left to classify, the verdicts, and the
classified articles a digest or a topic suggestion reads.

Functions take a Session and leave committing to the caller. Times are naive UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, distinct, exists, insert, select
from sqlalchemy.orm import Session

from chipwatch.clock import utcnow
from chipwatch.store.models import (
    ArticleRow,
    ClassificationRow,
    DeliveryRow,
    DigestItemRow,
    DigestKind,
    DigestRow,
    DigestStatus,
)
from chipwatch.types import Classification, ClassifyInput


@dataclass(frozen=True)
class ClassifiedArticle:
    """A stored article with its classification, as the digest reads it (raw strings:
    the digest makes them safe to show)."""

    id: int
    title: str
    text: str
    source_name: str
    url: str | None
    language: str  # the feed's or the detected language of the article
    published_at: datetime
    fetched_at: datetime
    relevance: float
    topics: tuple[str, ...]
    topic_scores: Mapping[str, float]
    novel: bool
    classified_language: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    text_kind: str | None = None  # what the classifier read (chipwatch.types.TextKind)


def as_input(row: ArticleRow) -> ClassifyInput:
    return ClassifyInput(
        id=str(row.id),
        title=row.title,
        text=row.text,
        url=row.url,
        published=row.published_at.date().isoformat(),
        language=row.language or None,
    )


def unclassified(session: Session, limit: int) -> list[ClassifyInput]:
    """The oldest `limit` stored articles that have no classification yet."""
    query = (
        select(ArticleRow)
        .outerjoin(ClassificationRow)
        .where(ClassificationRow.article_id.is_(None))
        .order_by(ArticleRow.id)
        .limit(limit)
    )
    return [as_input(row) for row in session.scalars(query)]


def unclassified_among(session: Session, ids: Sequence[int]) -> list[ClassifyInput]:
    """Those of the articles `ids` that have no classification yet (a worker's batch;
    a retried batch classifies only what its first run did not store)."""
    query = (
        select(ArticleRow)
        .outerjoin(ClassificationRow)
        .where(ClassificationRow.article_id.is_(None), ArticleRow.id.in_(list(ids)))
        .order_by(ArticleRow.id)
    )
    return [as_input(row) for row in session.scalars(query)]


def add_classifications(
    session: Session, results: Sequence[Classification], model_key: str, now: datetime | None = None
) -> None:
    """Store each result on the article its `id` names, with the key of the fitted model."""
    if not results:
        return
    moment = now or utcnow()
    session.execute(insert(ClassificationRow), [_row(r, model_key[:64], moment) for r in results])


def _row(result: Classification, key: str, moment: datetime) -> dict[str, object]:
    payload = result.to_json()
    return {
        "article_id": int(result.id),
        "relevant": result.relevant,
        "relevance": result.relevance,
        "topics": list(result.topics),
        "topic_scores": dict(payload["topic_scores"]),  # type: ignore[call-overload]
        "novel": result.novel,
        "language": result.language,
        "evidence": dict(payload["evidence"]),  # type: ignore[call-overload]
        "model_key": key,
        "classified_at": moment,
    }


def delete_all(session: Session) -> None:
    """Forget every classification (before classifying everything again)."""
    session.execute(delete(ClassificationRow))


def novel_since(session: Session, since: datetime) -> list[ClassifyInput]:
    """Articles stored since `since` that the classifier found novel (no topic fits)."""
    rows = session.scalars(
        select(ArticleRow)
        .join(ClassificationRow)
        .where(ClassificationRow.novel.is_(True), ArticleRow.fetched_at >= since)
        .order_by(ArticleRow.id)
    )
    return [as_input(row) for row in rows]


def classified_articles(
    session: Session,
    *,
    min_relevance: float,
    since: datetime,
    languages: Sequence[str] = (),
    not_delivered_to: str | None = None,
) -> list[ClassifiedArticle]:
    """Classified articles published since `since` (the stored date: the feed's, else the
    fetch time, never in the future) at or above `min_relevance`, first-poll backfill left
    out, newest first; with `not_delivered_to`, without those delivered to that recipient
    or carried by one of their pending digests."""
    query = (
        select(ArticleRow, ClassificationRow)
        .join(ClassificationRow, ClassificationRow.article_id == ArticleRow.id)
        .where(ClassificationRow.relevance >= min_relevance)
        .where(ArticleRow.published_at >= since, ArticleRow.backfill.is_(False))
        .order_by(ArticleRow.published_at.desc(), ArticleRow.id)
    )
    if languages:
        query = query.where(ArticleRow.language.in_(languages))
    if not_delivered_to is not None:
        query = query.where(~_delivered(not_delivered_to), ~_pending(not_delivered_to))
    return [_classified(article, row) for article, row in session.execute(query).tuples()]


def classified_by_ids(session: Session, article_ids: Sequence[int]) -> list[ClassifiedArticle]:
    """The classified articles with these ids, whatever their relevance or age."""
    query = (
        select(ArticleRow, ClassificationRow)
        .join(ClassificationRow, ClassificationRow.article_id == ArticleRow.id)
        .where(ArticleRow.id.in_(list(article_ids)))
        .order_by(ArticleRow.published_at.desc(), ArticleRow.id)
    )
    return [_classified(article, row) for article, row in session.execute(query).tuples()]


def _delivered(address: str):  # noqa: ANN202 - an SQL EXISTS clause
    return exists().where(
        and_(DeliveryRow.recipient == address, DeliveryRow.article_id == ArticleRow.id)
    )


def _pending(address: str):  # noqa: ANN202 - an SQL EXISTS clause
    return exists().where(
        and_(
            DigestItemRow.article_id == ArticleRow.id,
            DigestItemRow.digest_id == DigestRow.id,
            DigestRow.recipient == address,
            DigestRow.kind == DigestKind.DIGEST,
            DigestRow.status == DigestStatus.PENDING,
        )
    )


def classified_of(article: ArticleRow, row: ClassificationRow) -> ClassifiedArticle:
    """The digest's view of a stored article and its classification."""
    return _classified(article, row)


# The columns of a ClassifiedArticle, for bulk reads that need no ORM objects.
CLASSIFIED_COLUMNS = (
    ArticleRow.id,
    ArticleRow.title,
    ArticleRow.text,
    ArticleRow.source_name,
    ArticleRow.url,
    ArticleRow.language,
    ArticleRow.published_at,
    ArticleRow.fetched_at,
    ArticleRow.text_kind,
    ClassificationRow.relevance,
    ClassificationRow.topics,
    ClassificationRow.topic_scores,
    ClassificationRow.novel,
    ClassificationRow.language.label("classified_language"),
    ClassificationRow.evidence,
)


def classified_of_columns(row: Any) -> ClassifiedArticle:
    """A ClassifiedArticle from a row of `CLASSIFIED_COLUMNS` (as `classified_of`)."""
    return ClassifiedArticle(
        id=row.id,
        title=row.title or "",
        text=row.text or "",
        source_name=row.source_name or "",
        url=row.url,
        language=row.language or "",
        published_at=row.published_at,
        fetched_at=row.fetched_at,
        relevance=float(row.relevance),
        topics=tuple(row.topics or ()),
        topic_scores={str(k): float(v) for k, v in (row.topic_scores or {}).items()},
        novel=bool(row.novel),
        classified_language=row.classified_language or "",
        evidence=dict(row.evidence or {}),
        text_kind=row.text_kind,
    )


def _classified(article: ArticleRow, row: ClassificationRow) -> ClassifiedArticle:
    return ClassifiedArticle(
        id=article.id,
        title=article.title or "",
        text=article.text or "",
        source_name=article.source_name or "",
        url=article.url,
        language=article.language or "",
        published_at=article.published_at,
        fetched_at=article.fetched_at,
        relevance=float(row.relevance),
        topics=tuple(row.topics or ()),
        topic_scores={str(k): float(v) for k, v in (row.topic_scores or {}).items()},
        novel=bool(row.novel),
        classified_language=row.language or "",
        evidence=dict(row.evidence or {}),
        text_kind=article.text_kind,
    )


def article_languages(session: Session) -> list[str]:
    """The languages of the stored articles (for a filter's choices)."""
    rows = session.scalars(select(distinct(ArticleRow.language)))
    return sorted(language for language in rows if language)
