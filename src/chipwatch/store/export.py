"""The classified articles as flat rows, for `chipwatch export --csv`. Portable SQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from chipwatch.store.models import ArticleRow, ClassificationRow

EXPORT_BATCH = 1000


@dataclass(frozen=True)
class ExportRow:
    id: int
    published: datetime
    fetched: datetime
    source: str
    language: str
    title: str
    url: str
    relevant: bool
    relevance: float
    topics: tuple[str, ...]
    novel: bool
    backfill: bool


def classified_articles(session: Session, since: datetime | None = None) -> Iterator[ExportRow]:
    """Every classified article (published since `since`), newest first, streamed."""
    query = (
        select(ArticleRow, ClassificationRow)
        .join(ClassificationRow, ClassificationRow.article_id == ArticleRow.id)
        .order_by(ArticleRow.published_at.desc(), ArticleRow.id)
        .execution_options(yield_per=EXPORT_BATCH)
    )
    if since is not None:
        query = query.where(ArticleRow.published_at >= since)
    for article, row in session.execute(query):
        yield ExportRow(
            id=article.id,
            published=article.published_at,
            fetched=article.fetched_at,
            source=article.source_name or "",
            language=article.language or row.language or "",
            title=article.title or "",
            url=article.url or "",
            relevant=bool(row.relevant),
            relevance=float(row.relevance),
            topics=tuple(row.topics or ()),
            novel=bool(row.novel),
            backfill=bool(article.backfill),
        )
