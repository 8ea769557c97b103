"""Benchmark the collector: 1,000 feed URLs on loopback, cold and warm poll cycles.

    .venv/bin/python scripts/bench_poll.py [--skip-baseline] [--database-url URL]

Serves ../shared/feeds/realworld/ (200 files) under 1,000 URLs (5 per file) spread over
20 loopback hosts (127.0.0.1-20) from a separate process, imports them through OPML into
a fresh data directory and prints: cold cycle wall and CPU time, entries stored per
second, warm cycle (all 304) wall time, peak RSS of the poller and its parser workers
(the feed server's process is excluded from RSS and CPU: it stands in for the remote
servers; its CPU is printed apart), and the sequential `feedparser.parse(url)` baseline.
Targets on a 2-core machine: cold <= 10 s, warm <= 3 s, peak RSS < 500 MB.

`--database-url postgresql://USER@HOST[:PORT]/DB` runs the same cycles on PostgreSQL: a
scratch database is created on that server (DB is only the one to connect to for that,
e.g. `postgres`) and dropped afterwards. The PostgreSQL server's own processes, like the
feed server's, are outside the poller's RSS and CPU: its CPU is printed apart when it
runs on this machine. Without the option: a fresh SQLite file, as before.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil

from chipwatch.store.url import normalise_url

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
REALWORLD = SHARED / "feeds" / "realworld"
HOSTS = tuple(f"127.0.0.{i}" for i in range(1, 21))  # 20 hosts, 50 URLs each
COPIES = 5
sys.path.insert(0, str(REPO / "tests"))  # the reusable loopback FeedServer


def serve(ready: multiprocessing.Queue, stop: multiprocessing.Event) -> None:  # type: ignore[type-arg]
    """In a child process, so serving does not compete with the poller for its GIL."""
    from feedserver import FeedServer

    servers = [FeedServer(host=host).start() for host in HOSTS]
    for server in servers:
        for copy in range(COPIES):
            server.mount(f"/c{copy}/", REALWORLD)
    ready.put([server.url("") for server in servers])
    stop.wait()
    for server in servers:
        server.stop()


def feed_urls(bases: list[str]) -> list[str]:
    files = sorted(p.name for p in REALWORLD.iterdir() if p.is_file())
    urls = []
    for copy in range(COPIES):
        for i, name in enumerate(files):
            urls.append(f"{bases[(copy * len(files) + i) % len(bases)]}/c{copy}/{name}")
    return urls


def poller_tree(exclude: set[int]) -> list[psutil.Process]:
    """This process and its descendants (forkserver, parser workers), without the feed
    server's process tree: it stands in for the remote web servers."""
    me = psutil.Process()
    return [p for p in [me, *me.children(recursive=True)] if p.pid not in exclude]


class PeakRss:
    """Samples the summed RSS of the poller and its parser workers (and forkserver)."""

    def __init__(self, exclude: set[int]) -> None:
        self.exclude = exclude
        self.peak = 0
        self.threads = ThreadCpu()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench sampler", daemon=True)

    def _run(self) -> None:
        # Listing the process tree scans all of /proc: do it twice a second, and read
        # the memory of the known processes (one small /proc file each) in between.
        procs: list[psutil.Process] = []
        for tick in itertools.count():
            if self._stop.wait(0.05):
                return
            if tick % 10 == 0:
                procs = poller_tree(self.exclude)
                self.threads.sample()
            total = 0
            for proc in procs:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def own_cpu(self) -> float:
        """CPU seconds of the sampling thread itself: the instrument, not the poller."""
        self.threads.sample()
        return self.threads.by_name().get(self._thread.name, 0.0)


