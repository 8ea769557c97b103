"""The sources repository: feeds, their HTTP validators, health and schedule.

All functions take a Session and leave committing to the caller, so the CLI and the
collector decide the transaction boundaries. Times are naive UTC.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Connection, Table, Update, bindparam, or_, select, update
from sqlalchemy.orm import Session

from chipwatch.clock import utcnow
from chipwatch.errors import FeedError, FeedErrorKind
from chipwatch.settings import PollSettings, SourceConfig
from chipwatch.store.dialect import placeholder, text_value
from chipwatch.store.lookup import PARAMS_PER_QUERY
from chipwatch.store.models import SourceRow
from chipwatch.types import MAX_ROW_ID, Source

MAX_ERROR_CHARS = 500
NAME_CHARS = 300  # the columns' lengths (models.SourceRow), which PostgreSQL enforces
ETAG_CHARS = 1024
LAST_MODIFIED_CHARS = 128


@dataclass(frozen=True)
class FetchOutcome:
    """What one poll learnt about a feed; the only input record_outcome needs."""

    ok: bool  # fetched (200 or 304) and, if 200, parsed
    status: int | None = None
    error: FeedError | None = None
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
    last_error_kind: str | None = None


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
        article_text=row.article_text or "",
        etag=row.etag,
        last_modified=row.last_modified,
        language=row.language,
    )


def to_config(row: SourceRow) -> SourceConfig:
    return SourceConfig(
        url=row.url, name=row.name, language=row.language, article_text=row.article_text or ""
    )


# --- add / list / get / remove -----------------------------------------------------------


def add_source(
    session: Session,
    url: str,
    name: str = "",
    language: str = "",
    article_text: str = "",
    *,
    now: datetime | None = None,
) -> tuple[SourceRow, bool]:
    """Add a feed; returns (row, created). An existing URL is updated, not duplicated."""
    row = get_source(session, url)
    if row is not None:
        _apply_config(row, SourceConfig(url, name, language, article_text))
        return row, False
    row = SourceRow(
        url=url,
        name=name[:NAME_CHARS],
        language=language,
        article_text=article_text or None,
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
        number = int(key)
        return session.get(SourceRow, number) if 1 <= number <= MAX_ROW_ID else None
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
    """Import config/OPML sources: add new URLs, update name/language/article_text. Idempotent.

    Sources absent from `configs` are kept: they may have been added with `chipwatch add`.
    """
    existing = {row.url: row for row in list_sources(session)}
    added: list[str] = []
    updated: list[str] = []
    unchanged = 0
    for config in configs:
        row = existing.get(config.url)
        if row is None:
            row, _ = add_source(
                session, config.url, config.name, config.language, config.article_text
            )
            existing[config.url] = row
            added.append(config.url)
        elif _apply_config(row, config):
            updated.append(config.url)
        else:
            unchanged += 1
    return SyncReport(tuple(added), tuple(updated), unchanged)


def _apply_config(row: SourceRow, config: SourceConfig) -> bool:
    changed = False
    for attr in ("name", "language"):
        value = getattr(config, attr)
        if attr == "name":
            value = value[:NAME_CHARS]
        if value and getattr(row, attr) != value:
            setattr(row, attr, value)
            changed = True
    # "" is the default of the source's kind, stored as NULL (the config decides it)
    if (row.article_text or "") != config.article_text:
        row.article_text = config.article_text or None
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


@dataclass(frozen=True)
class JobStart:
    """What a feed job polls: the feed, and whether it has had no successful poll yet."""

    source: Source
    first_poll: bool


def poll_job_start(
    session: Session, source_id: int, moment: datetime, due_only: bool
) -> JobStart | None:
    """A feed job's check and its feed, in one statement: None if it has nothing to do
    (the feed is disabled or gone, or, with `due_only`, not due at `moment`; without it,
    checked at or after `moment`: a retried `poll --all` job's feed was)."""
    row = session.scalar(select(SourceRow).where(SourceRow.id == source_id))
    if row is None or not row.enabled:
        return None
    if due_only:
        if row.next_check_at is not None and row.next_check_at > moment:
            return None
    elif row.last_checked_at is not None and row.last_checked_at >= moment:
        return None
    return JobStart(to_source(row), first_poll=row.last_success_at is None)


def outcomes_since(session: Session, ids: Iterable[int], moment: datetime) -> tuple[int, int]:
    """Of the feeds `ids`: how many were checked since `moment`, and how many of those
    failed at that check (`poll --wait` exits with the poll's code from them)."""
    rows = session.execute(
        select(SourceRow.last_checked_at, SourceRow.consecutive_errors).where(
            SourceRow.id.in_(list(ids))
        )
    ).all()
    checked = [errors for at, errors in rows if at is not None and at >= moment]
    return len(checked), sum(1 for errors in checked if errors)


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
    """Store validators, health and the next check time after one fetch.

    The row as stored afterwards, or None if the source was removed while it was polled.
    `record_outcomes` does the same for many sources with a few Core statements."""
    session.flush()  # the Core statements bypass the unit of work: pending changes first
    (name,) = record_outcomes(session, [(source_id, outcome, now or utcnow())], poll)
    if name is None:
        return None
    return session.get(SourceRow, source_id, populate_existing=True)


class _SourceState:
    """The columns an outcome reads, as loaded; every assignment is also kept in
    `assigned`, which is what the UPDATE writes (the columns the outcome decides)."""

    id: int
    url: str
    name: str
    consecutive_errors: int
    interval_minutes: int | None
    assigned: dict[str, object]
    # Not loaded: only ever read after the rules assigned them.
    site_url: str | None
    enabled: bool
    disabled_reason: str | None
    etag: str | None
    last_modified: str | None
    last_checked_at: datetime | None
    next_check_at: datetime | None
    last_success_at: datetime | None
    last_status: int | None
    last_error: str | None
    last_error_kind: str | None

    def __init__(self, values: Sequence[object]) -> None:
        for name, value in zip(_LOADED, values, strict=True):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "assigned", {})

    def __setattr__(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)
        self.assigned[name] = value


