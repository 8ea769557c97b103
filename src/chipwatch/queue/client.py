"""Deferring jobs and waiting for them: the schedule's tick, `chipwatch poll --wait` and
`chipwatch queue`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import procrastinate
from procrastinate.exceptions import AlreadyEnqueued
from sqlalchemy.orm import Session, sessionmaker

from chipwatch.errors import ExitCode
from chipwatch.queue.app import CLASSIFY, CLEANUP, DIGEST, OUTBOX, POLL, build_app
from chipwatch.settings import Settings

DEFERS_IN_FLIGHT = 8  # defers sent at once (each is one round trip)
WAIT_POLL_SECONDS = 0.5  # how often `poll --wait` looks at the jobs


def poll_lock(source_id: int) -> str:
    return f"poll:{source_id}"


async def defer_polls(
    app: procrastinate.App,
    source_ids: Sequence[int],
    slot: int,
    *,
    classify: bool,
    due_only: bool = True,
) -> list[int]:
    """One poll job per feed (a feed already queued is left as it is); the job ids.
    No Procrastinate `lock` per feed: its fetch query scans every waiting job of other
    locks for each job it hands out (5,000 feeds: 1.6 feeds/s); the job takes the feed's
    own guard instead (store.host_gate)."""
    task = app.tasks[POLL]
    gate = asyncio.Semaphore(DEFERS_IN_FLIGHT)

    async def one(source_id: int) -> int | None:
        async with gate:
            try:
                lock = poll_lock(source_id)
                return await task.configure(queueing_lock=lock).defer_async(
                    source_id=source_id, slot=slot, classify=classify, due_only=due_only
                )
            except AlreadyEnqueued:
                return None

    found = await asyncio.gather(*(one(s) for s in source_ids))
    return [job for job in found if job is not None]


async def defer_digests(
    app: procrastinate.App, settings: Settings, sessions: sessionmaker[Session], slot: int
) -> int:
    """A digest job per reader whose schedule is due at the slot, and the outbox's retry."""
    from chipwatch.digest.outbox import due_recipients, last_run_by_recipient
    from chipwatch.queue.tasks import slot_time

    moment = slot_time(slot).replace(tzinfo=UTC)
    with sessions() as session:
        due = due_recipients(settings, last_run_by_recipient(session), moment)
    deferred = 0
    for recipient in due:
        address = recipient.address
        deferrer = app.tasks[DIGEST].configure(
            lock=f"digest:{address}", queueing_lock=f"digest:{address}:{slot}"
        )
        try:
            await deferrer.defer_async(address=address, slot=slot)
            deferred += 1
        except AlreadyEnqueued:
            pass
    with contextlib.suppress(AlreadyEnqueued):  # a retry of the outbox is queued already
        await app.tasks[OUTBOX].defer_async()
    return deferred


async def defer_cleanup(app: procrastinate.App, keep_hours: int) -> None:
    """Procrastinate's own job: delete the jobs finished `keep_hours` ago (not failed
    ones), so the job table does not grow with every feed of every slot."""
    deferrer = app.configure_task(CLEANUP, queueing_lock="cleanup")
    with contextlib.suppress(AlreadyEnqueued):
        await deferrer.defer_async(max_hours=keep_hours, remove_cancelled=True)


# --- poll --wait -------------------------------------------------------------------------


