"""The sources repository: feeds, their HTTP validators, health and schedule.

All functions take a Session and leave committing to the caller, so the CLI and the
collector decide the transaction boundaries. Times are naive UTC.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from chipwatch.fetch import utcnow
from chipwatch.settings import PollSettings, SourceConfig
from chipwatch.store.models import SourceRow
from chipwatch.types import Source

MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class FetchOutcome:
    """What one poll learnt about a feed; the only input record_outcome needs."""

    ok: bool  # fetched (200 or 304) and, if 200, parsed
    status: int | None = None
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    not_modified: bool = False
    gone: bool = False
    permanent_redirect: str | None = None
    retry_after_seconds: float | None = None
    max_age_seconds: float | None = None
    ttl_minutes: int | None = None
    entries_per_week: float | None = None  # None: unknown (304, no dates) -> keep interval
    title: str | None = None
    site_url: str | None = None


@dataclass(frozen=True)
class FeedHealth:
    id: int
    name: str
    url: str
    enabled: bool
    consecutive_errors: int
    last_error: str | None
    last_success_at: datetime | None
    last_status: int | None
    next_check_at: datetime | None
    disabled_reason: str | None


@dataclass(frozen=True)
class SyncReport:
    added: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: int


def to_source(row: SourceRow) -> Source:
    return Source(
        id=row.id,
        url=row.url,
        name=row.name,
        full_text=row.full_text,
        etag=row.etag,
        last_modified=row.last_modified,
        language=row.language,
    )


def to_config(row: SourceRow) -> SourceConfig:
    return SourceConfig(url=row.url, name=row.name, language=row.language, full_text=row.full_text)


# --- add / list / get / remove -----------------------------------------------------------


def add_source(
    session: Session,
    url: str,
    name: str = "",
    language: str = "",
    full_text: bool = False,
    *,
    now: datetime | None = None,
) -> tuple[SourceRow, bool]:
    """Add a feed; returns (row, created). An existing URL is updated, not duplicated."""
    row = get_source(session, url)
    if row is not None:
        _apply_config(row, SourceConfig(url, name, language, full_text))
        return row, False
    row = SourceRow(
        url=url,
        name=name,
        language=language,
        full_text=full_text,
        enabled=True,
        consecutive_errors=0,
        created_at=now or utcnow(),
    )
    session.add(row)
    session.flush()
    return row, True


def get_source(session: Session, key: int | str) -> SourceRow | None:
    """By id (int or digits) or by exact URL."""
    if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
        return session.get(SourceRow, int(key))
    return session.scalars(select(SourceRow).where(SourceRow.url == key)).first()


def list_sources(session: Session, *, enabled_only: bool = False) -> list[SourceRow]:
    query = select(SourceRow).order_by(SourceRow.id)
    if enabled_only:
        query = query.where(SourceRow.enabled.is_(True))
    return list(session.scalars(query))


def remove_source(session: Session, key: int | str) -> bool:
    """Delete a feed; its articles stay (source_id becomes NULL). False if unknown."""
    row = get_source(session, key)
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


def enable_source(session: Session, key: int | str) -> bool:
    """Re-enable a disabled feed and forget its errors; it is due at once."""
    row = get_source(session, key)
    if row is None:
        return False
    row.enabled, row.disabled_reason = True, None
    row.consecutive_errors, row.next_check_at = 0, None
    return True


def sync_sources(session: Session, configs: Iterable[SourceConfig]) -> SyncReport:
    """Import config/OPML sources: add new URLs, update name/language/full_text. Idempotent.

    Sources absent from `configs` are kept: they may have been added with `chipwatch add`.
    """
    existing = {row.url: row for row in list_sources(session)}
    added: list[str] = []
    updated: list[str] = []
    unchanged = 0
    for config in configs:
        row = existing.get(config.url)
        if row is None:
            row, _ = add_source(session, config.url, config.name, config.language, config.full_text)
            existing[config.url] = row
            added.append(config.url)
        elif _apply_config(row, config):
            updated.append(config.url)
        else:
            unchanged += 1
    return SyncReport(tuple(added), tuple(updated), unchanged)


def _apply_config(row: SourceRow, config: SourceConfig) -> bool:
    changed = False
    for attr in ("name", "language", "full_text"):
        value = getattr(config, attr)
        if (value or attr == "full_text") and getattr(row, attr) != value:
            setattr(row, attr, value)
            changed = True
    return changed


# --- scheduling --------------------------------------------------------------------------


def due_sources(
    session: Session, now: datetime | None = None, *, all_feeds: bool = False
) -> list[Source]:
    """Enabled feeds whose next check has come (or all enabled feeds)."""
    query = select(SourceRow).where(SourceRow.enabled.is_(True)).order_by(SourceRow.id)
    if not all_feeds:
        now = now or utcnow()
        query = query.where(or_(SourceRow.next_check_at.is_(None), SourceRow.next_check_at <= now))
    return [to_source(row) for row in session.scalars(query)]


def adaptive_interval(entries_per_week: float | None, poll: PollSettings) -> int:
    """Minutes between checks from how often the feed publishes (Miniflux's rule)."""
    if not entries_per_week or entries_per_week <= 0:
        return poll.max_interval_minutes
    minutes = int(7 * 24 * 60 / entries_per_week)
    return max(poll.min_interval_minutes, min(poll.max_interval_minutes, minutes))


def backoff_minutes(consecutive_errors: int, poll: PollSettings) -> int:
    """Exponential back-off on repeated failures, within [min, max] interval."""
    exponent = min(max(consecutive_errors - 1, 0), 16)
    minutes = poll.min_interval_minutes * (2**exponent)
    return max(poll.min_interval_minutes, min(poll.max_interval_minutes, minutes))


def record_outcome(
    session: Session,
    source_id: int,
    outcome: FetchOutcome,
    poll: PollSettings,
    now: datetime | None = None,
) -> SourceRow | None:
    """Store validators, health and the next check time after one fetch."""
    with session.no_autoflush:  # a lookup by key: other rows' pending updates can wait
        row = session.get(SourceRow, source_id)
    if row is None:  # removed while the poll ran
        return None
    now = now or utcnow()
    row.last_checked_at = now
    row.last_status = outcome.status
    if outcome.permanent_redirect:
        _move(session, row, outcome.permanent_redirect)
    if outcome.ok:
        _record_success(row, outcome, poll, now)
    else:
        _record_failure(row, outcome, poll, now)
    return row


def _move(session: Session, row: SourceRow, new_url: str) -> None:
    clash = get_source(session, new_url)
    if clash is None:
        row.url = new_url
        row.etag = row.last_modified = None  # validators belonged to the old URL
    elif clash.id != row.id:
        # Two sources now lead to one feed: keep the other, park this one.
        row.enabled = False
        row.disabled_reason = f"moved permanently to {new_url}, already source #{clash.id}"


def _record_success(
    row: SourceRow, outcome: FetchOutcome, poll: PollSettings, now: datetime
) -> None:
    row.consecutive_errors = 0
    row.last_error = None
    row.last_success_at = now
    if outcome.etag is not None or not outcome.not_modified:
        row.etag = outcome.etag
    if outcome.last_modified is not None or not outcome.not_modified:
        row.last_modified = outcome.last_modified
    if outcome.title and not row.name:
        row.name = outcome.title[:300]
    if outcome.site_url:
        row.site_url = outcome.site_url[:2048]
    if outcome.entries_per_week is not None:
        row.interval_minutes = adaptive_interval(outcome.entries_per_week, poll)
    interval = row.interval_minutes or poll.interval_minutes
    row.next_check_at = now + timedelta(minutes=_at_least(interval, outcome, poll))


def _at_least(interval: int, outcome: FetchOutcome, poll: PollSettings) -> float:
    """No sooner than the feed's TTL, Cache-Control/Expires or Retry-After allow."""
    floors = [
        (outcome.ttl_minutes or 0),
        (outcome.max_age_seconds or 0) / 60,
        (outcome.retry_after_seconds or 0) / 60,
    ]
    # A server asking for a year's pause must not silence a feed: cap at max_interval.
    return max(interval, min(max(floors), poll.max_interval_minutes))


def _record_failure(
    row: SourceRow, outcome: FetchOutcome, poll: PollSettings, now: datetime
) -> None:
    row.consecutive_errors = (row.consecutive_errors or 0) + 1
    row.last_error = (outcome.error or "unknown error")[:MAX_ERROR_CHARS]
    if outcome.gone:
        row.enabled = False
        row.disabled_reason = "HTTP 410 Gone: the publisher removed this feed"
    elif row.consecutive_errors >= poll.max_consecutive_errors:
        row.enabled = False
        row.disabled_reason = (
            f"{row.consecutive_errors} consecutive errors; last: {row.last_error}"
        )[:MAX_ERROR_CHARS]
    wait = backoff_minutes(row.consecutive_errors, poll)
    row.next_check_at = now + timedelta(minutes=_at_least(wait, outcome, poll))


# --- health ------------------------------------------------------------------------------


def feed_health(session: Session, *, only_problems: bool = False) -> list[FeedHealth]:
    """One line per feed for `chipwatch status` and the digest footer."""
    rows: Sequence[SourceRow] = list_sources(session)
    health = [
        FeedHealth(
            id=row.id,
            name=row.name or row.url,
            url=row.url,
            enabled=row.enabled,
            consecutive_errors=row.consecutive_errors,
            last_error=row.last_error,
            last_success_at=row.last_success_at,
            last_status=row.last_status,
            next_check_at=row.next_check_at,
            disabled_reason=row.disabled_reason,
        )
        for row in rows
    ]
    if only_problems:
        health = [h for h in health if not h.enabled or h.consecutive_errors]
    return health
