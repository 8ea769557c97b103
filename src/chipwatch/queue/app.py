"""The Procrastinate app: a connector on the configured PostgreSQL database and our tasks.

Locks (Procrastinate's, held in the database, so they hold across hosts):
- poll_feed: queueing lock `poll:<source id>`: a feed is queued at most once at a time;
- send_digest: lock `digest:<address>` (one of a reader's digest jobs runs at a time)
  and queueing lock `digest:<address>:<slot>` (one job per reader and schedule slot);
- retry_outbox: queueing lock `outbox`;
- tick: periodic on `[workers].tick_cron`; Procrastinate defers it once per timestamp
  whichever workers run the schedule (a unique row per task and timestamp), unless a
  worker lagged past the next timestamp: the job then finds an earlier one and does
  nothing (tasks.tick).
"""

from __future__ import annotations

from typing import Any

import procrastinate

from chipwatch.errors import ConfigError
from chipwatch.settings import Settings
from chipwatch.store.queue_schema import QUEUE_SCHEMA
from chipwatch.store.url import is_sqlite, libpq_url

POLL = "chipwatch.poll_feed"
CLASSIFY = "chipwatch.classify_articles"
DIGEST = "chipwatch.send_digest"
OUTBOX = "chipwatch.retry_outbox"
TICK = "chipwatch.tick"
CLEANUP = "builtin:procrastinate.builtin_tasks.remove_old_jobs"  # Procrastinate's own

# A job whose task raised (a database outage, a bug) is tried again, with a pause.
RETRY = procrastinate.RetryStrategy(max_attempts=3, wait=5)


def require_postgresql(settings: Settings, command: str) -> None:
    if is_sqlite(settings.store_url):
        raise ConfigError(
            "database_url",
            "",
            f"`chipwatch {command}` needs PostgreSQL (database_url = "
            '"postgresql://USER@HOST/DB"); on SQLite, `chipwatch run` does all the work in '
            "one process",
        )


def build_app(
    settings: Settings, *, schedule: bool = False, pool_size: int = 4
) -> procrastinate.App:
    """The app with our tasks; `schedule`: with the periodic tick (`[workers].tick_cron`,
    "" for none), as a worker runs it."""
    from chipwatch.queue import tasks

    require_postgresql(settings, "worker")
    connector = procrastinate.PsycopgConnector(
        conninfo=libpq_url(settings.store_url),
        kwargs={"options": f"-c search_path={QUEUE_SCHEMA}"},
        min_size=1,
        max_size=max(2, pool_size),
    )
    app = procrastinate.App(connector=connector)
    common: dict[str, Any] = {"pass_context": False, "retry": RETRY}
    app.task(name=POLL, queue="poll", **common)(tasks.poll_feed)
    app.task(name=CLASSIFY, queue="classify", **common)(tasks.classify_articles)
    app.task(name=DIGEST, queue="digest", **common)(tasks.send_digest)
    app.task(name=OUTBOX, queue="digest", queueing_lock="outbox", **common)(tasks.retry_outbox)
    tick = app.task(name=TICK, queue="schedule", pass_context=True)(tasks.tick)
    if schedule and settings.workers.tick_cron.strip():
        app.periodic(cron=settings.workers.tick_cron, periodic_id="schedule")(tick)
    return app
