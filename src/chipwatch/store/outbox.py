"""The outbox repository: stored digests and alerts, their articles, their sends, and the
deliveries that keep an article from reaching the same reader twice.

Functions take a Session and leave committing to the caller (the digest stage commits
before any send and after each). Times are naive UTC.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from chipwatch.store.dialect import claim, insert_ignoring_duplicates
from chipwatch.store.models import (
    DeliveryRow,
    DigestItemRow,
    DigestKind,
    DigestRow,
    DigestStatus,
)

MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class OutboxEntry:
    """One outbox row as `chipwatch outbox` lists it."""

    id: int
    recipient: str
    kind: str
    status: str
    attempts: int
    subject: str
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None
    next_attempt_at: datetime | None
    message_id: str


@dataclass(frozen=True)
class OutboxMessage:
    """A pending row as the sender needs it: the exact bytes to send again on retry."""

    id: int
    recipient: str
    kind: str
    message: bytes
    message_id: str
    attempts: int
    next_attempt_at: datetime | None


# --- building ---------------------------------------------------------------------------


def has_pending_digest(session: Session, address: str) -> bool:
    return bool(
        session.scalar(
            select(func.count())
            .select_from(DigestRow)
            .where(
                DigestRow.recipient == address,
                DigestRow.kind == DigestKind.DIGEST,
                DigestRow.status == DigestStatus.PENDING,
            )
        )
    )


def add_skip(session: Session, address: str, now: datetime) -> None:
    """Record a scheduled digest run that found nothing new."""
    session.add(
        DigestRow(
            recipient=address,
            kind=DigestKind.DIGEST,
            subject="(nothing new: skipped)",
            message_id=f"<skipped.{uuid.uuid4().hex}@chipwatch.localhost>",
            message=b"",
            status=DigestStatus.SKIPPED,
            attempts=0,
            created_at=now,
        )
    )


def add_pending(
    session: Session, address: str, kind: DigestKind, subject: str, now: datetime
) -> int:
    """A new pending row without its message yet (its id goes into the Message-ID)."""
    row = DigestRow(
        recipient=address,
        kind=kind,
        subject=subject,
        message_id=f"<building.{uuid.uuid4().hex}@chipwatch.localhost>",
        message=b"",
        status=DigestStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row.id


def set_message(
    session: Session,
    digest_id: int,
    message_id: str,
    message: bytes,
    article_ids: Iterable[int],
) -> None:
    """The built message of a pending row, and the articles it carries."""
    session.execute(
        update(DigestRow)
        .where(DigestRow.id == digest_id)
        .values(message_id=message_id, message=message)
    )
    session.add_all(
        DigestItemRow(digest_id=digest_id, article_id=article_id)
        for article_id in dict.fromkeys(article_ids)
    )
    session.flush()


# --- sending ----------------------------------------------------------------------------


def pending_ids(session: Session, recipient: str | None = None) -> list[int]:
    query = select(DigestRow.id).where(DigestRow.status == DigestStatus.PENDING)
    if recipient is not None:
        query = query.where(DigestRow.recipient == recipient)
    return list(session.scalars(query.order_by(DigestRow.id)))


def claim_pending(session: Session, digest_id: int) -> OutboxMessage | None:
    """The row if still pending and no other sender holds it; held by this session's
    transaction until it commits (so two hosts never send the same row at once)."""
    row = session.execute(
        claim(
            select(
                DigestRow.id,
                DigestRow.recipient,
                DigestRow.kind,
                DigestRow.message,
                DigestRow.message_id,
                DigestRow.attempts,
                DigestRow.next_attempt_at,
            ).where(DigestRow.id == digest_id, DigestRow.status == DigestStatus.PENDING)
        )
    ).first()
    if row is None:
        return None
    return OutboxMessage(
        id=row.id,
        recipient=row.recipient,
        kind=row.kind,
        message=bytes(row.message),
        message_id=row.message_id,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
    )


def mark_failed(
    session: Session, message: OutboxMessage, error: str, next_attempt_at: datetime
) -> None:
    session.execute(
        update(DigestRow)
        .where(DigestRow.id == message.id)
        .values(
            attempts=DigestRow.attempts + 1,
            last_error=error[:MAX_ERROR_CHARS],
            next_attempt_at=next_attempt_at,
        )
    )


def mark_sent(session: Session, message: OutboxMessage, transport: str, moment: datetime) -> None:
    """Sent: and, for a digest, each of its articles delivered to its recipient."""
    session.execute(
        update(DigestRow)
        .where(DigestRow.id == message.id)
        .values(
            attempts=DigestRow.attempts + 1,
            status=DigestStatus.SENT,
            sent_at=moment,
            transport=transport,
            last_error=None,
            next_attempt_at=None,
        )
    )
    if message.kind != DigestKind.DIGEST:
        return  # an alert does not take its story out of the next digest
    ids = session.scalars(
        select(DigestItemRow.article_id).where(DigestItemRow.digest_id == message.id)
    ).all()
    # Duplicates skipped: a row from an earlier digest already guards that article.
    insert_ignoring_duplicates(
        session,
        cast(Table, DeliveryRow.__table__),
        [
            {
                "recipient": message.recipient,
                "article_id": article_id,
                "digest_id": message.id,
                "delivered_at": moment,
            }
            for article_id in ids
        ],
    )


def pending_counts(session: Session) -> tuple[int, int, datetime | None]:
    """Pending rows: how many, how many of them after a failed send, and the earliest
    next attempt among those (naive UTC)."""
    row = session.execute(
        select(
            func.count(),
            func.count().filter(DigestRow.attempts > 0),
            func.min(DigestRow.next_attempt_at).filter(DigestRow.attempts > 0),
        ).where(DigestRow.status == DigestStatus.PENDING)
    ).one()
    return int(row[0] or 0), int(row[1] or 0), row[2]


# --- schedules and alerts ---------------------------------------------------------------


def last_run_by_recipient(session: Session) -> dict[str, datetime]:
    """When each recipient's digest was last built (sent, pending or skipped)."""
    rows = session.execute(
        select(DigestRow.recipient, func.max(DigestRow.created_at))
        .where(DigestRow.kind == DigestKind.DIGEST)
        .group_by(DigestRow.recipient)
    ).tuples()
    return {recipient: created for recipient, created in rows}


