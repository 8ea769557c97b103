"""What runs in the parse workers: one feed document -> the Articles not stored yet.

The collector (chipwatch.collect) sends each fetched body here through its process pool.
This module is also what the pool's forkserver preloads, so it imports only what parsing
and extraction need (no HTTP client, no SQLAlchemy): every worker of every poll pays for
each import.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from chipwatch.dedupe import HASH_IDENTITY_PREFIX, lookup_keys
from chipwatch.errors import FeedError, feed_error
from chipwatch.extract import (
    article_language,
    entry_key,
    to_article,
)
from chipwatch.parse import NotAFeed, parse_feed, time_limit
from chipwatch.store.lookup import StoreLookup
from chipwatch.types import Article, FeedEntry, Source


@dataclass(frozen=True)
class DocumentJob:
    source: Source
    content: bytes
    content_type: str
    base_url: str
    fetched_at: datetime
    max_entries: int
    max_entry_chars: int
    time_limit_seconds: float
    # The SQLite file or PostgreSQL URL to ask which entries are stored already (None: no
    # such shortcut, every entry is extracted and the writer's check alone decides).
    store_path: str | None = None


@dataclass(frozen=True)
class DocumentResult:
    articles: tuple[Article, ...] = ()  # the entries not stored yet, ready to store
    entries: int = 0  # all the entries the document has
    title: str | None = None
    site_url: str | None = None
    ttl_minutes: int | None = None
    entries_per_week: float | None = None
    error: FeedError | None = None
    alternates: tuple[str, ...] = ()


def init_worker(owner_pid: int) -> None:
    """Each parse worker's start (the pool's initializer; `owner_pid` made the pool).

    - SIGINT is ignored: Ctrl-C reaches the terminal's whole process group, and a worker
      dying of it would break the pool under the feeds being parsed; the owner decides
      what a stop means (`chipwatch.stop`).
    - The worker ends when its owner does. After a `kill -9` of chipwatch nothing else
      would end it: it waits on its queue for ever, holding its database connection, and
      keeps the forkserver alive too (each worker holds the forkserver's liveness pipe).
      Its parent is the forkserver, not the owner, so PR_SET_PDEATHSIG would not fire."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch = threading.Thread(target=_exit_with, args=(owner_pid,), daemon=True)
    watch.start()


def _exit_with(pid: int) -> None:
    """Wait for process `pid` to end, then end this process."""
    try:
        handle = os.pidfd_open(pid)  # Linux 5.3+: readable once the process has ended
    except ProcessLookupError:
        os._exit(1)  # it ended before we looked
    except (AttributeError, OSError):  # no pidfd here: look once a second
        while _alive(pid):
            time.sleep(1.0)
        os._exit(1)
    select.select([handle], [], [])
    os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's: alive
        return True
    return True


def process_document(job: DocumentJob) -> DocumentResult:
    """Parse one feed document and turn its entries into Articles (in a worker)."""
    try:
        return _process_document(job)
    finally:
        if len(job.content) >= _TRIM_AFTER_BYTES:
            _release_memory()


_TRIM_AFTER_BYTES = 512 * 1024


def _release_memory() -> None:
    """Give the heap freed by a big document back to the OS (glibc keeps it otherwise,
    and each worker's RSS would stay at the size of the largest tree it ever built)."""
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            _MALLOC_TRIM = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if _MALLOC_TRIM:
        _MALLOC_TRIM(0)


_MALLOC_TRIM: Any = None


def _process_document(job: DocumentJob) -> DocumentResult:
    try:
        with time_limit(job.time_limit_seconds, job.base_url):
            parsed = parse_feed(
                job.content,
                job.base_url,
                job.content_type,
                max_entries=job.max_entries,
                max_entry_chars=job.max_entry_chars,
            )
            articles = _unstored_articles(parsed.entries, job)
    except NotAFeed as exc:
        return DocumentResult(error=feed_error(exc, job.base_url), alternates=exc.alternates)
    except Exception as exc:  # noqa: BLE001 - a parse error, or a broken install (internal)
        return DocumentResult(error=feed_error(exc, job.base_url))
    return DocumentResult(
        articles=articles,
        entries=len(parsed.entries),
        title=parsed.title or None,
        site_url=parsed.site_url,
        ttl_minutes=parsed.ttl_minutes,
        entries_per_week=entries_per_week(parsed.entries, job.fetched_at),
    )


def _unstored_articles(entries: Sequence[FeedEntry], job: DocumentJob) -> tuple[Article, ...]:
    """Articles for the entries not stored yet, language included.

    Most entries of a changed feed are stored already: the GUID/URL check comes before
    the content hash, and both before language detection, the costliest step."""
    source, base = job.source, job.base_url
    # An entry with no title, no text and no usable link has nothing to read or show (a
    # JSON item {"id": null} was stored as an empty article).
    keyed = ((entry, entry_key(entry, source, base)) for entry in entries)
    pairs = [(e, k) for e, k in keyed if k.url or e.title.strip() or e.summary.strip()]
    lookup = _store_lookup(job.store_path)
    if lookup is not None and pairs:
        identities, urls, _ = lookup.present(
            (k.identity for _, k in pairs if k.identity), (k.url for _, k in pairs)
        )
        pairs = [
            (entry, key)
            for entry, key in pairs
            if key.identity not in identities and not (key.url and key.url in urls)
        ]
    articles = [
        to_article(entry, source, job.fetched_at, base, language=False, key=key)
        for entry, key in pairs
    ]
    if lookup is not None and articles:
        articles = _without_stored_content(articles, lookup)
    return tuple(
        replace(a, language=article_language(a.title, a.text, source.language)) for a in articles
    )


def _without_stored_content(articles: list[Article], lookup: StoreLookup) -> list[Article]:
    keys = [lookup_keys(a) for a in articles]
    identities, _, hashes = lookup.present(
        (identity for identity, _, _ in keys if identity.startswith(HASH_IDENTITY_PREFIX)),
        hashes=(digest for _, _, digest in keys),
    )
    return [
        article
        for article, (identity, _, digest) in zip(articles, keys, strict=True)
        if identity not in identities and not (digest and digest in hashes)
    ]


_LOOKUPS: dict[str, StoreLookup] = {}  # per worker process: one read-only connection


def _store_lookup(path: str | None) -> StoreLookup | None:
    if path is None:
        return None
    if path not in _LOOKUPS:
        _LOOKUPS[path] = StoreLookup(path)
    return _LOOKUPS[path]


def entries_per_week(entries: Sequence[Any], now: datetime) -> float | None:
    """Entries published in the last 7 days; None when no entry is dated."""
    dates = [e.published for e in entries if e.published is not None]
    if not dates:
        return None
    week_ago = now - timedelta(days=7)
    return float(sum(1 for d in dates if week_ago <= d <= now + timedelta(days=1)))
