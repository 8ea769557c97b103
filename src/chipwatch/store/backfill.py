"""First-poll backfill: a new feed's history is stored and classified, never mailed.

A feed's first successful poll brings every entry it still lists, often months of them;
mailed, the first digest would be that backlog. The articles of that poll published more
than `poll.first_poll_backfill_hours` before it are flagged `backfill`, and the digest
selection leaves them out. Portable SQLAlchemy (SQLite and PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from chipwatch.store.lookup import PARAMS_PER_QUERY
from chipwatch.store.models import ArticleRow, SourceRow


def never_polled(session: Session) -> set[int]:
    """Ids of the sources without a successful poll yet: their next poll is the first."""
    query = select(SourceRow.id).where(SourceRow.last_success_at.is_(None))
    return set(session.scalars(query))


def mark_backfill(
    session: Session, source_ids: Collection[int], poll_started: datetime, hours: float
) -> int:
    """Flag the articles these sources' first poll (started at `poll_started`, naive UTC)
    stored with a publication time older than `hours` before it; returns how many."""
    cutoff = poll_started - timedelta(hours=hours)
    ids = sorted(source_ids)
    flagged = 0
    for start in range(0, len(ids), PARAMS_PER_QUERY):
        statement = (
            update(ArticleRow)
            .where(
                ArticleRow.source_id.in_(ids[start : start + PARAMS_PER_QUERY]),
                ArticleRow.fetched_at >= poll_started,
                ArticleRow.published_at < cutoff,
            )
            .values(backfill=True)
            .execution_options(synchronize_session=False)
        )
        flagged += session.execute(statement).rowcount or 0  # type: ignore[attr-defined]
    return flagged
