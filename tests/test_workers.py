"""Workers on many hosts (issue 16): real PostgreSQL, real `chipwatch worker` processes,
a loopback HTTP server counting requests per feed, a real SMTP server.

Schedule slots are driven by hand (a tick job deferred with the slot's timestamp, as
the periodic deferrer would), an hour apart in the future: no real minute is waited for,
and the workers' own periodic ticks (where enabled) find nothing due at the real time.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from backends import create_database, drop_database, new_name, server_problem
from queueworld import (
    GrowingFeeds,
    defer_tick,
    query,
    run_cli,
    start_worker,
    stop_workers,
    wait_for,
    wait_idle,
    write_config,
)
from smtpserver import SmtpServer

from chipwatch.errors import ExitCode

READERS = ["ana@example.org", "bo@example.org", "cy@example.org"]


@pytest.fixture
def pg_url(postgres_template: str) -> Iterator[str]:
    """A scratch database of its own, copied from the migrated template, dropped after."""
    name = new_name("workers")
    url = create_database(name, template=postgres_template)
    yield url
    drop_database(name)


@pytest.fixture
def feeds() -> Iterator[GrowingFeeds]:
    server = GrowingFeeds(count=300).start()
    yield server
    server.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


def slots(count: int) -> list[int]:
    """Whole hours from two hours ahead: the digests' schedule ("0 * * * *") fires at each."""
    start = (int(time.time()) // 3600 + 2) * 3600
    return [start + 3600 * k for k in range(count)]


def by_reader(server: SmtpServer) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for message in server.messages:
        found.setdefault(str(message["To"]), []).append(str(message["Message-ID"]))
    return found


# --- the scale test ----------------------------------------------------------------------


def test_three_workers_300_feeds_5_slots_once_each(
    tmp_path: Path, pg_url: str, feeds: GrowingFeeds, smtp: SmtpServer
) -> None:
    config = write_config(
        tmp_path,
        pg_url,
        feeds.urls(),
        recipients=READERS,
        smtp=(smtp.host, smtp.port),
        workers='tick_cron = ""\n',
        fetch="per_host_concurrency = 64\n",
    )
    workers = [start_worker(config, 8, tmp_path / f"worker{i}.log") for i in range(3)]
    try:
        for slot in slots(5):
            defer_tick(config, slot)
            wait_idle(pg_url, timeout=60)
    finally:
        stop_workers(workers)
    assert all(w.returncode == 0 for w in workers), _logs(tmp_path)

    assert len(feeds.hits) == 300
    assert set(feeds.hits.values()) == {5}, Counter(feeds.hits.values())  # once per slot
    stored = query(pg_url, "SELECT count(*), count(DISTINCT identity) FROM articles")[0]
    assert stored == (300 * 5, 300 * 5)  # feed N's 5 items, each stored once
    received = by_reader(smtp)
    assert sorted(received) == READERS
    for reader, ids in received.items():
        assert len(ids) == len(set(ids)) == 5, (reader, ids)  # one digest per slot
    failed = query(
        pg_url,
        "SELECT count(*) FROM procrastinate.procrastinate_jobs WHERE status <> 'succeeded'",
    )
    assert failed == [(0,)]


def _logs(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-3000:] for p in folder.glob("worker*.log"))
