"""Progress of poll and classify: a Rich bar on a terminal (a real pseudo-terminal here),
plain log lines with -v elsewhere, nothing by default in a pipe (cron stays quiet)."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from chipwatch.classify import load_corpus
from chipwatch.demo.server import serve_demo_feeds

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def config(tmp_path: Path) -> Iterator[Path]:
    with serve_demo_feeds(load_corpus(REPO / "config" / "corpus")) as (_, urls):
        path = tmp_path / "chipwatch.toml"
        path.write_text(
            f'data_dir = "{tmp_path / "data"}"\n'
            f'topics = "{REPO / "config" / "topics.toml"}"\n'
            f'corpus_dir = "{REPO / "config" / "corpus"}"\n'
            "[fetch]\nallow_private_networks = true\n"
            + "".join(f'[[sources]]\nurl = "{url}"\n' for url in urls),
            encoding="utf-8",
        )
        yield path


def test_a_terminal_sees_a_progress_bar(config: Path) -> None:
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "chipwatch", "--config", str(config), "poll"],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env={**os.environ, "COLUMNS": "100", "TERM": "xterm"},
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=300) == 0
    text = output.decode("utf-8", "replace")
    assert "poll: feeds" in text and "3/3" in text
    assert "classify: articles" in text and "16/16" in text
    assert "polled 3 feeds" in text


def test_elsewhere_progress_is_log_lines(config: Path) -> None:
    args = [sys.executable, "-m", "chipwatch", "--config", str(config)]
    quiet = subprocess.run([*args, "poll", "--no-classify"], capture_output=True, text=True)
    assert quiet.returncode == 0 and quiet.stderr == ""
    verbose = subprocess.run([*args, "-v", "classify"], capture_output=True, text=True)
    assert verbose.returncode == 0, verbose.stderr
    lines = [line for line in verbose.stderr.splitlines() if "chipwatch.progress" in line]
    assert lines and lines[-1].endswith("classify: articles: 16/16")
    assert re.fullmatch(r"classified 16: \d+ relevant, \d+ novel", verbose.stdout.strip())
