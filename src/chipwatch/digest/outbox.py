"""The outbox: never lose a digest, never send an article twice to the same reader.

1. `build_digests` selects, groups, renders and stores each digest as a DigestRow
   (status "pending", the full message bytes, a stable Message-ID) with one DigestItemRow
   per article, and commits, all before any send is tried.
2. `send_pending` sends each due pending row. Only when the transport accepted the message
   does it mark the row "sent" and write the DeliveryRows, in one transaction. A failure
   keeps the row pending with an exponential backoff: nothing is lost.
3. A crash after the send but before that commit leaves the row pending; the retry sends
   the very same bytes with the same Message-ID. Maildir delivery skips a Message-ID it
   already holds; over SMTP, receivers that dedupe on Message-ID drop the copy.

Rows with status "skipped" record a scheduled run that found nothing new (policy "skip"),
so the schedule does not fire again until its next time.
All datetimes in the database are naive UTC.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from chipwatch.digest.assign import stored_stories
from chipwatch.digest.deliver import (
    Transport,
    build_message,
    content_hash,
    message_id,
    transport_for,
)
from chipwatch.digest.render import FeedHealth, RenderedDigest, render_alert, render_digest
from chipwatch.digest.select import select_items
from chipwatch.digest.stories import Embedder, Story
from chipwatch.errors import DeliveryError
from chipwatch.schedule import cron_trigger
from chipwatch.settings import Recipient, Settings
from chipwatch.store.models import DeliveryRow, DigestItemRow, DigestRow
from chipwatch.store.sources import feed_health
from chipwatch.types import Topic

DEFAULT_RECIPIENT = Recipient(address="reader@localhost")
RETRY_BASE = timedelta(minutes=5)  # first retry after a failed send
RETRY_CAP = timedelta(hours=6)  # never wait longer than this between two attempts
ALERT_THRESHOLD = 0.85  # story score from which an alert topic sends an immediate mail
ALERTS_PER_HOUR = 3  # per recipient
ALERT_WINDOW = timedelta(hours=24)  # only articles stored this recently can alert

AfterSend = Callable[[DigestRow], None]


@dataclass
class SendReport:
    sent: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)  # (digest id, error)
    waiting: int = 0  # pending rows whose next attempt is not due yet


@dataclass(frozen=True)
class OutboxEntry:
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


def recipients_of(settings: Settings) -> tuple[Recipient, ...]:
    """The configured recipients, or reader@localhost so a fresh install (the demo) works."""
    return settings.recipients or (DEFAULT_RECIPIENT,)


def db_time(moment: datetime) -> datetime:
    """Naive UTC, the form stored in the database."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


# --- building ---------------------------------------------------------------------------


def render_for(
    session: Session,
    settings: Settings,
    topics: Sequence[Topic],
    health: Sequence[FeedHealth],
    recipient: Recipient,
    now: datetime,
    embed: Embedder | None = None,
) -> RenderedDigest:
    """Select, group and render one recipient's next digest; writes nothing."""
    items = select_items(session, recipient, settings.digest, db_time(now))
    stories = stored_stories(session, items, embed, recipient=recipient.address)
    return render_digest(stories, topics, recipient, settings.digest, health, db_time(now))


def build_digests(
    session: Session,
    settings: Settings,
    topics: Sequence[Topic],
    health: Sequence[FeedHealth],
    now: datetime,
    *,
    recipients: Iterable[Recipient] | None = None,
    embed: Embedder | None = None,
) -> list[int]:
    """Store each recipient's digest as pending; return the ids of the rows to send."""
    built: list[int] = []
    for recipient in recipients if recipients is not None else recipients_of(settings):
        rendered = render_for(session, settings, topics, health, recipient, now, embed)
        if rendered.story_count == 0 and not _wants_empty_note(session, recipient):
            _record_skip(session, recipient, now)
            continue
        row = _store(
            session,
            settings,
            recipient,
            "digest",
            rendered.subject,
            rendered.text,
            rendered.html,
            rendered.article_ids,
            now,
        )
        built.append(row.id)
    session.commit()
    return built


def _wants_empty_note(session: Session, recipient: Recipient) -> bool:
    # "send" policy, unless a pending digest is already waiting: that one says enough.
    return recipient.when_empty == "send" and not session.scalar(
        select(func.count())
        .select_from(DigestRow)
        .where(
            DigestRow.recipient == recipient.address,
            DigestRow.kind == "digest",
            DigestRow.status == "pending",
        )
    )


def _record_skip(session: Session, recipient: Recipient, now: datetime) -> None:
    session.add(
        DigestRow(
            recipient=recipient.address,
            kind="digest",
            subject="(nothing new: skipped)",
            message_id=f"<skipped.{uuid.uuid4().hex}@chipwatch.localhost>",
            message=b"",
            status="skipped",
            attempts=0,
            created_at=db_time(now),
        )
    )


