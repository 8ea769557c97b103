"""Retention: remove old articles and what hangs on them; labels and the corpus stay.

An article goes when both its publication and its fetch time are older than the cutoff
(an undated article's publication time is its fetch time, so neither alone is enough to
call it old). Labelled articles are kept: a label is the user's judgement and counts at
every fit. The corpus is files under the config folder and is never touched here.
Portable SQLAlchemy (SQLite and PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Select, delete, exists, func, select
from sqlalchemy.orm import Session

from chipwatch.store.models import (
    ArticleRow,
    ClassificationRow,
    DeliveryRow,
    DigestItemRow,
    LabelRow,
)


@dataclass(frozen=True)
class PruneReport:
    articles: int
    kept_labelled: int
    cutoff: datetime

    def __str__(self) -> str:
        kept = f"; kept {self.kept_labelled} labelled" if self.kept_labelled else ""
        return f"removed {self.articles} articles older than {self.cutoff:%Y-%m-%d %H:%M} UTC{kept}"


def _old(cutoff: datetime) -> ColumnElement[bool]:
    return (ArticleRow.published_at < cutoff) & (ArticleRow.fetched_at < cutoff)


def _labelled() -> ColumnElement[bool]:
    return exists().where(LabelRow.article_id == ArticleRow.id)


def prunable_ids(cutoff: datetime) -> Select[tuple[int]]:
    return select(ArticleRow.id).where(_old(cutoff), ~_labelled())


def prune_articles(session: Session, cutoff: datetime) -> PruneReport:
    """Delete the old, unlabelled articles with their classifications, digest items and
    delivery records (explicitly: not every database enforces ON DELETE CASCADE)."""
    kept = session.scalar(
        select(func.count()).select_from(ArticleRow).where(_old(cutoff), _labelled())
    )
    ids = list(session.scalars(prunable_ids(cutoff)))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for table, column in (
            (ClassificationRow, ClassificationRow.article_id),
            (DigestItemRow, DigestItemRow.article_id),
            (DeliveryRow, DeliveryRow.article_id),
            (ArticleRow, ArticleRow.id),
        ):
            session.execute(
                delete(table).where(column.in_(chunk)).execution_options(synchronize_session=False)
            )
    return PruneReport(len(ids), int(kept or 0), cutoff)
