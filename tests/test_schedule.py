"""The scheduler's wiring, the job lock, and `chipwatch run` stopping cleanly on a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chipwatch.errors import ExitCode, LockBusy
from chipwatch.lock import job_lock
from chipwatch.schedule import JOB_DEFAULTS, build_scheduler, digest_schedules
from chipwatch.settings import Recipient, load_settings

REPO = Path(__file__).resolve().parents[1]


def settings_for(tmp_path: Path):  # type: ignore[no-untyped-def]
    config = tmp_path / "chipwatch.toml"
    config.write_text("[poll]\ninterval_minutes = 20\n", encoding="utf-8")
    return load_settings(config, data_dir=tmp_path / "data", environ={})


def test_jobs_coalesce_and_never_overlap(tmp_path: Path) -> None:
    scheduler = build_scheduler(settings_for(tmp_path), lambda: None, lambda: None)
    jobs = {job.id: job for job in scheduler.get_jobs()}
    assert set(jobs) == {"poll", "digest-0"}
    assert JOB_DEFAULTS["coalesce"] is True
    assert JOB_DEFAULTS["max_instances"] == 1
    poll_trigger = jobs["poll"].trigger
    assert poll_trigger.interval.total_seconds() == 20 * 60


def test_digest_fires_at_half_past_seven_paris_time(tmp_path: Path) -> None:
    scheduler = build_scheduler(settings_for(tmp_path), lambda: None, lambda: None)
    trigger = scheduler.get_job("digest-0").trigger
    # 2026-01-15 is winter time: 07:30 in Paris is 06:30 UTC.
    after = datetime(2026, 1, 15, 0, 0, tzinfo=UTC)
    fire = trigger.get_next_fire_time(None, after)
    assert fire.astimezone(UTC) == datetime(2026, 1, 15, 6, 30, tzinfo=UTC)


def test_each_recipient_schedule_gets_a_job(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    settings = replace(
        settings,
        recipients=(
            Recipient("a@example.org"),
            Recipient("b@example.org", schedule="0 8 * * 1-5", timezone="America/New_York"),
        ),
    )
    assert digest_schedules(settings) == {
        ("30 7 * * *", "Europe/Paris"),
        ("0 8 * * 1-5", "America/New_York"),
    }
    assert len(build_scheduler(settings, lambda: None, lambda: None).get_jobs()) == 3


def test_second_holder_of_a_job_lock_is_refused(tmp_path: Path) -> None:
    with job_lock(tmp_path, "poll"):
        with pytest.raises(LockBusy, match="poll"), job_lock(tmp_path, "poll"):
            pass
        with job_lock(tmp_path, "digest"):  # another job is free to run
            pass
    with job_lock(tmp_path, "poll"):  # released on exit
        pass


def test_lock_is_refused_across_processes(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from chipwatch.lock import job_lock\n"
            f"with job_lock(Path({str(tmp_path)!r}), 'poll'):\n"
            "    print('held', flush=True); time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(LockBusy), job_lock(tmp_path, "poll"):
            pass
    finally:
        holder.kill()
        holder.wait()
    with job_lock(tmp_path, "poll"):  # the dead holder left no stale lock
        pass


@pytest.mark.parametrize(
    ("signum", "code"),
    [(signal.SIGTERM, ExitCode.TERMINATED), (signal.SIGINT, ExitCode.INTERRUPTED)],
)
def test_run_stops_cleanly_on_signal(tmp_path: Path, signum: int, code: ExitCode) -> None:
    config = tmp_path / "chipwatch.toml"
    # No sources: the first poll finds nothing to do, and the process just waits.
    config.write_text(
        f'topics = "{REPO / "config" / "topics.toml"}"\n'
        f'corpus_dir = "{REPO / "config" / "corpus"}"\n',
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chipwatch",
            "--config",
            str(config),
            "--data-dir",
            str(tmp_path / "data"),
            "run",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        assert "chipwatch running" in process.stdout.readline()
        time.sleep(1.0)
        process.send_signal(signum)
        returned = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    errors = process.stderr.read() if process.stderr else ""
    assert returned == code, errors  # 143 / 130: stopped by that signal (README)
    assert "Traceback" not in errors


def test_scheduled_poll_collects_classifies_and_sends_once(tmp_path: Path) -> None:
    from chipwatch.classify import load_corpus
    from chipwatch.demo.run import oldest_sample
    from chipwatch.demo.server import serve_demo_feeds
    from chipwatch.pipeline import scheduled
    from chipwatch.settings import SourceConfig, with_overrides

    settings = settings_for(tmp_path)
    settings = replace(
        settings,
        topics_path=REPO / "config" / "topics.toml",
        corpus_dir=REPO / "config" / "corpus",
    )
    corpus = list(load_corpus(settings.corpus_dir))
    # The samples are dated (mid-2025): the window reaches back to them, as in the demo.
    days = (datetime.now(UTC) - oldest_sample(corpus)).days + 2
    with serve_demo_feeds(corpus) as (_, urls):
        settings = with_overrides(
            replace(settings, sources=tuple(SourceConfig(url) for url in urls)),
            fetch={"allow_private_networks": True},
            digest={"lookback_days": days},
            poll={"first_poll_backfill_hours": days * 24},
        )
        with job_lock(settings.data_dir, "poll"):
            scheduled(settings, "poll")  # another run holds the lock: skipped, no error
        assert not (settings.maildir_path / "new").exists()

        scheduled(settings, "poll")
        # A fresh install's first tick: the 07:30 digest of the last day is caught up.
        delivered = list((settings.maildir_path / "new").iterdir())
        assert len(delivered) == 1
        scheduled(settings, "poll")
        scheduled(settings, "digest")
    assert len(list((settings.maildir_path / "new").iterdir())) == 1


@pytest.mark.parametrize(
    ("weekdays", "says"),
    [
        ("8", "'8' is no day"),  # was read as 8 % 7, a Monday
        ("99999999999999999999", "is no day"),
        ("5-1", "the range 5-1 goes down"),  # was "got 4 fields" (5 were given)
        ("1-", "'' is no day"),  # these were "tuple.index(x): x not in tuple"
        ("x1", "'x1' is no day"),
        ("1/0", "step '0' is not 1-7"),  # "range() arg 3 must not be zero"
    ],
)
def test_a_weekday_field_cron_refuses_is_named(tmp_path: Path, weekdays: str, says: str) -> None:
    from chipwatch.errors import ConfigError
    from chipwatch.settings import load_settings

    config = tmp_path / "chipwatch.toml"
    config.write_text(f'[digest]\nschedule = "0 7 * * {weekdays}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_settings(config, tmp_path / "data", {})
    assert refused.value.field == "digest.schedule"
    assert (
        f"weekday field {weekdays!r}: " in refused.value.message and says in refused.value.message
    )
