"""APScheduler 3 wiring for `chipwatch run`: poll on an interval, digests on cron times."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from zoneinfo import ZoneInfo

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from chipwatch.errors import ExitCode
from chipwatch.settings import Settings
from chipwatch.stop import StopRequest

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
            cron_trigger(cron, ZoneInfo(zone)),
            id=f"digest-{index}",
            name=f"digest at '{cron}' {zone}",
        )
    return scheduler


def run_forever(scheduler: BlockingScheduler, stop: StopRequest) -> ExitCode:
    """Run the scheduler until SIGTERM or SIGINT; return the exit code for that signal.

    The first signal stops the scheduler and asks the running poll to stop (`stop`): it
    stores what it fetched and drops what it was still fetching; a running digest is
    finished. The jobs are waited for here, before the interpreter starts exiting: past
    that point the poll's thread pools refuse new work. A second signal exits at once."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            os._exit(stopped_exit_code(signum))  # the user insists: no waiting, no cleanup
        log.warning(
            "stopping on %s: the running job stores what it has (a second signal exits now)",
            signal.Signals(signum).name,
        )
        stop.request(signum)
        if not scheduler.running:  # the signal came before the scheduler started
            raise SystemExit(stopped_exit_code(signum))
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for job in scheduler.get_jobs():
        log.info("scheduled: %s", job.name)
    scheduler.start()  # returns once on_signal shut it down
    scheduler.remove_executor("default")  # joins the job threads: the running jobs end
    return stopped_exit_code(stop.signum or signal.SIGTERM)


def stopped_exit_code(signum: int) -> ExitCode:
    """The shells' convention, 128 + the signal: 130 for SIGINT, 143 for SIGTERM."""
    return ExitCode.INTERRUPTED if signum == signal.SIGINT else ExitCode.TERMINATED


_CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def cron_trigger(expression: str, zone: ZoneInfo) -> CronTrigger:
    """APScheduler 3's from_crontab reads a numeric weekday as 0 = Monday; cron means
    0 (or 7) = Sunday, so "1-5" would be Tuesday-Saturday. Numeric weekdays are rewritten
    as names first."""
    fields = expression.split()
    if len(fields) == 5 and any(ch.isdigit() for ch in fields[4]):
        fields[4] = ",".join(_CRON_DAYS[d] for d in sorted(_cron_days(fields[4])))
    return CronTrigger.from_crontab(" ".join(fields), timezone=zone)


def _cron_days(field: str) -> set[int]:
    """The days (0 = Sunday) of cron's weekday field; ValueError naming what cron refuses
    (a day past 7, a range that goes down, a zero step: some were read modulo 7)."""
    days: set[int] = set()
    for part in field.split(","):
        span, slash, step = part.partition("/")
        if slash and not (step.isdigit() and 0 < int(step) <= 7):
            raise ValueError(f"weekday field {field!r}: step {step!r} is not 1-7")
        if span == "*":
            low, high = 0, 6
        elif "-" in span:
            low, high = (_cron_day(x, field) for x in span.split("-", 1))
            high = 7 if high == 0 and low > 0 else high  # "5-7", "5-0": through Sunday
            if low > high:
                raise ValueError(f"weekday field {field!r}: the range {span} goes down")
        else:
            low = high = _cron_day(span, field)
            high = 6 if step else high
        days.update(d % 7 for d in range(low, high + 1, int(step or 1)))
    return days


def _cron_day(token: str, field: str) -> int:
    token = token.strip().lower()
    if token.isdigit() and len(token) <= 2 and int(token) <= 7:
        return int(token)
    if token.isalpha() and token[:3] in _CRON_DAYS:
        return _CRON_DAYS.index(token[:3])
    raise ValueError(f"weekday field {field!r}: {token!r} is no day (0-7, or sun-sat)")
