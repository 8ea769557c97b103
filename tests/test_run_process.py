"""`chipwatch run` as a service manager runs it: a real subprocess, real loopback feeds.

- a signal during a poll: the feeds fetched are stored, the one still being fetched is
  left for the next poll, one log line, exit 130 (SIGINT) / 143 (SIGTERM), no traceback;
- a second `run` on the same data folder exits at once with the lock's code (75);
- `kill -9` of `run` takes its parse workers with it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from feedserver import FeedServer, Item, rss

from chipwatch.errors import ExitCode

REPO = Path(__file__).resolve().parents[1]
SLOW_SECONDS = 10.0  # the slow feed's answer never comes within a test: the stop cuts it


@dataclass
class RunProcess:
    """A `chipwatch run` in its own session (a group of its own, like a service's)."""

    process: subprocess.Popen[bytes]
    out: Path
    err: Path

    def stdout(self) -> str:
        return self.out.read_text(encoding="utf-8")

    def stderr(self) -> str:
        return self.err.read_text(encoding="utf-8")

    def wait(self, timeout: float = 20.0) -> int:
        return self.process.wait(timeout=timeout)


def start_run(config: Path, name: str = "run") -> RunProcess:
    # Files, not pipes: the parse workers inherit the descriptors, and a reader of a pipe
    # would wait for them too.
    out, err = config.parent / f"{name}.out", config.parent / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "chipwatch", "--config", str(config), "run"],
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    return RunProcess(process, out, err)


@pytest.fixture()
def runs() -> Iterator[Callable[[Path], RunProcess]]:
    started: list[RunProcess] = []

    def start(config: Path) -> RunProcess:
        started.append(start_run(config, f"run{len(started)}"))
        return started[-1]

    yield start
    for run in started:  # a failed test leaves nothing behind, workers included
        with contextlib.suppress(ProcessLookupError):  # the whole group is gone: good
            os.killpg(run.process.pid, signal.SIGKILL)
        run.process.wait()


def write_config(tmp_path: Path, urls: list[str]) -> Path:
    sources = "".join(f'[[sources]]\nurl = "{url}"\n' for url in urls)
    config = tmp_path / "chipwatch.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'topics = "{REPO / "config" / "topics.toml"}"\n'
        f'corpus_dir = "{REPO / "config" / "corpus"}"\n'
        "[fetch]\nallow_private_networks = true\n" + sources,
        encoding="utf-8",
    )
    return config


def until(check: Callable[[], object], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def stored_urls(tmp_path: Path) -> set[str]:
    path = tmp_path / "data" / "chipwatch.sqlite3"
    if not path.exists():
        return set()
    with sqlite3.connect(path) as db:
        try:
            return {url for (url,) in db.execute("SELECT url FROM articles")}
        except sqlite3.OperationalError:  # the schema is still being created
            return set()


def source_checked(tmp_path: Path, url: str) -> bool:
    with sqlite3.connect(tmp_path / "data" / "chipwatch.sqlite3") as db:
        row = db.execute("SELECT last_checked_at FROM sources WHERE url = ?", (url,)).fetchone()
    return row is not None and row[0] is not None


@pytest.fixture()
def feeds() -> Iterator[tuple[FeedServer, FeedServer]]:
    """A fast feed and a slow one, on two loopback hosts (the per-host limit would
    otherwise queue the fast one behind the slow one)."""
    with FeedServer("127.0.0.1") as fast, FeedServer("127.0.0.2") as slow:
        item = Item("US curbs AI chip exports", "http://example.test/fast-1", "fast-1")
        fast.add("/feed.xml", rss([item]))
        later = Item("Slow news", "http://example.test/slow-1", "slow-1")
        slow.add("/feed.xml", rss([later]), delay=SLOW_SECONDS)
        yield fast, slow


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, ExitCode.TERMINATED), (signal.SIGINT, ExitCode.INTERRUPTED)],
)
def test_a_signal_during_a_poll_stores_what_was_fetched_and_exits_cleanly(
    tmp_path: Path,
    feeds: tuple[FeedServer, FeedServer],
    runs: Callable[[Path], RunProcess],
    signum: signal.Signals,
    code: ExitCode,
) -> None:
    fast, slow = (server.url("/feed.xml") for server in feeds)
    run = runs(write_config(tmp_path, [fast, slow]))
    until(lambda: "http://example.test/fast-1" in stored_urls(tmp_path), "the fast feed stored")
    until(lambda: feeds[1].hits["/feed.xml"], "the slow feed's request")
    started = time.monotonic()
    if signum == signal.SIGINT:  # to the whole group, as Ctrl-C: the parse workers too
        os.killpg(run.process.pid, signum)
    else:  # to the main process alone, as systemd's default KillMode does first
        run.process.send_signal(signum)
    assert run.wait() == code
    assert time.monotonic() - started < 5  # the slow feed's answer was not waited for
    errors = run.stderr()
    assert "Traceback" not in errors, errors
    stopping = [line for line in errors.splitlines() if f"stopping on {signum.name}" in line]
    assert len(stopping) == 1, errors
    assert "stopped: 1 feeds cut short, left for the next poll" in errors
    assert stored_urls(tmp_path) == {"http://example.test/fast-1"}
    assert source_checked(tmp_path, fast)
    assert not source_checked(tmp_path, slow)  # nothing recorded: still due


def test_a_second_run_on_the_same_data_folder_exits_at_once(
    tmp_path: Path, runs: Callable[[Path], RunProcess]
) -> None:
    config = write_config(tmp_path, [])
    first = runs(config)
    until(lambda: "chipwatch running" in first.stdout(), "the first run's start-up line")
    second = runs(config)
    assert second.wait() == ExitCode.LOCKED
    lines = second.stderr().strip().splitlines()
    assert len(lines) == 1, lines
    assert "chipwatch run is already running on this data folder" in lines[0]
    assert f"(pid {first.process.pid})" in lines[0]
    assert "chipwatch running" not in second.stdout()
    assert first.process.poll() is None  # the first one goes on
    first.process.send_signal(signal.SIGTERM)
    assert first.wait() == ExitCode.TERMINATED
    third = runs(config)  # the lock went with its holder
    until(lambda: "chipwatch running" in third.stdout(), "the third run's start-up line")
    third.process.send_signal(signal.SIGTERM)
    assert third.wait() == ExitCode.TERMINATED


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (from /proc: each process's parent)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie holds no connection; its parent is gone


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_the_parse_workers_die_with_a_killed_run(
    tmp_path: Path, feeds: tuple[FeedServer, FeedServer], runs: Callable[[Path], RunProcess]
) -> None:
    run = runs(write_config(tmp_path, [server.url("/feed.xml") for server in feeds]))
    until(lambda: "http://example.test/fast-1" in stored_urls(tmp_path), "the fast feed stored")
    children = descendants(run.process.pid)
    assert len(children) >= 3  # the resource tracker, the forkserver, a parse worker
    run.process.kill()  # kill -9: no handler, no clean-up
    run.wait()
    until(lambda: not any(alive(pid) for pid in children), "the children to exit", timeout=10)
