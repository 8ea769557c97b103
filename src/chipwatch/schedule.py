"""APScheduler 3 wiring for `chipwatch run`: poll on an interval, digests on cron times."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from zoneinfo import ZoneInfo

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from chipwatch.settings import Settings

log = logging.getLogger(__name__)

# Jobs that missed their time while the process slept run once, not once per missed slot,
# and never two at a time.
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600}


def digest_schedules(settings: Settings) -> set[tuple[str, str]]:
    """The distinct (cron, timezone) pairs at which some recipient's digest is due."""
    default = (settings.digest.schedule, settings.digest.timezone)
    pairs = {(r.schedule or default[0], r.timezone or default[1]) for r in settings.recipients}
    return pairs or {default}


def build_scheduler(
    settings: Settings,
    poll_job: Callable[[], object],
    digest_job: Callable[[], object],
) -> BlockingScheduler:
    scheduler = BlockingScheduler(job_defaults=JOB_DEFAULTS, timezone=ZoneInfo("UTC"))
    scheduler.add_job(
        poll_job,
        IntervalTrigger(minutes=settings.poll.interval_minutes),
        id="poll",
        name="poll due feeds",
        next_run_time=datetime.now(UTC),  # poll once at start-up
    )
    for index, (cron, zone) in enumerate(sorted(digest_schedules(settings))):
        scheduler.add_job(
            digest_job,
            CronTrigger.from_crontab(cron, timezone=ZoneInfo(zone)),
            id=f"digest-{index}",
            name=f"digest at '{cron}' {zone}",
        )
    return scheduler


def run_forever(scheduler: BlockingScheduler) -> None:
    """Start the scheduler; SIGTERM and SIGINT let the running job finish, then stop."""

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s received: stopping after the running jobs", signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for job in scheduler.get_jobs():
        log.info("scheduled: %s", job.name)
    scheduler.start()
