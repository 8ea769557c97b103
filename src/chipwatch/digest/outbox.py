"""The outbox: never lose a digest, never send an article twice to the same reader.

1. `build_digests` selects, groups, renders and stores each digest in the outbox
   (status pending, the full message bytes, a stable Message-ID) with the articles it
   carries, and commits, all before any send is tried.
2. `send_pending` sends each due pending row. Only when the transport accepted the message
   does it mark the row sent and record the deliveries, in one transaction. A failure
   keeps the row pending with an exponential backoff: nothing is lost.
3. A crash after the send but before that commit leaves the row pending; the retry sends
   the very same bytes with the same Message-ID. Maildir delivery skips a Message-ID it
   already holds; over SMTP, receivers that dedupe on Message-ID drop the copy.

Rows with status skipped record a scheduled run that found nothing new (policy "skip"),
so the schedule does not fire again until its next time.
All datetimes in the database are naive UTC. The queries are in `store.outbox`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from chipwatch.digest.assign import stored_stories
from chipwatch.digest.deliver import (
    Transport,
    build_message,
    content_hash,
    message_id,
    transport_for,
)
from chipwatch.digest.links import links_for
from chipwatch.digest.mutes import without_muted
from chipwatch.digest.render import FeedHealth, RenderedDigest, render_alert, render_digest
from chipwatch.digest.select import select_items
from chipwatch.digest.stories import Embedder, Story
from chipwatch.errors import DeliveryError
from chipwatch.schedule import cron_trigger
from chipwatch.settings import Recipient, Settings
from chipwatch.store import outbox as store
from chipwatch.store.models import DigestKind
from chipwatch.store.outbox import OutboxEntry, OutboxMessage
from chipwatch.store.review import is_unsubscribed
from chipwatch.store.sources import feed_health
from chipwatch.types import Topic

DEFAULT_RECIPIENT = Recipient(address="reader@localhost")
RETRY_BASE = timedelta(minutes=5)  # first retry after a failed send
RETRY_CAP = timedelta(hours=6)  # never wait longer than this between two attempts
ALERT_THRESHOLD = 0.85  # story score from which an alert topic sends an immediate mail
ALERTS_PER_HOUR = 3  # per recipient
ALERT_WINDOW = timedelta(hours=24)  # only articles stored this recently can alert

AfterSend = Callable[[OutboxMessage], None]


@dataclass
class SendReport:
    sent: list[int] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)  # (digest id, error)
    waiting: int = 0  # pending rows whose next attempt is not due yet


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
    stories = without_muted(
        session,
        recipient.address,
        items,
        lambda found: stored_stories(session, found, embed, recipient=recipient.address),
    )
    links = links_for(settings, recipient.address, now)
    return render_digest(
        stories, topics, recipient, settings.digest, health, db_time(now), links=links
    )


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
        if is_unsubscribed(session, recipient.address):
            continue  # by the List-Unsubscribe link or the review site's account page
        rendered = render_for(session, settings, topics, health, recipient, now, embed)
        if rendered.story_count == 0 and not _wants_empty_note(session, recipient):
            store.add_skip(session, recipient.address, db_time(now))
            continue
        digest_id = _store(
            session,
            settings,
            recipient,
            DigestKind.DIGEST,
            rendered.subject,
            rendered.text,
            rendered.html,
            rendered.article_ids,
            now,
        )
        built.append(digest_id)
    session.commit()
    return built


def _wants_empty_note(session: Session, recipient: Recipient) -> bool:
    # "send" policy, unless a pending digest is already waiting: that one says enough.
    return recipient.when_empty == "send" and not store.has_pending_digest(
        session, recipient.address
    )


def _store(
    session: Session,
    settings: Settings,
    recipient: Recipient,
    kind: DigestKind,
    subject: str,
    text: str,
    html: str,
    article_ids: Iterable[int],
    now: datetime,
) -> int:
    """Insert the row first (its id goes into the Message-ID), then the message bytes."""
    digest_id = store.add_pending(session, recipient.address, kind, subject, db_time(now))
    msg_id = message_id(
        digest_id, recipient.address, content_hash(subject, text, html), settings.smtp.sender
    )
    message = build_message(
        subject=subject,
        text=text,
        html=html,
        sender=settings.smtp.sender,
        recipient=recipient.address,
        msg_id=msg_id,
        date=_aware(now),
        extra_headers=links_for(settings, recipient.address, now).headers(),
    ).as_bytes()
    store.set_message(session, digest_id, msg_id, message, article_ids)
    return digest_id


# --- sending ----------------------------------------------------------------------------


def send_pending(
    session: Session,
    settings: Settings,
    now: datetime,
    *,
    transport: Transport | None = None,
    after_send: AfterSend | None = None,
    retry_now: bool = False,
    recipient: str | None = None,
) -> SendReport:
    """Send every due pending row (with `retry_now`, every pending row, its backoff
    ignored). Each row is one recipient's message and is committed as sent right after
    its server accepted it, before the next is tried: a crash loses at most that one
    commit, and the retry sends the same bytes with the same Message-ID (docs/digest.md).
    `after_send` runs after acceptance, before the commit (tests simulate a crash there).
    `recipient`: only that reader's rows (a worker's digest job for one recipient)."""
    transport = transport or transport_for(settings)
    report = SendReport()
    moment = db_time(now)
    for digest_id in store.pending_ids(session, recipient):
        row = store.claim_pending(session, digest_id)
        if row is None:  # sent meanwhile, or another sender holds it
            session.rollback()
            continue
        if not retry_now and row.next_attempt_at is not None and row.next_attempt_at > moment:
            report.waiting += 1
            session.rollback()
            continue
        try:
            transport.send(row.message, row.recipient, row.message_id)
        except DeliveryError as exc:
            store.mark_failed(session, row, str(exc), moment + retry_delay(row.attempts + 1))
            session.commit()
            report.failed.append((row.id, str(exc)))
            continue
        try:
            store.mark_sent(session, row, transport.name, moment)
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


@dataclass(frozen=True)
class Pending:
    """What waits in the outbox, as `digest` and `outbox` say it."""

    count: int
    failed: int  # of which after a failed send (waiting out a backoff)
    next_attempt: datetime | None  # the earliest retry among those (aware UTC)

    def describe(self, now: datetime) -> str:
        """ "" when nothing waits; else one line with when and how to send now."""
        if not self.count:
            return ""
        noun = "digest" if self.count == 1 else "digests"
        if not self.failed or self.next_attempt is None:
            return f"{self.count} {noun} pending (not sent yet); `chipwatch digest` sends them"
        after = "" if self.failed == self.count else f" ({self.failed} of them)"
        wait = self.next_attempt - _aware(now)
        when = f"{self.next_attempt:%H:%M} UTC ({_in(wait)})"
        return (
            f"{self.count} {noun} pending after a failed send{after}; next attempt at {when}; "
            "`chipwatch digest --retry-now` to send now"
        )


def _in(wait: timedelta) -> str:
    if wait <= timedelta(0):
        return "due now"
    minutes = -(-int(wait.total_seconds()) // 60)  # rounded up: "in 1 min", never "in 0"
    if minutes < 90:
        return f"in {minutes} min"
    return f"in {minutes // 60} h {minutes % 60} min"


def pending(session: Session) -> Pending:
    count, failed, next_attempt = store.pending_counts(session)
    return Pending(count, failed, None if next_attempt is None else _aware(next_attempt))


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
    """Write the next digest's HTML to `path` (replaced once complete; an OSError is a
    UsageError naming it). Marks nothing and stores nothing."""
    recipient = recipient or recipients_of(settings)[0]
    rendered = render_for(
        session, settings, topics, health, recipient, now or datetime.now(UTC), embed
    )
    from chipwatch.outfile import write_replacing

    # No folder is made: a missing one is the user's typo (the command refuses it first).
    write_replacing(path, "digest preview", lambda out: out.write(rendered.html))
    return rendered


# --- schedules --------------------------------------------------------------------------


def last_run_by_recipient(session: Session) -> dict[str, datetime]:
    """When each recipient's digest was last built (sent, pending or skipped)."""
    return store.last_run_by_recipient(session)


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
        if is_unsubscribed(session, recipient.address):
            continue
        alert_topics = {
            t.id: t
            for t in topics
            if t.alert and (not recipient.topics or t.id in recipient.topics)
        }
        if not alert_topics:
            continue
        hour_ago = db_time(now) - timedelta(hours=1)
        budget = per_hour - store.alerts_since(session, recipient.address, hour_ago)
        for story, topic in _alert_candidates(
            session, settings, recipient, alert_topics, threshold, now
        )[: max(budget, 0)]:
            subject, html, text = render_alert(
                story, topic, settings.digest.subject_prefix, db_time(now)
            )
            built.append(
                _store(
                    session,
                    settings,
                    recipient,
                    DigestKind.ALERT,
                    subject,
                    text,
                    html,
                    story.article_ids,
                    now,
                )
            )
    session.commit()
    return built


def _alert_candidates(
    session: Session,
    settings: Settings,
    recipient: Recipient,
    alert_topics: dict[str, Topic],
    threshold: float,
    now: datetime,
) -> list[tuple[Story, Topic]]:
    window = replace(settings.digest, lookback_days=max(ALERT_WINDOW.days, 1))
    alerted = store.alerted_article_ids(session, recipient.address)
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
    return store.list_entries(session, limit=limit, include_skipped=include_skipped)


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
            polled=feed.last_success_at is not None,
        )
        for feed in sorted(feed_health(session), key=lambda f: f.name)
    ]
