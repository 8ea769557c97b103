"""A review site on loopback for the tests: a real data directory filled by the real
pipeline (demo feeds and a hostile feed served on 127.0.0.1, polled, classified, digest
delivered into a Maildir), a user made with `chipwatch users add`, and `chipwatch serve`
running in a subprocess."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from feedserver import FeedServer

from chipwatch import pipeline
from chipwatch.classify import load_corpus
from chipwatch.demo.run import oldest_sample
from chipwatch.demo.server import serve_demo_feeds
from chipwatch.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
USER, PASSWORD, EMAIL = "alice", "correct horse 7", "reader@localhost"

# Our own hostile item: markup that would run script, load remote content or restyle the
# page if any of it reached the browser as markup.
HOSTILE_TITLE = (
    'Export controls <script>window.cwPwned=1</script><img src=x onerror="window.cwPwned=2">'
)
HOSTILE_TEXT = (
    "<p>Chip export licences for H20 accelerators to China were debated again.</p>"
    '<p><a href="javascript:window.cwPwned=3">click</a> <a href="https://example.org/ok">ok</a>'
    '<iframe src="https://example.org/"></iframe><svg onload="window.cwPwned=4"></svg>'
    '<style>body{display:none}</style><form action="https://example.org/"><input name="x">'
    '</form><b onclick="window.cwPwned=5">bold</b></p>'
)


def hostile_feed() -> bytes:
    from xml.sax.saxutils import escape

    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        "<title>Hostile &lt;b&gt;feed&lt;/b&gt;</title><link>https://example.org/</link>"
        "<description>x</description><item>"
        f"<title>{escape(HOSTILE_TITLE)}</title><link>https://example.org/hostile</link>"
        '<guid isPermaLink="false">hostile-1</guid>'
        "<pubDate>Mon, 01 Dec 2026 08:00:00 GMT</pubDate>"
        f"<description>{escape(HOSTILE_TEXT)}</description></item></channel></rss>"
    ).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(root: Path, port: int, feed_urls: list[str], extra: str = "") -> Path:
    config = root / "config"
    shutil.copytree(REPO / "config" / "corpus", config / "corpus")
    shutil.copy(REPO / "config" / "topics.toml", config / "topics.toml")
    sources = "".join(f'\n[[sources]]\nurl = "{url}"\n' for url in feed_urls)
    # The demo's samples are dated mid-2025: windows wide enough to show them.
    days = (datetime.now(UTC) - oldest_sample(list(load_corpus(REPO / "config" / "corpus")))).days
    (config / "chipwatch.toml").write_text(
        f'data_dir = "{root / "data"}"\n'
        "[fetch]\nallow_private_networks = true\n"
        f"[poll]\nfirst_poll_backfill_hours = {(days + 2) * 24}\n"
        f"[digest]\nlookback_days = {days + 2}\n"
        f'[web]\npublic_url = "http://127.0.0.1:{port}/"\n{extra}'
        f'\n[[recipients]]\naddress = "{EMAIL}"\n' + sources,
        encoding="utf-8",
    )
    return config / "chipwatch.toml"


def run_cli(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chipwatch", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@dataclass
class ReviewSite:
    config: Path
    settings: Settings
    url: str
    process: subprocess.Popen[str]

    @property
    def maildir(self) -> Path:
        return self.settings.maildir_path

    @property
    def user_topics(self) -> Path:
        return self.settings.user_topics_path

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def fill_data(root: Path, port: int, extra: str = "") -> tuple[Path, Settings]:
    """Poll the demo feeds and the hostile one, classify, deliver a digest."""
    with (
        FeedServer() as hostile,
        serve_demo_feeds(load_corpus(REPO / "config" / "corpus")) as (
            _,
            demo_urls,
        ),
    ):
        hostile.add("/hostile.xml", hostile_feed(), headers={"Content-Type": "application/rss+xml"})
        config = write_config(root, port, [*demo_urls, hostile.url("/hostile.xml")], extra)
        settings = load_settings(config)
        pipeline.poll_and_classify(settings, all_feeds=True, classify=True)
    pipeline.build_and_send_digests(settings, send=True, only=None)
    added = run_cli(config, "users", "add", USER, "--email", EMAIL, stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    return config, settings


def start_server(config: Path, settings: Settings, port: int) -> ReviewSite:
    process = subprocess.Popen(
        [sys.executable, "-m", "chipwatch", "--config", str(config), "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # the URL, printed once it listens
    match = re.search(r"listening on (http://\S+)", line)
    if not match:
        process.kill()
        raise RuntimeError(f"chipwatch serve did not start: {line}{process.stdout.read()}")
    return ReviewSite(config, settings, match.group(1).rstrip("/"), process)


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def login(base_url: str, name: str = USER, password: str = PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=base_url, follow_redirects=False, timeout=60)
    form = client.get("/login")
    answer = client.post(
        "/login", data={"csrf": csrf_of(form.text), "name": name, "password": password}
    )
    assert answer.status_code == 303, answer.text
    return client


def wait_until(check, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReviewSite]:
    """One filled data directory and one running server for the review-site tests."""
    port = free_port()
    config, settings = fill_data(tmp_path_factory.mktemp("review"), port)
    running = start_server(config, settings, port)
    yield running
    running.stop()