def tree_cpu(exclude: set[int]) -> float:
    total = 0.0
    for proc in poller_tree(exclude):
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def server_cpu(pids: set[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


class ThreadCpu:
    """Last seen CPU seconds of every thread of this process, sampled while it runs: a
    poll's writer thread ends with the poll, and its time would be lost otherwise."""

    def __init__(self) -> None:
        self.seconds: dict[int, tuple[str, float]] = {}

    def sample(self) -> None:
        names = {t.native_id: t.name for t in threading.enumerate()}
        for thread in psutil.Process().threads():
            name = names.get(thread.id) or self.seconds.get(thread.id, ("other", 0.0))[0]
            self.seconds[thread.id] = (name, thread.user_time + thread.system_time)

    def by_name(self) -> dict[str, float]:
        parts: dict[str, float] = {}
        for name, seconds in self.seconds.values():
            key = "pool threads" if name.startswith(("Thread-", "QueueFeederThread")) else name
            key = "writer thread" if key.startswith("chipwatch-writer") else key
            parts[key] = parts.get(key, 0.0) + seconds
        return parts


def cpu_by_part(exclude: set[int], threads: ThreadCpu) -> dict[str, float]:
    """CPU seconds so far of each thread of this process (by name) and of each child."""
    threads.sample()
    parts = threads.by_name()
    for proc in poller_tree(exclude)[1:]:
        try:
            times = proc.cpu_times()
            kind = "forkserver" if proc.ppid() == os.getpid() else "parse worker"
            parts[f"{kind} {proc.pid}"] = times.user + times.system
        except psutil.Error:
            continue
    return parts


def print_parts(before: dict[str, float], after: dict[str, float]) -> None:
    for name, seconds in sorted(after.items(), key=lambda kv: -kv[1]):
        spent = seconds - before.get(name, 0.0)
        if spent >= 0.05:
            print(f"    {name}: {spent:.2f} CPU-s")


class ScratchDatabase:
    """A fresh database for the cycles: a new SQLite file, or a new PostgreSQL database
    created next to the one a URL names and dropped on exit."""

    def __init__(self, server_url: str | None, data: Path) -> None:
        self.server_url = server_url
        self.name = f"chipwatch_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        self.url = f"sqlite:///{data / 'chipwatch.sqlite3'}"

    def __enter__(self) -> ScratchDatabase:
        if self.server_url is not None:
            from psycopg import sql

            with self._admin() as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
            base = normalise_url(self.server_url).rsplit("/", 1)[0]
            self.url = f"{base}/{self.name}"
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server_url is not None:
            from psycopg import sql

            with self._admin() as admin:
                admin.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(self.name)
                    )
                )

    def _admin(self):  # noqa: ANN202 - a psycopg connection
        import psycopg

        assert self.server_url is not None
        libpq_url = normalise_url(self.server_url).replace("postgresql+psycopg://", "postgresql://")
        return psycopg.connect(libpq_url, autocommit=True)


def postgres_server_cpu() -> float:
    """CPU seconds of the local PostgreSQL server's processes (0 if none runs here)."""
    total = 0.0
    for proc in psutil.process_iter(["name", "cpu_times"]):
        if proc.info["name"] in ("postgres", "postmaster") and proc.info["cpu_times"]:
            total += proc.info["cpu_times"].user + proc.info["cpu_times"].system
    return total


def baseline(urls: list[str]) -> float:
    import feedparser

    started = time.perf_counter()
    for url in urls:
        feedparser.parse(url)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-baseline", action="store_true", help="skip feedparser baseline")
    parser.add_argument(
        "--by-part", action="store_true", help="print CPU per poller thread and per child"
    )
    parser.add_argument(
        "--database-url",
        help="run on PostgreSQL: postgresql://USER@HOST[:PORT]/DB (a scratch database is made)",
    )
    args = parser.parse_args()
    if not REALWORLD.is_dir():
        print(f"bench_poll: feed corpus not found at {REALWORLD}", file=sys.stderr)
        print("  (expected ../shared/feeds/realworld next to the repository)", file=sys.stderr)
        return 2

    context = multiprocessing.get_context("spawn")
    ready, stop = context.Queue(), context.Event()
    server = context.Process(target=serve, args=(ready, stop), daemon=True)
    server.start()
    data = Path(tempfile.mkdtemp(prefix="chipwatch-bench-"))
    try:
        urls = feed_urls(ready.get(timeout=30))
        with ScratchDatabase(args.database_url, data) as scratch:
            cycles(args, urls, scratch.url, data, psutil.Process(server.pid))
    finally:
        stop.set()
        server.join(timeout=5)
    return 0