def alerts_since(session: Session, address: str, since: datetime) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(DigestRow)
            .where(
                DigestRow.recipient == address,
                DigestRow.kind == DigestKind.ALERT,
                DigestRow.created_at >= since,
            )
        )
        or 0
    )


def alerted_article_ids(session: Session, address: str) -> set[int]:
    return set(
        session.scalars(
            select(DigestItemRow.article_id)
            .join(DigestRow, DigestRow.id == DigestItemRow.digest_id)
            .where(DigestRow.recipient == address, DigestRow.kind == DigestKind.ALERT)
        )
    )


# --- listings ---------------------------------------------------------------------------


def list_entries(
    session: Session, *, limit: int = 50, include_skipped: bool = False
) -> list[OutboxEntry]:
    """Newest first."""
    query = select(DigestRow).order_by(DigestRow.id.desc()).limit(limit)
    if not include_skipped:
        query = query.where(DigestRow.status != DigestStatus.SKIPPED)
    return [
        OutboxEntry(
            id=row.id,
            recipient=row.recipient,
            kind=row.kind,
            status=row.status,
            attempts=row.attempts,
            subject=row.subject,
            last_error=row.last_error,
            created_at=row.created_at,
            sent_at=row.sent_at,
            next_attempt_at=row.next_attempt_at,
            message_id=row.message_id,
        )
        for row in session.scalars(query)
    ]


def next_attempt_at(session: Session, digest_id: int) -> datetime | None:
    """When a failed send of this digest is due to be tried again (None: not scheduled)."""
    row = session.get(DigestRow, digest_id)
    return row.next_attempt_at if row is not None else None