_TABLE = cast(Table, SourceRow.__table__)
_LOADED = ("id", "url", "name", "consecutive_errors", "interval_minutes")
# Driver SQL: plain integers and strings, no result processing to pay for.
_LOAD_SQL = f"SELECT {', '.join(_LOADED)} FROM {_TABLE.name} WHERE id IN "
_OWNER = select(_TABLE.c.id).where(_TABLE.c.url == bindparam("url"))
_SET_URL = update(_TABLE).where(_TABLE.c.id == bindparam("k_id")).values(url=bindparam("v_url"))


def record_outcomes(
    session: Session,
    outcomes: Sequence[tuple[int, FetchOutcome, datetime]],
    poll: PollSettings,
) -> list[str | None]:
    """`record_outcome` for (source id, outcome, now) in order; each source's name after
    it (None: removed while the poll ran).

    Core statements, not the ORM unit of work: one SELECT of the five columns the rules
    read, then one executemany UPDATE per set of assigned columns (a cycle of 304s has
    two: with and without a new ETag). The ORM's identity map, attribute events, result
    processing and flush bookkeeping cost more CPU than SQLite's own work here."""
    connection = session.connection()
    ids = sorted({source_id for source_id, _, _ in outcomes})
    states = {state.id: state for state in _load(connection, ids)}
    names: list[str | None] = []
    for source_id, outcome, now in outcomes:
        state = states.get(source_id)
        if state is not None:
            _apply(connection, state, outcome, poll, now)
        names.append(None if state is None else state.name)
    _write_assigned(connection, states.values())
    return names


def _load(connection: Connection, ids: Sequence[int]) -> list[_SourceState]:
    states: list[_SourceState] = []
    for start in range(0, len(ids), PARAMS_PER_QUERY):
        chunk = ids[start : start + PARAMS_PER_QUERY]
        sql = f"{_LOAD_SQL}({','.join([placeholder(connection)] * len(chunk))})"
        result = connection.exec_driver_sql(sql, tuple(chunk))
        states.extend(map(_SourceState, result.fetchall()))
    return states


def _apply(
    connection: Connection,
    state: _SourceState,
    outcome: FetchOutcome,
    poll: PollSettings,
    now: datetime,
) -> None:
    if outcome.permanent_redirect:
        _move(connection, state, outcome.permanent_redirect)
    current = FeedState(state.name, state.consecutive_errors or 0, state.interval_minutes)
    for column, value in decide(current, outcome, poll, now).items():
        setattr(state, column, value)


def _write_assigned(connection: Connection, states: Iterable[_SourceState]) -> None:
    by_columns: dict[tuple[str, ...], list[dict[str, object]]] = {}
    for state in states:
        if state.assigned:
            params = {f"v_{name}": value for name, value in state.assigned.items()}
            params["k_id"] = state.id
            by_columns.setdefault(tuple(sorted(state.assigned)), []).append(params)
    for columns, rows in by_columns.items():
        connection.execute(_update_statement(columns), rows)


@functools.cache
def _update_statement(columns: tuple[str, ...]) -> Update:
    return (
        update(_TABLE)
        .where(_TABLE.c.id == bindparam("k_id"))
        .values({name: bindparam(f"v_{name}") for name in columns})
    )