def _store(
    session: Session,
    settings: Settings,
    recipient: Recipient,
    kind: str,
    subject: str,
    text: str,
    html: str,
    article_ids: Iterable[int],
    now: datetime,
) -> DigestRow:
    """Insert the row first (its id goes into the Message-ID), then the message bytes."""
    row = DigestRow(
        recipient=recipient.address,
        kind=kind,
        subject=subject,
        message_id=f"<building.{uuid.uuid4().hex}@chipwatch.localhost>",
        message=b"",
        status="pending",
        attempts=0,
        next_attempt_at=db_time(now),
        created_at=db_time(now),
    )
    session.add(row)
    session.flush()
    row.message_id = message_id(
        row.id, recipient.address, content_hash(subject, text, html), settings.smtp.sender
    )
    row.message = build_message(
        subject=subject,
        text=text,
        html=html,
        sender=settings.smtp.sender,
        recipient=recipient.address,
        msg_id=row.message_id,
        date=_aware(now),
    ).as_bytes()
    for article_id in dict.fromkeys(article_ids):
        session.add(DigestItemRow(digest_id=row.id, article_id=article_id))
    return row


# --- sending ----------------------------------------------------------------------------


def send_pending(
    session: Session,
    settings: Settings,
    now: datetime,
    *,
    transport: Transport | None = None,
    after_send: AfterSend | None = None,
) -> SendReport:
    """Send every due pending row. `after_send` runs after acceptance, before the commit
    (tests use it to simulate a crash there)."""
    transport = transport or transport_for(settings)
    report = SendReport()
    moment = db_time(now)
    rows = session.scalars(
        select(DigestRow).where(DigestRow.status == "pending").order_by(DigestRow.id)
    ).all()
    for row in rows:
        if row.next_attempt_at is not None and row.next_attempt_at > moment:
            report.waiting += 1
            continue
        try:
            transport.send(row.message, row.recipient, row.message_id)
        except DeliveryError as exc:
            _mark_failed(row, str(exc), moment)
            session.commit()
            report.failed.append((row.id, str(exc)))
            continue
        try:
            _mark_sent(session, row, transport.name, moment)
            if after_send is not None:
                after_send(row)
            session.commit()
        except BaseException:
            session.rollback()
            raise
        report.sent.append(row.id)
    return report


def retry_delay(attempts: int) -> timedelta:
    """5 min, 10, 20, 40 … capped at 6 h."""
    return min(RETRY_BASE * (2 ** max(attempts - 1, 0)), RETRY_CAP)


def _mark_failed(row: DigestRow, error: str, moment: datetime) -> None:
    row.attempts += 1
    row.last_error = error[:2000]
    row.next_attempt_at = moment + retry_delay(row.attempts)


def _mark_sent(session: Session, row: DigestRow, transport: str, moment: datetime) -> None:
    row.attempts += 1
    row.status = "sent"
    row.sent_at = moment
    row.transport = transport
    row.last_error = None
    row.next_attempt_at = None
    if row.kind != "digest":
        return  # an alert does not take its story out of the next digest
    ids = session.scalars(
        select(DigestItemRow.article_id).where(DigestItemRow.digest_id == row.id)
    ).all()
    if ids:
        # OR IGNORE: a row from an earlier digest already guards that article.
        session.execute(
            sqlite_insert(DeliveryRow).on_conflict_do_nothing(),
            [
                {
                    "recipient": row.recipient,
                    "article_id": a,
                    "digest_id": row.id,
                    "delivered_at": moment,
                }
                for a in ids
            ],
        )


# --- preview ----------------------------------------------------------------------------


def preview(
    session: Session,
    settings: Settings,
    topics: Sequence[Topic],
    health: Sequence[FeedHealth],
    path: Path,
    recipient: Recipient | None = None,
    *,
    now: datetime | None = None,
    embed: Embedder | None = None,
) -> RenderedDigest:
    """Write the next digest's HTML to `path`. Marks nothing and stores nothing."""
    recipient = recipient or recipients_of(settings)[0]
    rendered = render_for(
        session, settings, topics, health, recipient, now or datetime.now(UTC), embed
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rendered.html, encoding="utf-8")
    return rendered


# --- schedules --------------------------------------------------------------------------


def last_run_by_recipient(session: Session) -> dict[str, datetime]:
    """When each recipient's digest was last built (sent, pending or skipped)."""
    rows = session.execute(
        select(DigestRow.recipient, func.max(DigestRow.created_at))
        .where(DigestRow.kind == "digest")
        .group_by(DigestRow.recipient)
    ).all()
    return {recipient: created for recipient, created in rows}


