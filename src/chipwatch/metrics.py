"""Prometheus metrics: served by `chipwatch run` on 127.0.0.1, or written as a textfile.

Most figures are read from the database at each scrape (`store.stats.snapshot`), so a
scrape tells the truth whichever process polled: `run`, or `poll` from cron. What only
the polling process knows (fetch durations, polls by result) is kept in this process's
registry and appears in the textfile written after each `poll` and `digest`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from chipwatch.errors import ConfigError
from chipwatch.settings import Settings

if TYPE_CHECKING:
    from chipwatch.pipeline import PollSummary

log = logging.getLogger(__name__)
FETCH_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 60.0)

REGISTRY = CollectorRegistry(auto_describe=True)
FETCH_SECONDS = Histogram(
    "chipwatch_fetch_duration_seconds",
    "Time to fetch and process one feed, by this process's polls.",
    buckets=FETCH_BUCKETS,
    registry=REGISTRY,
)
POLLS = Counter(
    "chipwatch_polls",
    "Polls run by this process, by result (ok: no feed failed).",
    ["result"],
    registry=REGISTRY,
)
_DATABASE_COLLECTORS: dict[Path, Collector] = {}


class DatabaseCollector(Collector):
    """Gauges read from the database at each collection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from chipwatch.pipeline import open_sessions
        from chipwatch.store.stats import snapshot

        with open_sessions(self.settings)() as session:
            snap = snapshot(session)
        feeds = GaugeMetricFamily("chipwatch_feeds", "Feeds by state.", labels=["state"])
        for state, count in snap.feeds_by_state.items():
            feeds.add_metric([state], count)
        yield feeds
        yield GaugeMetricFamily("chipwatch_articles_stored", "Articles stored.", snap.articles)
        yield GaugeMetricFamily(
            "chipwatch_articles_classified", "Articles classified.", snap.classified
        )
        relevant = GaugeMetricFamily(
            "chipwatch_articles_relevant",
            'Relevant articles by topic ("" = no topic).',
            labels=["topic"],
        )
        for topic, count in sorted(snap.relevant_by_topic.items()):
            relevant.add_metric([topic], count)
        yield relevant
        yield GaugeMetricFamily(
            "chipwatch_articles_novel", "Relevant articles that fit no topic.", snap.novel
        )
        digests = GaugeMetricFamily("chipwatch_digests", "Digests by status.", labels=["status"])
        for status, count in snap.digests_by_status.items():
            digests.add_metric([status], count)
        yield digests
        for name, moment, text in (
            ("chipwatch_last_poll_success_timestamp_seconds", snap.last_poll_success, "poll"),
            ("chipwatch_last_digest_sent_timestamp_seconds", snap.last_digest_sent, "send"),
        ):
            if moment is not None:  # absent, not 0, before the first one: alerts see "absent"
                yield GaugeMetricFamily(
                    name, f"Time of the last successful {text}.", _epoch(moment)
                )


def _epoch(moment: datetime) -> float:
    return moment.replace(tzinfo=UTC).timestamp()


def registry_for(settings: Settings) -> CollectorRegistry:
    """This process's registry, with the database gauges of `settings`' database."""
    key = settings.database_path
    if key not in _DATABASE_COLLECTORS:
        _DATABASE_COLLECTORS[key] = DatabaseCollector(settings)
        REGISTRY.register(_DATABASE_COLLECTORS[key])
    return REGISTRY


def observe_poll(summary: PollSummary) -> None:
    for seconds in summary.fetch_seconds:
        FETCH_SECONDS.observe(seconds)
    POLLS.labels("ok" if not summary.report.feeds_failed else "failures").inc()


def serve(settings: Settings) -> int | None:
    """Serve /metrics on 127.0.0.1:[metrics] port (loopback only: no authentication)."""
    if not settings.metrics.port:
        return None
    try:
        start_http_server(settings.metrics.port, addr="127.0.0.1", registry=registry_for(settings))
    except OSError as exc:  # the port is taken, or below 1024 without the right
        raise ConfigError(
            str(settings.config_path),
            "metrics.port",
            f"cannot listen on 127.0.0.1:{settings.metrics.port}: {exc.strerror or exc}",
        ) from None
    return settings.metrics.port


def write_textfile(settings: Settings) -> Path | None:
    """Write the metrics to [metrics] textfile (atomically: a temporary file, renamed).
    Checked at start-up (settings); a failure after the work (the disk filled, the folder
    went) is one logged error: the command's own report and exit code stand."""
    path = settings.metrics_textfile
    if path is None:
        return None
    from prometheus_client import write_to_textfile

    try:
        write_to_textfile(str(path), registry_for(settings))
    except OSError as exc:
        log.error("metrics.textfile: cannot write %s: %s", path, exc.strerror or exc)
        return None
    return path
