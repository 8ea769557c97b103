"""Prometheus metrics scraped over HTTP from `chipwatch run`, the textfile written by
`chipwatch poll`, and `chipwatch health`'s verdicts. Real feeds on 127.0.0.1, a real
SQLite file, the real command in a subprocess."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from chipwatch_cli import run_chipwatch

from chipwatch import health
from chipwatch.classify import load_corpus
from chipwatch.demo.server import serve_demo_feeds
from chipwatch.settings import load_settings, with_overrides
from chipwatch.store.stats import Snapshot

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def feeds() -> Iterator[list[str]]:
    with serve_demo_feeds(load_corpus(REPO / "config" / "corpus")) as (_, urls):
        yield urls


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(tmp_path: Path, urls: list[str], extra: str) -> Path:
    sources = "".join(f'[[sources]]\nurl = "{url}"\n' for url in urls)
    path = tmp_path / "chipwatch.toml"
    path.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'topics = "{REPO / "config" / "topics.toml"}"\n'
        f'corpus_dir = "{REPO / "config" / "corpus"}"\n'
        "[fetch]\nallow_private_networks = true\n"
        "[poll]\nclassify_on_poll = false\n" + extra + sources,
        encoding="utf-8",
    )
    return path


def value(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in the metrics"
    return float(match.group(1))


def test_run_serves_metrics_on_loopback(tmp_path: Path, feeds: list[str]) -> None:
    port = free_port()
    config = write_config(tmp_path, feeds, f"[metrics]\nport = {port}\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "chipwatch", "--config", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == f"metrics on http://127.0.0.1:{port}/metrics"
        text = ""
        deadline = time.monotonic() + 120
        while "chipwatch_last_poll_success_timestamp_seconds" not in text:
            assert time.monotonic() < deadline, "the first poll never showed in the metrics"
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.5)
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            except httpx.TransportError:
                continue
        # The poll's store and the metrics' read may interleave: wait for its outcome.
        while 'chipwatch_feeds{state="ok"} 3.0' not in text:
            assert time.monotonic() < deadline
            time.sleep(0.5)
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert value(text, "chipwatch_articles_stored") == 16
        assert value(text, "chipwatch_articles_classified") == 0  # classify_on_poll = false
        assert value(text, 'chipwatch_feeds{state="failing"}') == 0
        assert value(text, 'chipwatch_digests{status="sent"}') == 0
        assert abs(value(text, "chipwatch_last_poll_success_timestamp_seconds") - time.time()) < 300
        while "chipwatch_fetch_duration_seconds_count 3.0" not in text:  # observed after the poll
            assert time.monotonic() < deadline
            time.sleep(0.5)
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert value(text, 'chipwatch_polls_total{result="ok"}') == 1
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
    assert process.returncode == 143  # stopped by SIGTERM (README, exit codes)


def test_poll_writes_the_textfile_and_health_follows_the_polls(
    tmp_path: Path, feeds: list[str]
) -> None:
    textfile = tmp_path / "textfile" / "chipwatch.prom"
    textfile.parent.mkdir()
    config = write_config(tmp_path, feeds, f'[metrics]\ntextfile = "{textfile}"\n')

    never = run_chipwatch(config, "health")
    assert never.returncode == 4
    assert "no feed was ever polled" in never.stdout and never.stdout.startswith("UNHEALTHY")

    polled = run_chipwatch(config, "poll")
    assert polled.returncode == 0, polled.stderr
    text = textfile.read_text(encoding="utf-8")
    assert value(text, 'chipwatch_feeds{state="ok"}') == 3
    assert value(text, "chipwatch_fetch_duration_seconds_count") == 3
    assert value(text, "chipwatch_articles_stored") == 16
    assert not list(textfile.parent.glob("*.tmp*"))  # written atomically

    fine = run_chipwatch(config, "health")
    assert fine.returncode == 0, fine.stdout + fine.stderr
    assert fine.stdout.startswith("healthy") and "(bound 90 min)" in fine.stdout

    # Three poll intervals later without a poll, the bound is passed.
    settings = load_settings(config, environ={})
    later = datetime.now() + timedelta(minutes=91)  # noqa: DTZ005 - naive like the store
    assert not health.check(settings, later).healthy
    wider = with_overrides(settings, health={"max_poll_age_minutes": 120})
    assert health.check(wider, later).healthy


def test_an_undelivered_digest_past_the_bound_is_unhealthy() -> None:
    settings = load_settings(REPO / "config" / "chipwatch.toml", environ={})
    now = datetime(2026, 3, 2, 12, 0)
    snap = Snapshot(
        feeds_by_state={"ok": 3, "failing": 0, "disabled": 0, "new": 0},
        articles=10,
        classified=10,
        relevant_by_topic={},
        novel=0,
        digests_by_status={"pending": 1, "sent": 4, "failed": 0},
        last_poll_success=now - timedelta(minutes=5),
        last_digest_sent=now - timedelta(days=3),
        oldest_unsent_digest=now - timedelta(hours=25),
    )
    report = health.judge(settings, snap, now)
    assert not report.healthy
    assert "a digest has waited unsent for 25 h (bound 24 h)" in str(report)
    quiet = health.judge(settings, Snapshot(**{**snap.__dict__, "oldest_unsent_digest": None}), now)
    assert quiet.healthy  # nothing to send for days is no failure