def due_recipients(
    settings: Settings, last_sent_by_recipient: dict[str, datetime], now: datetime
) -> list[Recipient]:
    """Recipients whose cron time passed since their last run. A recipient never served
    is due if a scheduled time fell in the last day (a fresh install catches up once)."""
    moment = _aware(now)
    due = []
    for recipient in recipients_of(settings):
        zone = ZoneInfo(recipient.timezone or settings.digest.timezone)
        trigger = cron_trigger(recipient.schedule or settings.digest.schedule, zone)
        last = last_sent_by_recipient.get(recipient.address)
        start = _aware(last) + timedelta(seconds=1) if last else moment - timedelta(days=1)
        fire = trigger.get_next_fire_time(None, start)
        if fire is not None and fire <= moment:
            due.append(recipient)
    return due


def run_due(
    session: Session,
    settings: Settings,
    topics: Sequence[Topic],
    health: Sequence[FeedHealth],
    now: datetime,
    *,
    embed: Embedder | None = None,
) -> tuple[list[int], SendReport]:
    """One scheduler tick: alerts, the digests that are due, then every due send."""
    built = build_alerts(session, settings, topics, now)
    due = due_recipients(settings, last_run_by_recipient(session), now)
    if due:
        built += build_digests(session, settings, topics, health, now, recipients=due, embed=embed)
    return built, send_pending(session, settings, now)


# --- alerts -----------------------------------------------------------------------------


def build_alerts(
    session: Session,
    settings: Settings,
    topics: Sequence[Topic],
    now: datetime,
    *,
    threshold: float = ALERT_THRESHOLD,
    per_hour: int = ALERTS_PER_HOUR,
) -> list[int]:
    """A short pending mail per new story of an `alert = true` topic scoring >= threshold,
    at most `per_hour` per recipient (counted from the alert rows of the last hour)."""
    built: list[int] = []
    for recipient in recipients_of(settings):
        alert_topics = {
            t.id: t
            for t in topics
            if t.alert and (not recipient.topics or t.id in recipient.topics)
        }
        if not alert_topics:
            continue
        hour_ago = db_time(now) - timedelta(hours=1)
        budget = per_hour - _alerts_since(session, recipient.address, hour_ago)
        for story, topic in _alert_candidates(
            session, settings, recipient, alert_topics, threshold, now
        )[: max(budget, 0)]:
            subject, html, text = render_alert(
                story, topic, settings.digest.subject_prefix, db_time(now)
            )
            row = _store(
                session, settings, recipient, "alert", subject, text, html, story.article_ids, now
            )
            built.append(row.id)
    session.commit()
    return built


def _alerts_since(session: Session, address: str, since: datetime) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(DigestRow)
            .where(
                DigestRow.recipient == address,
                DigestRow.kind == "alert",
                DigestRow.created_at >= since,
            )
        )
        or 0
    )


def _alert_candidates(
    session: Session,
    settings: Settings,
    recipient: Recipient,
    alert_topics: dict[str, Topic],
    threshold: float,
    now: datetime,
) -> list[tuple[Story, Topic]]:
    window = replace(settings.digest, lookback_days=max(ALERT_WINDOW.days, 1))
    alerted = set(
        session.scalars(
            select(DigestItemRow.article_id)
            .join(DigestRow, DigestRow.id == DigestItemRow.digest_id)
            .where(DigestRow.recipient == recipient.address, DigestRow.kind == "alert")
        )
    )
    items = [
        item
        for item in select_items(session, recipient, window, db_time(now))
        if item.relevance >= threshold
        and item.published >= db_time(now) - ALERT_WINDOW  # old news is no alert, even new to us
        and item.article_id not in alerted
        and any(t in alert_topics for t in item.topics)
    ]
    found = []
    for story in stored_stories(session, items):
        weights = {t: w for t, w in story.topic_weights().items() if t in alert_topics}
        if weights:
            found.append((story, alert_topics[max(sorted(weights), key=weights.__getitem__)]))
    return found


# --- listings ---------------------------------------------------------------------------


def list_outbox(
    session: Session, *, limit: int = 50, include_skipped: bool = False
) -> list[OutboxEntry]:
    """Newest first, for `chipwatch outbox`."""
    query = select(DigestRow).order_by(DigestRow.id.desc()).limit(limit)
    if not include_skipped:
        query = query.where(DigestRow.status != "skipped")
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


def load_feed_health(session: Session) -> list[FeedHealth]:
    """Every feed's health as the footer needs it (failing and disabled ones are shown)."""
    return [
        FeedHealth(
            name=feed.name or feed.url,
            url=feed.url,
            enabled=feed.enabled,
            consecutive_errors=feed.consecutive_errors,
            last_error=feed.disabled_reason
            if not feed.enabled and feed.disabled_reason
            else feed.last_error,
        )
        for feed in sorted(feed_health(session), key=lambda f: f.name)
    ]
