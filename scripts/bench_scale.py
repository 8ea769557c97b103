"""Benchmark the workers: one poll cycle of N loopback feeds with 1, 2 and 4 workers.

    .venv/bin/python scripts/bench_scale.py [--feeds 5000] [--workers 1,2,4]
        [--concurrency 4] [--latency 0.2] [--database-url postgresql://postgres@127.0.0.1/postgres]

The feed server (threads of this process) answers each feed after `--latency` seconds,
so a cycle is bound by the latency and each worker's fixed concurrency (jobs in flight),
not by the machine's cores. For each worker count: a scratch PostgreSQL database (its
feeds stored before the clock starts; dropped after), W `chipwatch worker` processes,
then one `poll --wait` cycle (every feed due) driven from here. Printed: cycle time,
feeds/s and its ratio to one worker's, the workers' CPU (with their parser processes),
the CPU of the PostgreSQL backends serving the scratch database (this machine's server
only; those alive at the end of the cycle), this process's CPU (the feed server and the
waiting `poll`: what the bench takes from the workers' cores), and duplicate fetches
counted by the server (a feed requested twice).
Targets: 2 workers >= 1.8x and 4 workers >= 3.2x one worker's feeds/s, 0 duplicates.
The machine is shared: the load average is printed beside each figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from backends import create_database, drop_database, new_name, server_problem  # noqa: E402
from queueworld import (  # noqa: E402
    GrowingFeeds,
    query,
    start_worker,
    stop_workers,
    wait_for,
    write_config,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=5000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--concurrency", type=int, default=4, help="jobs in flight per worker")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds before each answer")
    parser.add_argument("--database-url", default="", help="the PostgreSQL server to use")
    args = parser.parse_args()
    if args.database_url:
        os.environ["CHIPWATCH_TEST_POSTGRES_URL"] = args.database_url
    problem = server_problem()
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    counts = [int(w) for w in args.workers.split(",")]
    print(
        f"bench-scale: {args.feeds} feeds answering after {args.latency * 1000:.0f} ms, "
        f"{args.concurrency} jobs per worker; cpus {os.cpu_count()}"
    )
    folder = Path(tempfile.mkdtemp(prefix="chipwatch-bench-scale-"))
    results = [(workers, run_cycle(folder, args, workers)) for workers in counts]
    base = results[0][1] if results else 0.0
    for workers, rate in results:
        target = {2: 1.8, 4: 3.2}.get(workers)
        verdict = "" if target is None else f" (target >= {target}x)"
        print(f"  {workers} workers: {rate:7.1f} feeds/s = {rate / base:4.2f}x one worker{verdict}")
    return 0


def run_cycle(folder: Path, args: argparse.Namespace, workers: int) -> float:
    from chipwatch import pipeline
    from chipwatch.queue.client import poll_through_workers
    from chipwatch.settings import load_settings

    feeds = GrowingFeeds(args.feeds, delay_seconds=args.latency).start()
    name = new_name(f"scale_{workers}")
    url = create_database(name)
    run_dir = folder / f"w{workers}"
    run_dir.mkdir()
    procs = []
    try:
        config = write_config(
            run_dir,
            url,
            feeds.urls(),
            workers='tick_cron = ""\n',
            fetch="per_host_concurrency = 64\nconcurrency = 64\n",
        )
        settings = load_settings(config, None)
        sessions = pipeline.open_sessions(settings)
        pipeline.sync_config_sources(settings, sessions)
        procs = [
            start_worker(config, args.concurrency, run_dir / f"worker{i}.log")
            for i in range(workers)
        ]
        wait_for(
            lambda: (
                len(query(url, "SELECT id FROM procrastinate.procrastinate_workers")) == workers
            ),
            120,
            f"{workers} workers",
        )
        time.sleep(1.0)  # the workers' start-up (imports, parser pool) settles
        tracked = [psutil.Process(p.pid) for p in procs]
        worker_before, pg_before = _cpu(tracked), _postgres_cpu(name)
        here_before = _own_cpu()
        load = os.getloadavg()[0]
        started = time.monotonic()
        result = poll_through_workers(
            settings, sessions, all_feeds=False, classify=False, wait=True
        )
        seconds = time.monotonic() - started
        worker_cpu, pg_cpu = _cpu(tracked) - worker_before, _postgres_cpu(name) - pg_before
        here_cpu = _own_cpu() - here_before
        duplicates = sum(max(0, h - 1) for h in feeds.hits.values())
        missing = args.feeds - len(feeds.hits)
        rate = args.feeds / seconds
        print(
            f"{workers} workers: cycle {seconds:6.1f} s, {rate:6.1f} feeds/s; "
            f"workers' CPU {worker_cpu:5.1f} s ({worker_cpu / args.feeds * 1000:.1f} ms/feed), "
            f"PostgreSQL CPU {pg_cpu:5.1f} s, bench CPU {here_cpu:4.1f} s; "
            f"duplicate fetches {duplicates}, "
            f"unfetched {missing}; exit {int(result.exit_code)}; "
            f"load {load:.1f} -> {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        return rate
    finally:
        stop_workers(procs)
        feeds.stop()
        drop_database(name)


def _cpu(processes: list[psutil.Process]) -> float:
    total = 0.0
    for process in processes:
        try:
            family = [process, *process.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for member in family:
            try:
                times = member.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
    return total


def _own_cpu() -> float:
    """This process's CPU, without its children (the workers are counted apart)."""
    times = psutil.Process().cpu_times()
    return times.user + times.system


def _postgres_cpu(database: str) -> float:
    """CPU of this machine's PostgreSQL backends connected to `database`."""
    total = 0.0
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            line = " ".join(process.info["cmdline"] or [])
            if line.startswith("postgres:") and f" {database} " in f"{line} ":
                times = process.cpu_times()
                total += times.user + times.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


if __name__ == "__main__":
    sys.exit(main())
