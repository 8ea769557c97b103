"""What the worker tests and `make bench-scale` share: feeds that grow at each request,
a config on a scratch PostgreSQL database, worker processes, and looks at the queue.

    feeds = GrowingFeeds(count=300).start()     # /f/0.xml ... ; feeds.hits[path]
    feeds.hold("/f/3.xml")                      # its next request waits (feeds.holding)
    config = write_config(tmp, url, feeds.urls(), recipients=[...], smtp=server)
    workers = [start_worker(config, concurrency=8) for _ in range(3)]
    defer_tick(config, timestamp)               # one slot of the schedule, by hand
    wait_idle(url)                              # until no job is to do or being done

Each response of /f/N.xml carries items 0..k-1, k the number of requests the path saw:
every request brings one new item, so "every article stored once" is countable.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

REPO = Path(__file__).resolve().parents[1]


class GrowingFeeds:
    def __init__(self, count: int, delay_seconds: float = 0.0) -> None:
        self.count = count
        self.delay = delay_seconds
        self.hits: Counter[str] = Counter()
        self.in_flight = 0
        self.most_in_flight = 0
        self.arrivals: list[float] = []  # time.monotonic() of each request
        self.holding = threading.Event()  # set once a held request arrived
        self.release = threading.Event()
        self._held: str | None = None
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._httpd.request_queue_size = 512
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> GrowingFeeds:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    def urls(self) -> list[str]:
        port = self._httpd.server_address[1]
        return [f"http://127.0.0.1:{port}/f/{n}.xml" for n in range(self.count)]

    def hold(self, path: str) -> None:
        """The next request of `path` is answered only after `release` (or never)."""
        self._held = path

    def items_served(self) -> int:
        """Distinct items handed out: feed N's last answer held hits[N] items."""
        return sum(self.hits.values()) - self.unanswered

    unanswered = 0  # held requests whose client died before the answer

    def body(self, path: str, served: int) -> bytes:
        name = path.rsplit("/", 1)[-1].removesuffix(".xml")
        items = "".join(
            f"<item><title>Licence note {name}-{i}: export rule for feed {name}</title>"
            f"<link>http://feeds.test/{name}/{i}</link><guid>{name}-{i}</guid>"
            f"<description>Item {i} of feed {name}, our own words about chip rules "
            f"number {name}{i}.</description><pubDate>Mon, 03 Mar 2025 09:00:00 GMT</pubDate>"
            "</item>"
            for i in range(served)
        )
        return (
            '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Feed {name}</title><link>http://feeds.test/{name}/</link>"
            f"<description>test feed</description>{items}</channel></rss>"
        ).encode()


def _handler(feeds: GrowingFeeds) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 - the http.server naming
            path = urlsplit(self.path).path
            if not path.startswith("/f/"):
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            with feeds._lock:
                feeds.arrivals.append(time.monotonic())
                feeds.hits[path] += 1
                served = feeds.hits[path]
                feeds.in_flight += 1
                feeds.most_in_flight = max(feeds.most_in_flight, feeds.in_flight)
                held = feeds._held == path
                if held:
                    feeds._held = None
            if held:
                feeds.holding.set()
                feeds.release.wait()
                feeds.unanswered += 1  # its client was killed meanwhile (the test's doing)
                self._answered()
                return
            if feeds.delay:
                time.sleep(feeds.delay)
            body = feeds.body(path, served)
            # Out of flight before the answer goes: once the client has it, its next
            # request may come before this thread would get back to count.
            self._answered()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _answered(self) -> None:
            with feeds._lock:
                feeds.in_flight -= 1

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


def write_config(
    folder: Path,
    database_url: str,
    feed_urls: Sequence[str],
    *,
    recipients: Sequence[str] = (),
    smtp: tuple[str, int] | None = None,
    workers: str = "",
    fetch: str = "",
) -> Path:
    """A config for the workers: PostgreSQL, loopback feeds, digests every hour (UTC),
    an empty digest sent too (so each slot gives each reader exactly one message)."""
    sources = "".join(f'[[sources]]\nurl = "{url}"\n\n' for url in feed_urls)
    readers = "".join(
        f'[[recipients]]\naddress = "{a}"\nwhen_empty = "send"\n\n' for a in recipients
    )
    mail = f'[smtp]\nhost = "{smtp[0]}"\nport = {smtp[1]}\nsecurity = "none"\n' if smtp else ""
    config = folder / "chipwatch.toml"
    config.write_text(
        f'data_dir = "{folder / "data"}"\n'
        f'database_url = "{database_url}"\n'
        f'topics = "{REPO / "config" / "topics.toml"}"\n'
        f'corpus_dir = "{REPO / "config" / "corpus"}"\n'
        f"[fetch]\nallow_private_networks = true\n{fetch}\n"
        "[poll]\nclassify_on_poll = false\nmin_interval_minutes = 15\n"
        "max_interval_minutes = 30\n"
        '[digest]\nschedule = "0 * * * *"\ntimezone = "UTC"\n'
        f"{mail}"
        f"[workers]\n{workers}\n" + readers + sources,
        encoding="utf-8",
    )
    return config


def start_worker(
    config: Path, concurrency: int | None, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`chipwatch worker` (without --concurrency when None: the setting decides)."""
    handle = log.open("ab")
    env = {k: v for k, v in os.environ.items() if k != "CHIPWATCH_DATABASE_URL"} | (env or {})
    flag = [] if concurrency is None else ["--concurrency", str(concurrency)]
    return subprocess.Popen(
        [sys.executable, "-m", "chipwatch", "--config", str(config), "worker", *flag],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=env,
    )


def stop_workers(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def run_cli(
    config: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CHIPWATCH_DATABASE_URL"} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "chipwatch", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def query(url: str, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]:
    """The rows of one statement (none for a statement that returns none), committed."""
    with psycopg.connect(libpq(url)) as connection:
        cursor = connection.execute(sql, params)  # type: ignore[arg-type]
        return list(cursor.fetchall()) if cursor.description is not None else []


def defer_tick(config: Path, timestamp: int) -> None:
    """One slot of the schedule deferred by hand (the periodic tick with that timestamp)."""
    from chipwatch.queue.app import TICK, build_app
    from chipwatch.settings import load_settings

    app = build_app(load_settings(config, None))

    async def defer() -> None:
        async with app.open_async():
            await app.tasks[TICK].defer_async(timestamp=timestamp)

    asyncio.run(defer())


def unfinished(url: str) -> int:
    rows = query(
        url,
        "SELECT count(*) FROM procrastinate.procrastinate_jobs WHERE status IN ('todo', 'doing')",
    )
    return int(rows[0][0])  # type: ignore[call-overload]


def wait_idle(url: str, timeout: float, settle: float = 0.3) -> None:
    """Until no job is to do or being done (twice in a row, `settle` apart)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if unfinished(url) == 0:
            time.sleep(settle)
            if unfinished(url) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"jobs still unfinished after {timeout}s: {unfinished(url)}")


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