def _move(connection: Connection, state: _SourceState, new_url: str) -> None:
    owner = connection.execute(_OWNER, {"url": new_url}).scalar()
    if owner is None:
        state.url = new_url
        state.etag = state.last_modified = None  # validators belonged to the old URL
        # Written at once, so that a later source of this batch moving to this URL, or
        # to the one this source leaves, sees it (the ORM's autoflush did that).
        connection.execute(_SET_URL, {"k_id": state.id, "v_url": new_url})
    elif owner != state.id:
        # Two sources now lead to one feed: keep the other, park this one.
        state.enabled = False
        state.disabled_reason = f"moved permanently to {new_url}, already source #{owner}"


@dataclass(frozen=True)
class FeedState:
    """What the rules read of a stored feed before an outcome."""

    name: str
    consecutive_errors: int
    interval_minutes: int | None


def decide(
    state: FeedState, outcome: FetchOutcome, poll: PollSettings, now: datetime
) -> dict[str, object]:
    """The policy, pure: the columns to store after one outcome (interval, back-off,
    disabling, health). Tested without a database; `record_outcomes` writes the result."""
    changes: dict[str, object] = {"last_checked_at": now, "last_status": outcome.status}
    if outcome.ok:
        changes.update(_success(state, outcome, poll, now))
    else:
        changes.update(_failure(state, outcome, poll, now))
    return changes


def _success(
    state: FeedState, outcome: FetchOutcome, poll: PollSettings, now: datetime
) -> dict[str, object]:
    changes: dict[str, object] = {
        "consecutive_errors": 0,
        "last_error": None,
        "last_error_kind": None,
        "last_success_at": now,
    }
    if outcome.etag is not None or not outcome.not_modified:
        changes["etag"] = _validator(outcome.etag, ETAG_CHARS)
    if outcome.last_modified is not None or not outcome.not_modified:
        changes["last_modified"] = _validator(outcome.last_modified, LAST_MODIFIED_CHARS)
    if outcome.title and not state.name:
        changes["name"] = text_value(outcome.title)[:NAME_CHARS]
    if outcome.site_url:
        changes["site_url"] = text_value(outcome.site_url)[:2048]
    interval_minutes = state.interval_minutes
    if outcome.entries_per_week is not None:
        interval_minutes = changes["interval_minutes"] = adaptive_interval(
            outcome.entries_per_week, poll
        )
    interval = interval_minutes or poll.interval_minutes
    changes["next_check_at"] = now + timedelta(minutes=_at_least(interval, outcome, poll))
    return changes


def _validator(value: str | None, limit: int) -> str | None:
    # PostgreSQL refuses a string longer than its column (SQLite stores it), and a cut
    # validator would never match: one too long for the column is not kept at all.
    return value if value is None or len(value) <= limit else None


def _at_least(interval: int, outcome: FetchOutcome, poll: PollSettings) -> float:
    """No sooner than the feed's TTL, Cache-Control/Expires or Retry-After allow."""
    floors = [
        (outcome.ttl_minutes or 0),
        (outcome.max_age_seconds or 0) / 60,
        (outcome.retry_after_seconds or 0) / 60,
    ]
    # A server asking for a year's pause must not silence a feed: cap at max_interval.
    return max(interval, min(max(floors), poll.max_interval_minutes))


def _failure(
    state: FeedState, outcome: FetchOutcome, poll: PollSettings, now: datetime
) -> dict[str, object]:
    error = outcome.error or FeedError(FeedErrorKind.INTERNAL, "unknown error")
    errors = state.consecutive_errors + 1
    message = text_value(error.message or "unknown error")[:MAX_ERROR_CHARS]
    changes: dict[str, object] = {
        "consecutive_errors": errors,
        "last_error": message,
        "last_error_kind": error.kind.value,
    }
    if outcome.gone:
        changes["enabled"] = False
        changes["disabled_reason"] = "HTTP 410 Gone: the publisher removed this feed"
    elif errors >= poll.max_consecutive_errors:
        changes["enabled"] = False
        changes["disabled_reason"] = (
            f"{errors} consecutive errors; last ({error.kind.value}): {message}"
        )[:MAX_ERROR_CHARS]
    wait = backoff_minutes(errors, poll)
    changes["next_check_at"] = now + timedelta(minutes=_at_least(wait, outcome, poll))
    return changes


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
            last_error_kind=row.last_error_kind,
        )
        for row in rows
    ]
    if only_problems:
        health = [h for h in health if not h.enabled or h.consecutive_errors]
    return health
