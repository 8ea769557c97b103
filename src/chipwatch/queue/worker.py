"""`chipwatch worker`: jobs from the queue, N at a time, on any host; the schedule's tick
(deduplicated across workers); and recovery of the jobs of workers that died.

A worker that stops on SIGTERM or SIGINT finishes its running jobs (Procrastinate's
graceful shutdown). One killed outright (kill -9, a power cut) stops sending heartbeats:
after `[workers].stalled_after_seconds` any live worker puts its running jobs back in
the queue, and the jobs' own checks (queue.tasks) keep what was done from being redone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from chipwatch.settings import Settings

if TYPE_CHECKING:
    import procrastinate

    from chipwatch.queue.tasks import Runtime

log = logging.getLogger(__name__)


def run_worker(settings: Settings, concurrency: int | None = None) -> None:
    from procrastinate.exceptions import ConnectorException

    from chipwatch import pipeline
    from chipwatch.collect import ParsePool
    from chipwatch.errors import StorageError
    from chipwatch.queue.app import build_app, require_postgresql
    from chipwatch.queue.tasks import Runtime, install
    from chipwatch.store import faults
    from chipwatch.store.host_gate import HostGate
    from chipwatch.store.url import libpq_url

    require_postgresql(settings, "worker")
    # Creates or upgrades both schemas; no ping per session (store.dialect.engine_options).
    sessions = pipeline.open_sessions(settings, pre_ping=False)
    pipeline.sync_config_sources(settings, sessions)
    jobs = concurrency or settings.workers.concurrency
    app = build_app(settings, schedule=True, pool_size=jobs + 2)
    fetch = settings.fetch
    gate = HostGate(
        libpq_url(settings.store_url), fetch.per_host_concurrency, fetch.per_host_delay_seconds
    )
    pool = ParsePool()
    runtime = Runtime(settings, sessions, app, pool, gate)
    install(runtime)
    try:
        asyncio.run(_work(runtime, jobs))
    except ConnectorException as exc:  # the queue's tables or functions went (a dropped schema)
        raise StorageError(
            faults.target_of(sessions.kw["bind"]),  # the URL without its password
            f"the task queue's database failed: {_cause(exc)}",
            "if the procrastinate schema was dropped, any chipwatch command recreates it "
            "(queued jobs are gone); then start the worker again",
        ) from exc
    finally:
        pool.close()


def _cause(exc: BaseException) -> str:
    """The driver's first line under procrastinate's "Database error."."""
    cause = exc.__cause__ or exc.__context__ or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0][:300]


async def _work(runtime: Runtime, concurrency: int) -> None:
    from chipwatch.articles_fetch import page_fetch_settings
    from chipwatch.fetch import Fetcher

    app, settings, gate = runtime.app, runtime.settings, runtime.gate
    workers = settings.workers
    slot = gate.slot if gate is not None else None
    async with (
        app.open_async(),
        Fetcher(settings.fetch, host_gate=slot) as feeds,
        Fetcher(page_fetch_settings(settings)) as pages,
    ):
        runtime.fetchers.append((feeds, pages))
        recovery = asyncio.create_task(_recover_forever(app, workers.stalled_after_seconds))
        try:
            await app.run_worker_async(
                concurrency=concurrency,
                update_heartbeat_interval=workers.heartbeat_seconds,
                stalled_worker_timeout=workers.stalled_after_seconds,
                shutdown_graceful_timeout=workers.stalled_after_seconds,
                fetch_job_polling_interval=1.0,
                install_signal_handlers=True,
            )
        finally:
            recovery.cancel()
            if gate is not None:
                await gate.close()


async def _recover_forever(app: procrastinate.App, stalled_after: float) -> None:
    """Every half of `stalled_after`: jobs of workers silent that long go back in the
    queue (Procrastinate leaves the choice to us; its recipe is this call)."""
    while True:
        await asyncio.sleep(max(stalled_after / 2, 0.2))
        try:
            stalled = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after)
            for job in stalled:
                log.warning("retrying job %s (%s): its worker stopped", job.id, job.task_name)
                await app.job_manager.retry_job(job)
        except Exception:  # noqa: BLE001 - the next round tries again; the worker goes on
            log.exception("recovering stalled jobs failed")
