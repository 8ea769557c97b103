"""The labels repository: a user's judgements on stored articles (`chipwatch label`),
which the classifier is fitted on beside the corpus."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from chipwatch.clock import utcnow
from chipwatch.store.models import ArticleRow, LabelRow
from chipwatch.types import Label


def stored_labels(session: Session) -> list[Label]:
    rows = session.execute(
        select(LabelRow, ArticleRow).join(ArticleRow).order_by(LabelRow.article_id)
    ).tuples()
    return [
        Label(str(article.id), article.title, article.text, label.relevant, tuple(label.topics))
        for label, article in rows
    ]


def set_label(
    session: Session,
    article_id: int,
    relevant: bool,
    topics: Sequence[str],
    now: datetime | None = None,
) -> bool:
    """Label an article (replacing its earlier label); False if no such article."""
    if session.get(ArticleRow, article_id) is None:
        return False
    session.execute(delete(LabelRow).where(LabelRow.article_id == article_id))
    session.add(
        LabelRow(
            article_id=article_id,
            relevant=relevant,
            topics=list(topics),
            created_at=now or utcnow(),
        )
    )
    session.flush()
    return True