def cycles(args: argparse.Namespace, urls: list[str], url: str, data: Path, served_by) -> None:  # noqa: ANN001
    """Import the feeds, poll them cold and warm, and print the figures."""
    from chipwatch.collect import ParsePool, poll
    from chipwatch.opml import read_opml, write_opml
    from chipwatch.settings import FetchSettings, Settings, SourceConfig
    from chipwatch.store.db import open_database
    from chipwatch.store.sources import sync_sources

    opml = data / "feeds.opml"
    opml.write_text(write_opml(SourceConfig(url) for url in urls), encoding="utf-8")
    settings = Settings(
        config_path=data / "chipwatch.toml",
        config_dir=data,
        data_dir=data,
        topics_path=data / "topics.toml",
        corpus_dir=data / "corpus",
        fetch=FetchSettings(allow_private_networks=True),
        database_url=url,
    )
    database = open_database(settings.store_url)
    sessions = database.sessions
    with sessions.begin() as session:
        imported = sync_sources(session, read_opml(opml))
    print(f"{len(imported.added)} feeds imported by OPML into {database.backend} ({data})")

    server_tree = {served_by.pid, *(p.pid for p in served_by.children(recursive=True))}
    pool = ParsePool()
    with PeakRss(server_tree) as rss:
        cpu, served_cpu = tree_cpu(server_tree) - rss.own_cpu(), server_cpu(server_tree)
        db_cpu = postgres_server_cpu()
        parts = cpu_by_part(server_tree, rss.threads)
        start = time.perf_counter()
        cold = asyncio.run(poll(settings, sessions, all_feeds=True, pool=pool))
        cold_wall = time.perf_counter() - start
        cold_cpu = tree_cpu(server_tree) - rss.own_cpu() - cpu
        served_cpu = server_cpu(server_tree) - served_cpu
        cold_db_cpu, db_cpu = postgres_server_cpu() - db_cpu, postgres_server_cpu()
        cold_parts, parts = parts, cpu_by_part(server_tree, rss.threads)
        start = time.perf_counter()
        warm = asyncio.run(poll(settings, sessions, all_feeds=True, pool=pool))
        warm_wall = time.perf_counter() - start
        warm_db_cpu = postgres_server_cpu() - db_cpu
        warm_parts = cpu_by_part(server_tree, rss.threads)
    pool.close()
    database.dispose()

    print(f"cold cycle: {cold_wall:.1f} s wall, {cold_cpu:.1f} s CPU (poller + workers)"
          f"  [target <= 10 s]")  # fmt: skip
    print(f"  (the loopback feed server used {served_cpu:.1f} s CPU more; not counted)")
    if args.database_url:
        print(f"  (the PostgreSQL server used {cold_db_cpu:.1f} s CPU more; not counted)")
    if args.by_part:
        print_parts(cold_parts, parts)
    print(f"  {cold.feeds_polled} feeds, {cold.feeds_failed} failed, "
          f"{cold.entries_seen} entries parsed, {cold.new_articles} stored "
          f"(duplicates across the 5 copies skipped)")  # fmt: skip
    print(f"  {cold.entries_seen / cold_wall:.0f} entries parsed/s, "
          f"{cold.new_articles / cold_wall:.0f} entries stored/s")  # fmt: skip
    print(f"warm cycle: {warm_wall:.2f} s wall, {warm.feeds_not_modified} x 304  "
          f"[target <= 3 s]")  # fmt: skip
    if args.database_url:
        print(f"  (the PostgreSQL server used {warm_db_cpu:.1f} s CPU more; not counted)")
    if args.by_part:
        print_parts(parts, warm_parts)
    print(f"peak RSS: {rss.peak / 2**20:.0f} MB (poller + parser workers)  [target < 500 MB]")
    if not args.skip_baseline:
        seconds = baseline(urls)
        print(f"baseline: sequential feedparser.parse(url) x {len(urls)}: {seconds:.1f} s")


if __name__ == "__main__":
    raise SystemExit(main())
