"""Workers on many hosts (issue 16): real PostgreSQL, real `chipwatch worker` processes,
a loopback HTTP server counting requests per feed, a real SMTP server.

Schedule slots are driven by hand (a tick job deferred with the slot's timestamp, as
the periodic deferrer would), an hour apart in the future: no real minute is waited for,
and the workers' own periodic ticks (where enabled) find nothing due at the real time.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from aiosmtpd.smtp import Envelope
from backends import create_database, drop_database, new_name
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
        wait_for(lambda: len(registered(pg_url)) == 3, 60, "three workers")
        for slot in slots(5):
            began = time.monotonic()
            defer_tick(config, slot)
            wait_idle(pg_url, timeout=60)
            print(f"slot: {time.monotonic() - began:.1f}s (load {os.getloadavg()[0]:.1f})")
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
    assert job_statuses(pg_url) == {"succeeded"}


def job_statuses(url: str) -> set[object]:
    rows = query(url, "SELECT DISTINCT status::text FROM procrastinate.procrastinate_jobs")
    return {status for (status,) in rows}


def registered(url: str) -> list[tuple[object, ...]]:
    return query(url, "SELECT id FROM procrastinate.procrastinate_workers")


def _logs(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace")[-3000:] for p in folder.glob("worker*.log"))


# --- kill -9 in the middle of a fetch, and of a send --------------------------------------

FAST_RECOVERY = 'tick_cron = ""\nheartbeat_seconds = 0.3\nstalled_after_seconds = 1.5\n'


def test_a_worker_killed_during_a_fetch_its_job_is_done_by_another(
    tmp_path: Path, pg_url: str
) -> None:
    feeds = GrowingFeeds(count=5).start()
    try:
        feeds.hold("/f/0.xml")  # the first job's request is never answered
        config = write_config(tmp_path, pg_url, feeds.urls(), workers=FAST_RECOVERY)
        first = start_worker(config, 1, tmp_path / "worker-a.log")  # one job at a time
        wait_for(lambda: len(registered(pg_url)) == 1, 60, "the first worker")
        defer_tick(config, slots(1)[0])
        assert feeds.holding.wait(60), _logs(tmp_path)
        os.kill(first.pid, signal.SIGKILL)  # in the middle of the fetch
        first.wait()
        second = start_worker(config, 2, tmp_path / "worker-b.log")
        try:
            wait_idle(pg_url, timeout=60)
        finally:
            stop_workers([second])
    finally:
        feeds.stop()
    assert feeds.hits["/f/0.xml"] == 2  # the held request, then the retried job's
    assert [feeds.hits[f"/f/{n}.xml"] for n in range(1, 5)] == [1, 1, 1, 1]
    # the retry's answer carried 2 items, the others' 1: every one stored, once
    assert query(pg_url, "SELECT count(*), count(DISTINCT identity) FROM articles") == [(6, 6)]
    assert job_statuses(pg_url) == {"succeeded"}


class HoldingSmtp(SmtpServer):
    """Records each message on arrival; the first one's answer is held (never sent)."""

    def __init__(self) -> None:
        super().__init__()
        self.holding = threading.Event()
        self.release = threading.Event()

    def start(self) -> HoldingSmtp:
        from aiosmtpd.controller import Controller

        server = self

        class Handler:
            async def handle_DATA(self, smtp: object, session: object, envelope: Envelope) -> str:
                data = envelope.original_content or envelope.content
                raw = data if isinstance(data, bytes) else str(data).encode()
                with server.lock:
                    server.messages.append(BytesParser(policy=policy.default).parsebytes(raw))  # type: ignore[arg-type]
                    first = len(server.messages) == 1
                if first:
                    server.holding.set()
                    while not server.release.is_set():
                        await asyncio.sleep(0.05)
                return "250 2.0.0 OK: queued"

        self._controller = Controller(
            Handler(), hostname=self.host, port=self.port, decode_data=False
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        self.release.set()
        super().stop()


def test_a_worker_killed_during_a_send_the_digest_goes_once_with_its_message_id(
    tmp_path: Path, pg_url: str
) -> None:
    feeds = GrowingFeeds(count=2).start()
    smtp = HoldingSmtp().start()
    try:
        config = write_config(
            tmp_path,
            pg_url,
            feeds.urls(),
            recipients=READERS[:1],
            smtp=(smtp.host, smtp.port),
            workers=FAST_RECOVERY,
        )
        first = start_worker(config, 1, tmp_path / "worker-a.log")
        wait_for(lambda: len(registered(pg_url)) == 1, 60, "the first worker")
        defer_tick(config, slots(1)[0])
        assert smtp.holding.wait(60), _logs(tmp_path)
        os.kill(first.pid, signal.SIGKILL)  # the server has the message, not its answer
        first.wait()
        second = start_worker(config, 1, tmp_path / "worker-b.log")
        try:
            wait_idle(pg_url, timeout=60)
        finally:
            stop_workers([second])
    finally:
        smtp.stop()
        feeds.stop()
    ids = [str(m["Message-ID"]) for m in smtp.messages]
    assert len(ids) == 2 and len(set(ids)) == 1  # at least once: the same message again
    rows = query(pg_url, "SELECT status::text, message_id FROM digests")
    assert rows == [("sent", ids[0])]  # one digest built for the slot, not two
    assert job_statuses(pg_url) == {"succeeded"}


# --- the schedule across workers, and per-host politeness ---------------------------------


def test_periodic_ticks_are_not_duplicated_and_the_host_limit_holds_across_workers(
    tmp_path: Path, pg_url: str
) -> None:
    feeds = GrowingFeeds(count=24, delay_seconds=0.2).start()
    try:
        config = write_config(
            tmp_path,
            pg_url,
            feeds.urls(),
            workers='tick_cron = "* * * * * *"\n',  # every second, in every worker
            fetch="per_host_concurrency = 2\n",
        )
        workers = [start_worker(config, 6, tmp_path / f"worker{i}.log") for i in range(3)]
        try:
            wait_for(lambda: len(registered(pg_url)) == 3, 60, "three workers")
            wait_for(lambda: sum(feeds.hits.values()) == 24, 60, "every feed fetched")
            time.sleep(3)  # more ticks, every worker deferring them
        finally:
            stop_workers(workers)
    finally:
        feeds.stop()
    ticks = query(
        pg_url,
        "SELECT args->>'timestamp', count(*) FROM procrastinate.procrastinate_jobs "
        "WHERE task_name = 'chipwatch.tick' GROUP BY 1",
    )
    assert len(ticks) >= 3 and {n for _, n in ticks} == {1}, ticks  # one job per second
    assert set(feeds.hits.values()) == {1}  # each due feed once: the next check is later
    assert feeds.most_in_flight <= 2  # fetch.per_host_concurrency, across the 3 workers


# --- commands -----------------------------------------------------------------------------


def test_poll_wait_hands_the_feeds_to_the_workers_and_exits_with_the_polls_code(
    tmp_path: Path, pg_url: str
) -> None:
    feeds = GrowingFeeds(count=4).start()
    try:
        urls = feeds.urls()
        config = write_config(tmp_path, pg_url, urls, workers='tick_cron = ""\n')
        worker = start_worker(config, 4, tmp_path / "worker.log")
        try:
            done = run_cli(config, "poll", "--wait", "--no-classify")
            assert done.returncode == 0, done.stderr + _logs(tmp_path)
            assert "polled 4 feeds through the workers" in done.stdout
            assert set(feeds.hits.values()) == {1}
            broken = write_config(
                tmp_path,
                pg_url,
                [*urls, urls[0].replace("/f/0.xml", "/gone")],
                workers='tick_cron = ""\n',
            )
            partial = run_cli(broken, "poll", "--all", "--wait", "--no-classify")
            assert partial.returncode == ExitCode.PARTIAL, partial.stdout + partial.stderr
            assert "1 failed" in partial.stdout
        finally:
            stop_workers([worker])
        queued = run_cli(config, "poll", "--all", "--defer")  # no worker: returns at once
        assert queued.returncode == 0 and "deferred 5 feeds" in queued.stdout
        waited = run_cli(
            config,
            "poll",
            "--all",
            "--wait",
            "--no-classify",
            env={"CHIPWATCH_WORKERS_WAIT_TIMEOUT_SECONDS": "1"},
        )
        assert waited.returncode == ExitCode.LOCKED, waited.stdout  # nobody works the queue
    finally:
        feeds.stop()
