"""What each job does. A job carries ids and a schedule slot (a Unix timestamp), never a
body or a path; it reads everything else from the shared database, and doing it twice
(a worker killed midway, its job retried elsewhere) does no work twice that was done:

- poll_feed(source_id, slot): skipped if the feed is no longer due at the slot (with
  `poll --all`: if it was checked at or after the slot); else one feed through the
  collector, recorded with the slot as its check time. A feed's job holds the feed's
  guard (store.host_gate): a second job meanwhile does nothing;
- classify_articles(article_ids): only those of the ids still unclassified;
- send_digest(address, slot): built only if the reader's schedule is due at the slot
  (a built digest counts as the reader's run), then that reader's pending rows sent
  through the outbox (claimed row by row: one sender per row);
- retry_outbox(): the outbox's due retries;
- tick(timestamp): defers the due feeds, the due digests, the outbox retry, and the
  deletion of jobs finished more than `[workers].keep_jobs_hours` ago; a second tick job
  for the same timestamp does nothing (see `tick`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from chipwatch.queue.app import CLASSIFY
from chipwatch.settings import Settings

if TYPE_CHECKING:
    import procrastinate

    from chipwatch.collect import ParsePool
    from chipwatch.fetch import Fetcher
    from chipwatch.store.host_gate import HostGate
    from chipwatch.store.sources import JobStart

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """What the jobs of one worker process share."""

    settings: Settings
    sessions: sessionmaker[Session]
    app: procrastinate.App
    pool: ParsePool
    gate: HostGate | None
    # The worker's feed and page fetchers (set in its event loop): kept open across jobs,
    # so connections are reused and the per-host limits hold for all of its jobs.
    fetchers: list[tuple[Fetcher, Fetcher]] = field(default_factory=list)
    # The slot this process last pruned the page cache for: a slot's feed jobs share the
    # cutoff, so one DELETE per slot and worker instead of one per feed job.
    pruned_slot: list[int] = field(default_factory=list)


_RUNTIME: list[Runtime] = []


def install(runtime: Runtime) -> None:
    _RUNTIME[:] = [runtime]


def runtime() -> Runtime:
    if not _RUNTIME:
        raise RuntimeError("chipwatch tasks run inside `chipwatch worker`")
    return _RUNTIME[0]


def slot_time(slot: int) -> datetime:
    """The slot as the database keeps times: naive UTC."""
    return datetime.fromtimestamp(slot, UTC).replace(tzinfo=None)


# --- poll --------------------------------------------------------------------------------


async def poll_feed(
    source_id: int, slot: int, classify: bool = True, due_only: bool = True
) -> None:
    rt = runtime()
    guard = rt.gate.feed(source_id) if rt.gate is not None else _always()
    async with guard as mine:
        if mine:  # else another job polls the feed right now: this one adds nothing
            await _poll_feed(rt, source_id, slot, classify, due_only)


async def _poll_feed(
    rt: Runtime, source_id: int, slot: int, classify: bool, due_only: bool
) -> None:
    from chipwatch import collect
    from chipwatch.pipeline import CLASSIFY_BATCH

    moment = slot_time(slot)
    job = await asyncio.to_thread(_before_poll, rt.sessions, source_id, moment, due_only)
    if job is None:
        return  # polled already: a retried job whose first run stored, or a second defer
    prune = rt.pruned_slot != [slot]
    rt.pruned_slot[:] = [slot]
    report = await collect.poll(
        rt.settings,
        rt.sessions,
        now=moment,
        pool=rt.pool,
        sources=[job.source],
        fetchers=rt.fetchers[0] if rt.fetchers else None,
        prune_cache=prune,
    )
    if job.first_poll:
        await asyncio.to_thread(_mark_backfill, rt, source_id, report.started_at)
    if classify and report.new_article_ids:
        ids = list(report.new_article_ids)
        for start in range(0, len(ids), CLASSIFY_BATCH):
            batch = ids[start : start + CLASSIFY_BATCH]
            await rt.app.tasks[CLASSIFY].defer_async(article_ids=batch)


@contextlib.asynccontextmanager
async def _always() -> AsyncIterator[bool]:
    yield True


def _before_poll(
    sessions: sessionmaker[Session], source_id: int, moment: datetime, due_only: bool
) -> JobStart | None:
    """None if the job has nothing to do: the feed is no longer due at `moment` (its poll
    moved the next check on) or, for `poll --all`, was checked since; else the feed and
    whether this is its first poll."""
    from chipwatch.store.sources import poll_job_start

    with sessions() as session:
        return poll_job_start(session, source_id, moment, due_only)


def _mark_backfill(rt: Runtime, source_id: int, started: datetime) -> None:
    from chipwatch.store.backfill import mark_backfill

    with rt.sessions.begin() as session:
        mark_backfill(session, {source_id}, started, rt.settings.poll.first_poll_backfill_hours)


# --- classify ----------------------------------------------------------------------------


def classify_articles(article_ids: Sequence[int]) -> None:
    from chipwatch import pipeline
    from chipwatch.store import classifications

    rt = runtime()
    with rt.sessions() as session:
        batch = classifications.unclassified_among(session, article_ids)
    if not batch:
        return
    classifier, key = pipeline.load_classifier(rt.settings, rt.sessions)
    results = classifier.classify(batch)
    with rt.sessions.begin() as session:
        classifications.add_classifications(session, results, key)


# --- digests -----------------------------------------------------------------------------


def send_digest(address: str, slot: int) -> None:
    from chipwatch import pipeline
    from chipwatch.digest import build_digests, load_feed_health, recipients_of, send_pending
    from chipwatch.digest.outbox import due_recipients, last_run_by_recipient

    rt = runtime()
    settings = rt.settings
    moment = slot_time(slot).replace(tzinfo=UTC)
    chosen = [r for r in recipients_of(settings) if r.address == address]
    if not chosen:
        log.warning("digest job for %s: no such recipient in the config any more", address)
        return
    with rt.sessions() as session:
        last = last_run_by_recipient(session)
        if due_recipients(settings, {k: v for k, v in last.items() if k == address}, moment):
            build_digests(
                session,
                settings,
                pipeline.digest_topics(settings),
                load_feed_health(session),
                moment,
                recipients=chosen,
                embed=pipeline.story_embedder(),
            )
        report = send_pending(session, settings, moment, recipient=address)
    for digest_id, error in report.failed:
        log.warning("digest %s to %s failed (kept in the outbox): %s", digest_id, address, error)


def retry_outbox() -> None:
    from chipwatch.digest import send_pending

    rt = runtime()
    with rt.sessions() as session:
        send_pending(session, rt.settings, datetime.now(UTC))


# --- the schedule ------------------------------------------------------------------------


async def tick(context: procrastinate.JobContext, timestamp: int) -> None:
    """One slot of the schedule: the due feeds, the due digests, the outbox's retries.

    Procrastinate defers a periodic timestamp once per worker pool only while no later
    timestamp has been deferred: a worker that lags by more than one tick (a busy machine,
    a one-second cron) defers the old timestamp again, after the others deferred the next
    one. The later job of a timestamp leaves the slot to the first one."""
    from chipwatch.queue.client import defer_cleanup, defer_digests, defer_polls

    rt = runtime()
    job_id = context.job.id if context.job is not None else None
    first = await asyncio.to_thread(_first_tick_job, rt.sessions, timestamp)
    if job_id is not None and first is not None and first != job_id:
        log.warning(
            "tick %s: deferred again by a worker that lagged (job %s, first job %s): skipped",
            timestamp,
            job_id,
            first,
        )
        return
    moment = slot_time(timestamp)
    due = await asyncio.to_thread(_due_feeds, rt.sessions, moment)
    await defer_polls(rt.app, due, timestamp, classify=rt.settings.poll.classify_on_poll)
    await defer_digests(rt.app, rt.settings, rt.sessions, timestamp)
    await defer_cleanup(rt.app, rt.settings.workers.keep_jobs_hours)


def _first_tick_job(sessions: sessionmaker[Session], timestamp: int) -> int | None:
    from chipwatch.queue.app import TICK
    from chipwatch.store.queue_jobs import first_job_for_timestamp

    with sessions() as session:
        return first_job_for_timestamp(session, TICK, timestamp)


def _due_feeds(sessions: sessionmaker[Session], moment: datetime) -> list[int]:
    from chipwatch.store.sources import due_sources

    with sessions() as session:
        return [source.id for source in due_sources(session, moment)]
