"""The user's judgements on stored articles (LabelRow): set, read, undo.

`chipwatch label` and the review site both write here; the classifier reads every label
at its next fit (stored_labels). Each change from the site is also recorded as a
LabelEventRow holding the label it replaced, which is what undo restores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from chipwatch.errors import NotFound
from chipwatch.store.dialect import upsert
from chipwatch.store.models import ArticleRow, LabelRow
from chipwatch.store.review_models import LabelEventRow
from chipwatch.types import Label


@dataclass(frozen=True)
class StoredLabel:
    article_id: int
    relevant: bool
    topics: tuple[str, ...]
    created_at: datetime


def set_label(
    session: Session, article_id: int, relevant: bool, topics: Sequence[str], now: datetime
) -> StoredLabel | None:
    """Replace the article's label; returns the one it had (None: none)."""
    if session.get(ArticleRow, article_id) is None:
        raise NotFound(f"no stored article with id {article_id}")
    previous = get_label(session, article_id)
    _put_label(session, article_id, relevant, topics, now)
    return previous


def _put_label(
    session: Session, article_id: int, relevant: bool, topics: Sequence[str], at: datetime
) -> None:
    row = {"article_id": article_id, "relevant": relevant, "topics": list(topics), "created_at": at}
    session.flush()  # pending changes first: expire_all below would discard them
    upsert(session, cast(Table, LabelRow.__table__), row, ["relevant", "topics", "created_at"])
    session.expire_all()  # a LabelRow the session holds would hide the statement's change


def stored_labels(session: Session) -> list[Label]:
    """Every label with its article's text: what the classifier is fitted on."""
    rows = session.execute(
        select(LabelRow, ArticleRow).join(ArticleRow).order_by(LabelRow.article_id)
    ).tuples()
    return [
        Label(str(article.id), article.title, article.text, label.relevant, tuple(label.topics))
        for label, article in rows
    ]


def get_label(session: Session, article_id: int) -> StoredLabel | None:
    row = session.get(LabelRow, article_id)
    if row is None:
        return None
    return StoredLabel(row.article_id, bool(row.relevant), tuple(row.topics or ()), row.created_at)


def relabel(
    session: Session,
    article_id: int,
    relevant: bool,
    topics: Sequence[str],
    actor: str,
    now: datetime,
) -> None:
    """Set the label and remember the one it replaced, for undo."""
    previous = set_label(session, article_id, relevant, topics, now)
    session.add(
        LabelEventRow(
            article_id=article_id,
            actor=actor,
            relevant=relevant,
            topics=list(topics),
            previous=None
            if previous is None
            else {
                "relevant": previous.relevant,
                "topics": list(previous.topics),
                "created_at": previous.created_at.isoformat(),
            },
            undone=False,
            created_at=now,
        )
    )


def undo_last(session: Session, article_id: int, actor: str) -> bool:
    """Put back the label the actor's last change on this article replaced."""
    event = session.scalars(
        select(LabelEventRow)
        .where(
            LabelEventRow.article_id == article_id,
            LabelEventRow.actor == actor,
            LabelEventRow.undone.is_(False),
        )
        .order_by(LabelEventRow.id.desc())
        .limit(1)
    ).first()
    if event is None:
        return False
    event.undone = True
    if event.previous is None:
        session.execute(delete(LabelRow).where(LabelRow.article_id == article_id))
    else:
        _put_label(
            session,
            article_id,
            bool(event.previous["relevant"]),
            list(event.previous["topics"]),
            datetime.fromisoformat(event.previous["created_at"]),
        )
    return True


def can_undo(session: Session, article_id: int, actor: str) -> bool:
    return (
        session.scalar(
            select(LabelEventRow.id).where(
                LabelEventRow.article_id == article_id,
                LabelEventRow.actor == actor,
                LabelEventRow.undone.is_(False),
            )
        )
        is not None
    )


def list_labels(session: Session, limit: int = 1000) -> list[StoredLabel]:
    rows = session.scalars(select(LabelRow).order_by(LabelRow.created_at.desc()).limit(limit))
    return [
        StoredLabel(r.article_id, bool(r.relevant), tuple(r.topics or ()), r.created_at)
        for r in rows
    ]
