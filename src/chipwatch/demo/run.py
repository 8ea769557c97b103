"""`chipwatch demo`: the whole watch once, offline, on loopback sample feeds.

It serves the sample feeds on 127.0.0.1, polls them into a fresh demo database,
classifies, writes an HTML preview, delivers the digest into the demo Maildir, and checks
that the relevant samples reached the digest and the off-subject ones did not.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from chipwatch import pipeline
from chipwatch.classify import load_corpus
from chipwatch.demo.samples import ENGLISH_WIRE, FRENCH_GENERAL
from chipwatch.demo.server import corpus_items, serve_demo_feeds
from chipwatch.errors import UsageError
from chipwatch.settings import Settings, SmtpSettings, SourceConfig, load_settings, with_overrides
from chipwatch.types import CorpusDocument


def demo_settings(
    config_path: Path | None,
    data_dir: Path,
    feed_urls: list[str],
    oldest: datetime | None = None,
) -> Settings:
    """The user's settings, pointed at the loopback feeds, a Maildir and the demo data dir.

    The samples are dated (mostly mid-2025), so the digest window reaches back to the
    `oldest` of them, and the first poll's backfill window too: a real first poll would
    mail none of them. The digest's header states that window."""
    base = load_settings(config_path, data_dir.resolve())
    names = {
        "presse-fr": "La presse tech (démo)",
        "wire-en": "Tech wire (demo)",
        "general-fr": "Actualités générales (démo)",
    }
    sources = tuple(SourceConfig(url=url, name=names.get(Path(url).stem, url)) for url in feed_urls)
    # database_url is dropped: the demo's feeds, articles and account go into the SQLite
    # file of its own folder, never into the user's (PostgreSQL) database.
    settings = replace(base, sources=sources, smtp=SmtpSettings(), recipients=(), database_url="")
    window: dict[str, dict[str, object]] = {}
    if oldest is not None:
        days = (datetime.now(UTC) - oldest).days + 2
        window = {
            "digest": {"lookback_days": days},
            "poll": {"first_poll_backfill_hours": days * 24},
        }
    return with_overrides(settings, fetch={"allow_private_networks": True}, **window)


def oldest_sample(corpus: list[CorpusDocument]) -> datetime:
    items = [*corpus_items(corpus), *ENGLISH_WIRE, *FRENCH_GENERAL]
    return min(datetime.fromisoformat(item.published.replace("Z", "+00:00")) for item in items)


DEMO_MARKER = ".chipwatch-demo"


def claim_data_dir(data_dir: Path) -> None:
    """Make `data_dir` the demo's own, or refuse it: every run resets the folder, so it
    must hold nothing but what an earlier demo made (its marker file says so). A missing
    or empty folder is taken and marked before anything else is written there, so a demo
    cut short still leaves a folder the next one recognises."""
    if (data_dir / DEMO_MARKER).is_file():
        return
    if data_dir.exists() and not data_dir.is_dir():
        raise UsageError(f"--data-dir {data_dir}: a file, not a folder; pass an empty --data-dir")
    if data_dir.is_dir() and any(data_dir.iterdir()):
        raise UsageError(
            f"--data-dir {data_dir}: holds files the demo did not make (no {DEMO_MARKER}), "
            "which its reset would delete; pass an empty --data-dir"
        )
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / DEMO_MARKER).write_text(
            "made by `chipwatch demo`, which resets this folder at each run\n", encoding="utf-8"
        )
    except OSError as exc:
        raise UsageError(f"--data-dir {data_dir}: cannot write: {exc.strerror or exc}") from None


def reset_demo_data(data_dir: Path) -> None:
    """Each demo starts from an empty database and Maildir; the fitted classifier is kept.
    Only called on a folder `claim_data_dir` accepted: the demo's own."""
    for name in ("chipwatch.sqlite3", "chipwatch.sqlite3-wal", "chipwatch.sqlite3-shm"):
        (data_dir / name).unlink(missing_ok=True)
    shutil.rmtree(data_dir / "maildir", ignore_errors=True)
    shutil.rmtree(data_dir / "feeds", ignore_errors=True)