@dataclass(frozen=True)
class QueuedPoll:
    """`chipwatch poll` on PostgreSQL: what was deferred and, with --wait, what came of it."""

    deferred: int  # feeds handed to the workers
    waited: bool
    finished: bool = False  # every job done before the timeout
    polled: int = 0  # of the feeds: checked since the poll started
    failed: int = 0  # of those: failed at that check
    seconds: float = 0.0

    @property
    def exit_code(self) -> ExitCode:
        """As a poll in one process: 0, 3 some feeds failed, 4 all failed; 75 the workers
        did not finish in [workers].wait_timeout_seconds (the jobs stay queued)."""
        if not self.waited:
            return ExitCode.OK
        if not self.finished:
            return ExitCode.LOCKED
        if self.polled and self.failed == self.polled:
            return ExitCode.ALL_FAILED
        return ExitCode.PARTIAL if self.failed else ExitCode.OK

    def __str__(self) -> str:
        if not self.waited:
            return f"deferred {self.deferred} feeds to the workers (not waiting)"
        if not self.finished:
            return (
                f"the workers did not finish the {self.deferred} feeds in {self.seconds:.0f}s; "
                "their jobs stay queued (`chipwatch queue` shows them)"
            )
        return (
            f"polled {self.polled} feeds through the workers in {self.seconds:.1f}s: "
            f"{self.failed} failed (`chipwatch feeds status` names them)"
        )


def workers_alive(settings: Settings, sessions: sessionmaker[Session]) -> bool:
    """Whether a worker beat within [workers].stalled_after_seconds: then a plain `poll`
    hands its feeds to the queue instead of fetching them itself."""
    from chipwatch.store import queue_jobs

    with sessions() as session:
        return queue_jobs.live_workers(session, settings.workers.stalled_after_seconds) > 0


def poll_through_workers(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    all_feeds: bool,
    classify: bool,
    wait: bool,
) -> QueuedPoll:
    from chipwatch.queue.tasks import slot_time
    from chipwatch.store.sources import due_sources

    started = datetime.now(UTC)
    slot = int(started.timestamp())
    with sessions() as session:
        ids = [s.id for s in due_sources(session, slot_time(slot), all_feeds=all_feeds)]
    return asyncio.run(
        _defer_and_wait(settings, sessions, ids, slot, classify, wait, started, all_feeds)
    )


async def _defer_and_wait(
    settings: Settings,
    sessions: sessionmaker[Session],
    ids: list[int],
    slot: int,
    classify: bool,
    wait: bool,
    started: datetime,
    all_feeds: bool,
) -> QueuedPoll:
    from chipwatch.queue.tasks import slot_time
    from chipwatch.store import queue_jobs
    from chipwatch.store.sources import outcomes_since

    app = build_app(settings, pool_size=DEFERS_IN_FLIGHT)
    async with app.open_async():
        jobs = await defer_polls(app, ids, slot, classify=classify, due_only=not all_feeds)
    if not wait:
        return QueuedPoll(len(ids), waited=False)
    with sessions() as session:  # feeds someone else had queued: wait for theirs too
        jobs += queue_jobs.queued_by_lock(session, [poll_lock(i) for i in ids])
    clock = time.monotonic()
    deadline = clock + settings.workers.wait_timeout_seconds
    finished = await _until_done(sessions, deadline, lambda s: queue_jobs.unfinished(s, jobs))
    if finished and classify:
        finished = await _until_done(
            sessions, deadline, lambda s: queue_jobs.unfinished_of_task(s, CLASSIFY, started)
        )
    with sessions() as session:
        polled, failed = outcomes_since(session, ids, slot_time(slot))
    return QueuedPoll(len(ids), True, finished, polled, failed, time.monotonic() - clock)


async def _until_done(sessions: sessionmaker[Session], deadline: float, left: object) -> bool:
    while True:
        with sessions() as session:
            if not left(session):  # type: ignore[operator]
                return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(WAIT_POLL_SECONDS)


# --- chipwatch queue ---------------------------------------------------------------------


def queue_report(sessions: sessionmaker[Session], now: datetime) -> str:
    from chipwatch.store import queue_jobs

    with sessions() as session:
        rows = queue_jobs.counts(session)
        workers = queue_jobs.workers(session)
    lines = [f"{len(workers)} workers registered"]
    for worker_id, beat in workers:
        age = (now - beat).total_seconds() if beat is not None else float("nan")
        lines.append(f"  worker {worker_id}: last heartbeat {age:.0f}s ago")
    lines.append("jobs by task and status:" if rows else "no jobs")
    lines += [f"  {task:30} {status:10} {count}" for task, status, count in rows]
    return "\n".join(lines)
