"""`chipwatch health`: is the watch doing its job? For monitoring and systemd.

Unhealthy when nothing was ever polled, when the newest successful poll of any feed is
older than `[health] max_poll_age_minutes` (0: three poll intervals), or when a digest
has waited unsent (pending or failed) longer than `[health] max_send_age_hours`. A quiet
news day that sends nothing is healthy: only a digest that was built and not delivered
counts against the watch.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from chipwatch.settings import Settings
from chipwatch.store.stats import Snapshot


@dataclass(frozen=True)
class HealthReport:
    healthy: bool
    lines: tuple[str, ...]

    def __str__(self) -> str:
        return "\n".join((("healthy" if self.healthy else "UNHEALTHY"), *self.lines))


def poll_bound(settings: Settings) -> timedelta:
    minutes = settings.health.max_poll_age_minutes or 3 * settings.poll.interval_minutes
    return timedelta(minutes=minutes)


def judge(settings: Settings, snap: Snapshot, now: datetime) -> HealthReport:
    """`now` is naive UTC, like the stored times."""
    problems: list[str] = []
    notes: list[str] = []
    bound = poll_bound(settings)
    if snap.last_poll_success is None:
        problems.append("poll: no feed was ever polled successfully (run `chipwatch poll`)")
    else:
        age = now - snap.last_poll_success
        line = f"poll: last success {_age(age)} ago (bound {_age(bound)})"
        (problems if age > bound else notes).append(line)
    send_bound = timedelta(hours=settings.health.max_send_age_hours)
    if snap.oldest_unsent_digest is not None and now - snap.oldest_unsent_digest > send_bound:
        waited = _age(now - snap.oldest_unsent_digest)
        problems.append(
            f"send: a digest has waited unsent for {waited} (bound {_age(send_bound)}); "
            "see `chipwatch outbox`"
        )
    sent = snap.last_digest_sent
    notes.append(f"send: last digest sent {_age(now - sent) + ' ago' if sent else 'never'}")
    feeds = ", ".join(f"{count} {state}" for state, count in snap.feeds_by_state.items())
    notes.append(f"feeds: {feeds}")
    return HealthReport(not problems, tuple(problems + notes))


def _age(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    hours = minutes // 60
    return f"{hours} h" if hours < 48 else f"{hours // 24} days"


def check(settings: Settings, now: datetime) -> HealthReport:
    from chipwatch.pipeline import open_sessions
    from chipwatch.store.stats import snapshot

    with open_sessions(settings)() as session:
        return judge(settings, snapshot(session), now)