def run_demo(config_path: Path | None, data_dir: Path) -> int:
    claim_data_dir(data_dir)
    reset_demo_data(data_dir)
    base = load_settings(config_path, data_dir.resolve())
    if base.database_url:
        print(
            "database_url is set: the demo ignores it and uses its own SQLite file, "
            f"{base.database_path}"
        )
    corpus = load_corpus(base.corpus_dir)
    with serve_demo_feeds(corpus) as (base_url, feed_urls):
        print(f"serving {len(feed_urls)} sample feeds on {base_url}")
        settings = demo_settings(config_path, data_dir, feed_urls, oldest_sample(list(corpus)))
        poll_report = pipeline.poll_and_classify(settings, all_feeds=True, classify=True)
    print(poll_report)
    preview_path = pipeline.preview_digest(settings, data_dir / "digest-preview.html", None)
    delivery = pipeline.build_and_send_digests(settings, send=True, only=None)
    print(delivery)
    messages = sorted(settings.maildir_path.glob("new/*")) + sorted(
        settings.maildir_path.glob("cur/*")
    )
    if not messages:
        print("no digest was delivered: nothing relevant was found")
        return 1
    message = message_from_bytes(messages[-1].read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    print(f"digest delivered to the Maildir: {messages[-1].resolve()}")
    print(f"subject: {str(message['Subject']).strip()}")
    print(f"HTML preview: {preview_path.resolve()}")
    picture = screenshot(preview_path, data_dir / "digest-preview.png")
    if picture is not None:
        print(f"screenshot: {picture.resolve()}")
    code = check_digest(message, [item.slug for item in corpus_items(corpus)])
    print_review_page(settings, config_path, data_dir, bool(base.database_url))
    return code


DEMO_USER, DEMO_PASSWORD = "demo", "demo-password"


def print_review_page(
    settings: Settings, config_path: Path | None, data_dir: Path, user_database: bool
) -> None:
    """Make the demo account (the digest's recipient) and say how to open the review site."""
    from chipwatch.digest import DEFAULT_RECIPIENT
    from chipwatch.web.users import add_account

    add_account(settings, DEMO_USER, DEMO_PASSWORD, DEFAULT_RECIPIENT.address)
    config = f" --config {config_path}" if config_path else ""
    # The samples are dated: the site's window (the digest's lookback) must reach them.
    window = f"CHIPWATCH_DIGEST_LOOKBACK_DAYS={settings.digest.lookback_days}"
    if user_database:  # an empty variable outranks the file: serve reads the demo's SQLite
        window = f"CHIPWATCH_DATABASE_URL= {window}"
    print(
        f"review site: {window} chipwatch{config} --data-dir {data_dir} serve "
        f"(or `make serve-demo`), then open {settings.web.public_url} and log in as "
        f"{DEMO_USER} / {DEMO_PASSWORD}"
    )


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def screenshot(html_path: Path, png_path: Path, width: int = 1024) -> Path | None:
    """A picture of the preview, where a headless chromium is installed; None otherwise."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return None
    with tempfile.TemporaryDirectory() as profile:
        command = [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},2600",
            f"--screenshot={png_path.resolve()}",
            html_path.resolve().as_uri(),
        ]
        try:
            subprocess.run(command, capture_output=True, timeout=60, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
    return png_path if png_path.is_file() else None


def check_digest(message: EmailMessage, corpus_slugs: list[str]) -> int:
    """Print whether every relevant sample is in the digest and no off-subject one is.

    Items are recognised by their links, which the digest keeps for every article of a
    story (lead and "also in").
    """
    body = message.get_body(preferencelist=("html",))
    html = str(body.get_content()) if body is not None else ""
    samples = [*ENGLISH_WIRE, *FRENCH_GENERAL]
    titles = {s.slug: s.title for s in samples} | {slug: f"corpus {slug}" for slug in corpus_slugs}
    wanted = corpus_slugs + [s.slug for s in samples if s.relevant]
    unwanted = [s.slug for s in samples if not s.relevant]
    missing = [slug for slug in wanted if f"/articles/{slug}" not in html]
    intruders = [slug for slug in unwanted if f"/articles/{slug}" in html]
    print(
        f"check: {len(wanted) - len(missing)}/{len(wanted)} relevant samples in the digest, "
        f"{len(intruders)}/{len(unwanted)} off-subject samples in it"
    )
    for slug in missing:
        print(f"  missing: {titles[slug]}")
    for slug in intruders:
        print(f"  should not be there: {titles[slug]}")
    return 0
