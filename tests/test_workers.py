"""Workers on many hosts (issue 16): real PostgreSQL, real `chipwatch worker` processes,
a loopback HTTP server counting requests per feed, a real SMTP server.

Schedule slots are driven by hand (a tick job deferred with the slot's timestamp, as
the periodic deferrer would), an hour apart in the future: no real minute is waited for,
and the workers' own periodic ticks (where enabled) find nothing due at the real time.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path

import procrastinate
import pytest
from aiosmtpd.smtp import Envelope
from backends import create_database, drop_database, new_name, server_problem
from queueworld import (
    GrowingFeeds,
    defer_tick,
    query,
    run_cli,
    start_worker,
    stop_workers,
    unfinished,
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


def tick_counts(url: str) -> list[tuple[object, ...]]:
    """(timestamp, tick jobs deferred for it), one row per timestamp."""
    return query(
        url,
        "SELECT args->>'timestamp', count(*) FROM procrastinate.procrastinate_jobs "
        "WHERE task_name = 'chipwatch.tick' GROUP BY 1",
    )


def skipped_ticks(folder: Path) -> list[str]:
    """The timestamps of the tick jobs that left their slot to an earlier job, per log."""
    found = re.compile(r"tick (\d+): deferred again by a worker that lagged")
    return [m for p in folder.glob("worker*.log") for m in found.findall(p.read_text())]


def test_a_second_tick_job_for_a_slot_does_nothing(tmp_path: Path, pg_url: str) -> None:
    feeds = GrowingFeeds(count=3).start()
    try:
        config = write_config(tmp_path, pg_url, feeds.urls(), workers='tick_cron = ""\n')
        slot = slots(1)[0]
        defer_tick(config, slot)
        defer_tick(config, slot)  # as a lagging worker's periodic deferrer does
        workers = [start_worker(config, 2, tmp_path / "worker0.log")]
        try:
            wait_for(lambda: len(registered(pg_url)) == 1, 60, "the worker")
            wait_idle(pg_url, timeout=60)
        finally:
            stop_workers(workers)
    finally:
        feeds.stop()
    assert tick_counts(pg_url) == [(str(slot), 2)]
    assert skipped_ticks(tmp_path) == [str(slot)], _logs(tmp_path)
    assert set(feeds.hits.values()) == {1} and len(feeds.hits) == 3
    assert job_statuses(pg_url) == {"succeeded"}


def test_periodic_ticks_act_once_per_slot_and_the_host_limit_holds_across_workers(
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
            wait_for(lambda: len(feeds.hits) == 24, 60, "every feed fetched")
            # more ticks, every worker deferring them (waited for: a loaded machine is slow)
            wait_for(lambda: len(tick_counts(pg_url)) >= 4, 60, "four ticks")
        finally:
            stop_workers(workers)
    finally:
        feeds.stop()
    ticks = tick_counts(pg_url)
    assert len(ticks) >= 4, ticks
    # Procrastinate defers a timestamp again when a worker lagged past the next one (a
    # loaded machine, a one-second cron): each such extra job must have left the slot.
    skipped = skipped_ticks(tmp_path)
    assert {t: n - 1 for t, n in ticks if n > 1} == dict(Counter(skipped)), (ticks, skipped)
    assert set(feeds.hits.values()) == {1}  # each due feed once: the next check is later
    assert feeds.most_in_flight <= 2  # fetch.per_host_concurrency, across the 3 workers


def test_the_per_host_delay_holds_across_workers(tmp_path: Path, pg_url: str) -> None:
    feeds = GrowingFeeds(count=6).start()
    try:
        config = write_config(
            tmp_path,
            pg_url,
            feeds.urls(),
            workers='tick_cron = ""\n',
            fetch="per_host_concurrency = 4\nper_host_delay_seconds = 0.5\n",
        )
        workers = [start_worker(config, 3, tmp_path / f"worker{i}.log") for i in range(2)]
        try:
            wait_for(lambda: len(registered(pg_url)) == 2, 60, "two workers")
            defer_tick(config, slots(1)[0])
            wait_idle(pg_url, timeout=60)
        finally:
            stop_workers(workers)
    finally:
        feeds.stop()
    assert sum(feeds.hits.values()) == 6
    arrivals = sorted(feeds.arrivals)
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # One host: requests start 0.5 s apart whichever worker asks. An arrival lags its turn
    # by what the worker's event loop was doing (up to ~0.2 s seen at load 4-5); without
    # the delay the six come within a few milliseconds, and with turns reserved before
    # sleeping (the earlier gate) two came 0.03 s apart.
    assert min(gaps) >= 0.25, gaps
    assert arrivals[-1] - arrivals[0] >= 5 * 0.5 * 0.9, gaps


# --- commands -----------------------------------------------------------------------------


def test_the_schedule_deletes_jobs_finished_longer_ago_than_keep_jobs_hours(
    tmp_path: Path, pg_url: str
) -> None:
    config = write_config(tmp_path, pg_url, [], workers='tick_cron = ""\nkeep_jobs_hours = 5\n')
    worker = start_worker(config, 2, tmp_path / "worker.log")
    try:
        wait_for(lambda: len(registered(pg_url)) == 1, 60, "the worker")
        first, second = slots(2)
        defer_tick(config, first)
        wait_idle(pg_url, timeout=60)
        old = {job for (job,) in query(pg_url, "SELECT id FROM procrastinate.procrastinate_jobs")}
        # Those jobs finished 6 hours ago; the next slot's cleanup (5 hours) takes them.
        query(
            pg_url,
            "UPDATE procrastinate.procrastinate_events SET at = at - interval '6 hours'",
        )
        defer_tick(config, second)
        wait_idle(pg_url, timeout=60)
    finally:
        stop_workers([worker])
    left = {job for (job,) in query(pg_url, "SELECT id FROM procrastinate.procrastinate_jobs")}
    assert old and not (old & left), (old, left)
    assert left  # the second slot's own jobs stay (finished just now)


def test_poll_wait_hands_the_feeds_to_the_workers_and_exits_with_the_polls_code(
    tmp_path: Path, pg_url: str
) -> None:
    feeds = GrowingFeeds(count=4, delay_seconds=0.2).start()
    try:
        urls = feeds.urls()
        config = write_config(
            tmp_path, pg_url, urls, workers='tick_cron = ""\n', fetch="per_host_concurrency = 8\n"
        )
        # [workers].concurrency, as no --concurrency is given: one job at a time
        one_at_a_time = {"CHIPWATCH_WORKERS_CONCURRENCY": "1"}
        worker = start_worker(config, None, tmp_path / "worker.log", env=one_at_a_time)
        try:
            done = run_cli(config, "poll", "--wait", "--no-classify")
            assert done.returncode == 0, done.stderr + _logs(tmp_path)
            assert "polled 4 feeds through the workers" in done.stdout
            assert set(feeds.hits.values()) == {1}
            assert feeds.most_in_flight == 1
            broken = write_config(
                tmp_path,
                pg_url,
                [*urls, urls[0].replace("/f/0.xml", "/gone")],
                workers='tick_cron = ""\n',
            )
            partial = run_cli(broken, "poll", "--all", "--wait", "--no-classify")
            assert partial.returncode == ExitCode.PARTIAL, partial.stdout + partial.stderr
            assert "1 failed" in partial.stdout
            wait_idle(pg_url, 30)
            # a worker lives: a plain poll hands the feeds to it and returns at once
            plain = run_cli(config, "poll", "--all", "--no-classify")
            assert plain.returncode == 0 and "deferred 5 feeds" in plain.stdout, plain.stdout
            wait_idle(pg_url, 30)
            before = sum(feeds.hits.values())
            local = run_cli(config, "poll", "--all", "--no-classify", "--local")
            assert local.returncode == ExitCode.PARTIAL, local.stdout  # the gone feed, here
            assert "deferred" not in local.stdout and unfinished(pg_url) == 0
            assert sum(feeds.hits.values()) >= before + 4
        finally:
            stop_workers([worker])
        alone = run_cli(config, "poll", "--all", "--no-classify")  # no live worker: in process
        assert alone.returncode == ExitCode.PARTIAL and "deferred" not in alone.stdout, alone.stdout
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


def test_the_worker_and_the_queue_refuse_sqlite_and_poll_wait_polls_there_as_before(
    tmp_path: Path,
) -> None:
    feeds = GrowingFeeds(count=2).start()
    try:
        config = write_config(tmp_path, "", feeds.urls())  # "" = the SQLite file
        for command in ("worker", "queue"):
            refused = run_cli(config, command)
            assert refused.returncode == ExitCode.CONFIG, refused.stderr
            lines = refused.stderr.strip().splitlines()
            assert len(lines) == 1 and "needs PostgreSQL" in lines[0], lines
            assert "chipwatch run" in lines[0] and "Traceback" not in refused.stderr
        polled = run_cli(config, "poll", "--wait", "--no-classify")
        assert polled.returncode == 0, polled.stderr
        assert "polled 2 feeds in" in polled.stdout  # today's poll, in this process
        assert set(feeds.hits.values()) == {1}
    finally:
        feeds.stop()


def test_the_first_command_creates_the_queue_schema_and_later_ones_change_nothing(
    tmp_path: Path,
) -> None:
    problem = server_problem()
    if problem is not None:
        pytest.skip(problem)
    name = new_name("queue_schema")
    url = create_database(name)  # empty: no template
    try:
        config = write_config(tmp_path, url, [])
        # Two hosts' first commands at once: the advisory lock lets one create it.
        starts = [
            subprocess.Popen(
                [sys.executable, "-m", "chipwatch", "--config", str(config), "queue"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        for started in starts:
            out, err = started.communicate(timeout=120)
            assert started.returncode == 0, err
            assert "0 workers registered" in out
        tables = query(
            url,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'procrastinate' ORDER BY 1",
        )
        assert ("procrastinate_jobs",) in tables and ("procrastinate_periodic_defers",) in tables
        assert query(url, "SELECT version FROM procrastinate.chipwatch_queue_schema") == [
            (procrastinate.__version__,)
        ]
        again = run_cli(config, "queue")
        assert again.returncode == 0, again.stderr
        assert query(url, "SELECT count(*) FROM procrastinate.chipwatch_queue_schema") == [(1,)]
        public = query(
            url,
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_name LIKE 'procrastinate%%'",
        )
        assert public == [(0,)]  # the queue's tables stay out of chipwatch's schema
    finally:
        drop_database(name)


def test_an_older_queue_schema_gets_the_migration_files_after_its_version() -> None:
    from procrastinate.schema import SchemaManager

    from chipwatch.store import queue_schema

    folder = Path(SchemaManager.get_migrations_path())
    after_3_3 = [p.read_text(encoding="utf-8") for p in sorted(folder.glob("03.04.*.sql"))]
    assert len(after_3_3) == 2
    assert queue_schema._scripts("3.3.0") == after_3_3  # in order: pre, then post
    assert queue_schema._scripts(procrastinate.__version__) == []  # nothing to do
    assert queue_schema._scripts(None) == [SchemaManager.get_schema()]  # a fresh database


def test_every_worker_classifies_with_the_model_stored_under_its_key(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chipwatch import pipeline
    from chipwatch.classify import FittedClassifier
    from chipwatch.settings import load_settings

    config = write_config(tmp_path, pg_url, [])
    settings = load_settings(config, None)
    sessions = pipeline.open_sessions(settings)
    _, key = pipeline.load_classifier(settings, sessions)  # the first worker fits, stores
    assert query(pg_url, "SELECT key FROM fitted_models") == [(key[:64],)]
    # Another host: no local cache at all, a process that never loaded a model.
    other = tmp_path / "other-host-cache"
    monkeypatch.setenv("CHIPWATCH_CLASSIFY_CACHE_DIR", str(other))
    pipeline._SHARED_MODELS.clear()
    elsewhere = load_settings(config, None)
    assert elsewhere.cache_dir == other
    model, same_key = pipeline.load_classifier(elsewhere, sessions)
    assert same_key == key and isinstance(model, FittedClassifier)
    assert not other.exists()  # read from the database: nothing fitted, nothing cached
