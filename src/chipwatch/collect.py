"""The poll pipeline: due sources -> fetch -> parse + extract -> store.

    report = poll_sync(settings, session_factory)          # or: await poll(...)
    report.new_article_ids                                 # for the classifier

Stages, and where each runs:
- fetch: asyncio + httpx in the event loop (I/O bound), limited globally and per host;
- parse + extract: a process pool (CPU bound; `chipwatch.worker`), one call per feed,
  with a time limit enforced inside the worker; fastfeedparser where proven equal, else
  feedparser; the worker asks the store (read-only: the SQLite file, or PostgreSQL over
  one psycopg connection per worker) which entries are stored already, and converts,
  hashes and detects the language of the others only;
- store: one single-thread executor, so SQLite sees exactly one writer; feeds finishing
  within `WRITE_GATHER_SECONDS` share one transaction and one dedupe check, and a failed
  batch is retried feed by feed, so a failure on one feed never loses another's articles.
Every per-feed failure becomes a FeedReport with `error` (an errors.FeedError): whatever
raises inside one feed's handling, be it a URL httpx cannot parse or a broken import in a
worker, is that feed's error (`errors.feed_error`), stored with it; nothing stops the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from chipwatch.articles_fetch import ArticleStage, ArticleStats
from chipwatch.errors import (
    FeedError,
    FetchError,
    ParseError,
    StorageError,
    feed_error,
)
from chipwatch.fetch import Fetcher, utcnow
from chipwatch.parse import NotAFeed, parse_feed
from chipwatch.settings import FetchSettings, Settings
from chipwatch.stop import StopRequest
from chipwatch.store.articles import filter_new_many, insert_articles
from chipwatch.store.dialect import lookup_target
from chipwatch.store.sources import FetchOutcome, due_sources, record_outcomes
from chipwatch.types import Article, FetchResult, Source
from chipwatch.urls import check_url
from chipwatch.worker import DocumentJob, DocumentResult, init_worker, process_document

log = logging.getLogger(__name__)

SessionFactory = Callable[[], Session]
T = TypeVar("T")
# The writer waits this long before each transaction, so that the feeds finishing
# meanwhile share it: the cold bench went from ~650 commits to ~120 and the writer
# thread's CPU halved (1.75 -> 0.85 s); a poll is a batch job, 50 ms cost it nothing.
WRITE_GATHER_SECONDS = 0.05


# --- reports -----------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedReport:
    """One feed's poll: the outcome as stored (no copy of its fields) and the counts."""

    source_id: int
    url: str
    status: str  # new | unchanged | not-modified | error | gone
    outcome: FetchOutcome
    new_articles: int = 0
    entries: int = 0
    seconds: float = 0.0

    @property
    def error(self) -> FeedError | None:
        return self.outcome.error

    @property
    def http_status(self) -> int | None:
        return self.outcome.status

    @property
    def moved_to(self) -> str | None:
        return self.outcome.permanent_redirect


@dataclass(frozen=True)
class PollReport:
    started_at: datetime
    finished_at: datetime
    feeds: tuple[FeedReport, ...] = ()
    new_article_ids: tuple[int, ...] = ()
    articles: ArticleStats = field(default_factory=ArticleStats)  # the page stage's counts
    stopped: int = 0  # feeds dropped unread by a stop (not in `feeds`: they stay due)

    @property
    def feeds_polled(self) -> int:
        return len(self.feeds)

    @property
    def feeds_failed(self) -> int:
        return sum(1 for f in self.feeds if f.error)

    @property
    def all_failed(self) -> bool:
        return bool(self.feeds) and self.feeds_failed == len(self.feeds)

    @property
    def feeds_not_modified(self) -> int:
        return sum(1 for f in self.feeds if f.status == "not-modified")

    @property
    def entries_seen(self) -> int:
        return sum(f.entries for f in self.feeds)

    @property
    def new_articles(self) -> int:
        return len(self.new_article_ids)

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds()


# --- the process pool --------------------------------------------------------------------


class ParsePool:
    """A process pool that survives a dead worker (rebuilt, the job retried once)."""

    def __init__(self, workers: int | None = None, executor: Executor | None = None) -> None:
        self._workers = workers or max(1, os.cpu_count() or 1)
        self._given = executor
        self._executor = executor or self._new()

    def _new(self) -> Executor:
        # forkserver: workers never inherit the event loop's or the server's threads.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["chipwatch.worker"])
        return ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=context,
            initializer=init_worker,
            initargs=(os.getpid(),),  # the workers end with this process (init_worker)
        )

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        for attempt in range(2):
            executor = self._executor
            try:
                return await loop.run_in_executor(executor, fn, *args)
            except BrokenProcessPool:
                if attempt or self._given is not None:
                    raise
                if executor is self._executor:  # first to notice rebuilds it
                    executor.shutdown(wait=False, cancel_futures=True)
                    self._executor = self._new()
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._given is None:
            self._executor.shutdown(wait=True, cancel_futures=True)


# --- the single writer -------------------------------------------------------------------


@dataclass(frozen=True)
class _Write:
    source: Source
    outcome: FetchOutcome
    articles: tuple[Article, ...]
    now: datetime
    future: asyncio.Future[list[int]]


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


class Writer:
    """All database work of a poll goes through one thread: SQLite has one writer."""

    def __init__(self, session_factory: SessionFactory, settings: Settings) -> None:
        self._sessions = session_factory
        self._poll = settings.poll
        self.gather_seconds = WRITE_GATHER_SECONDS  # 0 for one feed: nothing to gather
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chipwatch-writer")
        self._lock = threading.Lock()
        self._pending: list[_Write] = []
        self._flushing = False

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def in_session(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(session, *args)` in the writer thread, in one transaction."""
        return await self.call(self._in_session, fn, *args)

    def _in_session(self, fn: Callable[..., T], *args: Any) -> T:
        with self._sessions() as session, session.begin():
            return fn(session, *args)

    def load_due(
        self, now: datetime, all_feeds: bool, sources: Sequence[Source] | None = None
    ) -> tuple[list[Source], str | None]:
        """The due sources (or `sources`, loaded by the caller: no query), and the
        database the parse workers may read (if any)."""
        with self._sessions() as session:
            if sources is not None:
                return list(sources), _lookup_target(session)
            return due_sources(session, now, all_feeds=all_feeds), _lookup_target(session)

    async def store(
        self, source: Source, outcome: FetchOutcome, articles: Sequence[Article], now: datetime
    ) -> list[int]:
        """Queue one feed's write; feeds finishing together share one transaction (one
        fsync instead of one per feed), which is most of a warm cycle's time otherwise."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[int]] = loop.create_future()
        with self._lock:
            self._pending.append(_Write(source, outcome, tuple(articles), now, future))
            start, self._flushing = not self._flushing, True
        if start:
            loop.run_in_executor(self._thread, self._flush, loop)
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            time.sleep(self.gather_seconds)  # see WRITE_GATHER_SECONDS
            with self._lock:
                batch, self._pending = self._pending, []
                if not batch:
                    self._flushing = False
                    return
            self._flush_writes(loop, batch)

    def _flush_writes(self, loop: asyncio.AbstractEventLoop, batch: list[_Write]) -> None:
        try:
            results = self._write_batch(batch)
        except StorageError as exc:  # the same for every feed of the batch: no retries
            results = [exc] * len(batch)
        except Exception:
            # One bad write must not sink the batch: retry each feed on its own.
            results = [self._write_one_safely(item) for item in batch]
        for item, result in zip(batch, results, strict=True):
            loop.call_soon_threadsafe(_settle, item.future, result)

    def _write_batch(self, batch: Sequence[_Write]) -> list[list[int] | BaseException]:
        with self._sessions() as session, session.begin():
            names = self._record(session, batch)
            # One dedupe for the whole batch (3 queries instead of 3 per feed), each feed
            # also checked against the feeds before it, as inserting one by one would.
            fresh = filter_new_many(
                session,
                [
                    item.articles if name is not None else ()
                    for item, name in zip(batch, names, strict=True)
                ],
                in_order=True,
            )
            return [
                insert_articles(session, kept, source_id=item.source.id, source_name=name)
                if name is not None
                else []
                for item, name, kept in zip(batch, names, fresh, strict=True)
            ]

    def _write_one_safely(self, item: _Write) -> list[int] | BaseException:
        try:
            return self._write_batch([item])[0]
        except Exception as exc:  # settled on the feed's own future, re-raised there
            return exc

    def _record(self, session: Session, batch: Sequence[_Write]) -> list[str | None]:
        """Record the feeds' outcomes (one SELECT and one UPDATE per set of changed
        columns for the batch); each feed's source name, or None if the source is gone."""
        outcomes = [(item.source.id, item.outcome, item.now) for item in batch]
        return record_outcomes(session, outcomes, self._poll)

    def close(self) -> None:
        self._thread.shutdown(wait=True)


def _lookup_target(session: Session) -> str | None:
    return lookup_target(session.get_bind().engine)


# --- one feed ----------------------------------------------------------------------------


@dataclass
class _Context:
    settings: Settings
    fetcher: Fetcher
    pool: ParsePool
    writer: Writer
    now: datetime
    backlog: asyncio.Semaphore
    store_path: str | None = None
    articles: ArticleStage | None = None  # resolves links, fetches pages (articles_fetch)
    stopped: asyncio.Future[None] | None = None  # done once a stop is requested
    new_ids: list[int] = field(default_factory=list)


async def collect_one(source: Source, ctx: _Context) -> FeedReport | None:
    """Fetch, parse, extract and store one feed; never raises: anything that goes wrong
    is this feed's error, recorded with it (and counted towards disabling it).
    None if a stop (`ctx.stopped`) cut its fetch or its pages short: nothing of the
    feed is recorded, so it stays due and the next poll reads it whole."""
    read = await _read(source, ctx)
    if read is None:
        return None
    fetched, result, outcome, articles = read
    try:
        ids = await ctx.writer.store(source, outcome, articles, ctx.now)
    except StorageError:
        raise  # a full disk or a damaged file is no feed's error
    except Exception as exc:  # noqa: BLE001 - the other feeds' writes go on
        outcome = _failed_outcome(fetched, feed_error(exc, source.url))
        ids = []
        await _record_failure(source, outcome, ctx)
    ctx.new_ids.extend(ids)
    return _report(source, fetched, result, outcome, len(ids))


async def _record_failure(source: Source, outcome: FetchOutcome, ctx: _Context) -> None:
    """The feed's error alone, where storing its articles failed (the transaction that
    would have recorded it was rolled back): counted and shown like any other error."""
    try:
        await ctx.writer.store(source, outcome, (), ctx.now)
    except StorageError:
        raise
    except Exception:  # noqa: BLE001 - the report still carries the error
        log.warning("%s: the feed's error could not be recorded either", source.url)


_Read = tuple[FetchResult, DocumentResult | None, FetchOutcome, Sequence[Article]]


async def _read(source: Source, ctx: _Context) -> _Read | None:
    """Fetch, parse and extract one feed: what to store (or the feed's error), or None
    if stopped. A stop cuts the network waits short (the feed's fetch, its article
    pages); a body already fetched is still parsed (bounded by the parse time limit)."""
    fetched = FetchResult(source_url=source.url, final_url=source.url, status=None)
    result: DocumentResult | None = None
    articles: Sequence[Article] = ()
    try:
        async with ctx.backlog:  # bounds bodies fetched but not yet parsed (memory)
            got = await _unless_stopped(ctx.fetcher.fetch(source), ctx.stopped)
            if got is None:
                return None
            result, fetched = await _parse(source, got, ctx)
            if fetched.content:
                fetched = replace(fetched, content=b"")  # the body is parsed: free it now
        outcome = _outcome(fetched, result)
        if result is not None and outcome.ok and result.articles:
            completed = await _unless_stopped(
                _new_articles(source, result.articles, ctx), ctx.stopped
            )
            if completed is None:
                return None
            articles = completed
            outcome = _after_pages(source, fetched, outcome, ctx)
    except StorageError:
        raise  # the database, not this feed: the whole poll stops (exit 5)
    except Exception as exc:  # noqa: BLE001 - see collect_one
        outcome = _failed_outcome(fetched, feed_error(exc, source.url))
    return fetched, result, outcome, articles


async def _unless_stopped(work: Awaitable[T], stopped: asyncio.Future[None] | None) -> T | None:
    """`work`'s result, or None if `stopped` completes first; `work` is then cancelled.
    Work that needs no real wait still completes: its first step runs before the check."""
    if stopped is None:
        return await work
    task = asyncio.ensure_future(work)
    await asyncio.wait((task, stopped), return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


async def _new_articles(
    source: Source, articles: Sequence[Article], ctx: _Context
) -> Sequence[Article]:
    """The worker's new articles: resolved, with page text where the source wants it."""
    if articles and ctx.articles is not None:
        return await ctx.articles.complete(source, articles)
    return articles


async def _parse(
    source: Source, fetched: FetchResult, ctx: _Context
) -> tuple[DocumentResult | None, FetchResult]:
    if fetched.error or fetched.not_modified:
        return None, fetched
    result = await _run_document(source, fetched, ctx)
    if result.alternates and fetched.final_url not in result.alternates:
        # The URL is a web page advertising its feed: follow it once and remember it.
        # The advertised URL is the page's word: fetch_url checks it like any other.
        alternate = await ctx.fetcher.fetch_url(result.alternates[0])
        if alternate.error is not None:
            advertised = result.alternates[0]
            message = f"the feed the page advertises ({advertised}) failed: {alternate.error}"
            return result, replace(fetched, error=replace(alternate.error, message=message))
        if not alternate.not_modified:
            found = await _run_document(source, alternate, ctx)
            if found.error is None:
                moved = alternate.permanent_redirect or alternate.final_url
                return found, replace(alternate, permanent_redirect=moved, source_url=source.url)
    return result, fetched


async def _run_document(source: Source, fetched: FetchResult, ctx: _Context) -> DocumentResult:
    fetch = ctx.settings.fetch
    job = DocumentJob(
        source=source,
        content=fetched.content,
        content_type=fetched.content_type,
        base_url=fetched.final_url,
        fetched_at=fetched.fetched_at or ctx.now,
        max_entries=fetch.max_entries_per_feed,
        max_entry_chars=fetch.max_entry_chars,
        time_limit_seconds=fetch.parse_timeout_seconds,
        store_path=ctx.store_path,
    )
    try:
        return await ctx.pool.run(process_document, job)
    except BrokenProcessPool:
        # Most likely the document's doing (a parser crash, memory): a parse error.
        return DocumentResult(error=feed_error(ParseError(source.url, _DIED), source.url))
    except Exception as exc:  # noqa: BLE001 - e.g. an import failing in the worker
        return DocumentResult(error=feed_error(exc, source.url))


_DIED = "the parser process died on this feed"


def _after_pages(
    source: Source, fetched: FetchResult, outcome: FetchOutcome, ctx: _Context
) -> FetchOutcome:
    """The feed's outcome once its article pages were read: an entry link that cannot or
    must not be fetched is the feed's fault (its entries are kept with their summaries)."""
    if ctx.articles is None:
        return outcome
    fault = ctx.articles.link_fault(source.id)
    if fault is not None:
        return _failed_outcome(fetched, fault)
    if ctx.articles.deferred(source.id):
        # Articles wait for the next cycle's budget: no validators, so no 304 hides them.
        return replace(outcome, etag=None, last_modified=None)
    return outcome


def _failed_outcome(fetched: FetchResult, error: FeedError) -> FetchOutcome:
    return FetchOutcome(
        ok=False,
        error=error,
        status=fetched.status,
        retry_after_seconds=fetched.retry_after_seconds,
        max_age_seconds=fetched.max_age_seconds,
    )


def _outcome(fetched: FetchResult, result: DocumentResult | None) -> FetchOutcome:
    error = fetched.error or (result.error if result is not None else None)
    common: dict[str, Any] = {
        "status": fetched.status,
        "permanent_redirect": fetched.permanent_redirect,
        "retry_after_seconds": fetched.retry_after_seconds,
        "max_age_seconds": fetched.max_age_seconds,
    }
    if error:
        return FetchOutcome(ok=False, error=error, gone=fetched.gone, **common)
    return FetchOutcome(
        ok=True,
        etag=fetched.etag,
        last_modified=fetched.last_modified,
        not_modified=fetched.not_modified,
        ttl_minutes=result.ttl_minutes if result else None,
        entries_per_week=result.entries_per_week if result else None,
        title=result.title if result else None,
        site_url=result.site_url if result else None,
        **common,
    )


def _report(
    source: Source,
    fetched: FetchResult,
    result: DocumentResult | None,
    outcome: FetchOutcome,
    new: int,
) -> FeedReport:
    if outcome.gone:
        status = "gone"
    elif not outcome.ok:
        status = "error"
    elif outcome.not_modified:
        status = "not-modified"
    else:
        status = "new" if new else "unchanged"
    return FeedReport(
        source_id=source.id,
        url=source.url,
        status=status,
        outcome=outcome,
        new_articles=new,
        entries=result.entries if result else 0,
        seconds=fetched.elapsed_seconds,
    )


# --- the poll ----------------------------------------------------------------------------


def interleave_by_host(sources: Sequence[Source]) -> list[Source]:
    """Round-robin over hosts, so one big host does not hold every slot at the start."""
    by_host: dict[str, list[Source]] = defaultdict(list)
    for source in sources:
        by_host[(urlsplit(source.url).hostname or "").lower()].append(source)
    queues = list(by_host.values())
    ordered: list[Source] = []
    for i in range(max((len(q) for q in queues), default=0)):
        ordered.extend(q[i] for q in queues if i < len(q))
    return ordered


async def poll(
    settings: Settings,
    session_factory: SessionFactory,
    *,
    all_feeds: bool = False,
    now: datetime | None = None,
    pool: ParsePool | None = None,
    on_feed: Callable[[FeedReport, int], None] | None = None,
    sources: Sequence[Source] | None = None,
    fetchers: tuple[Fetcher, Fetcher] | None = None,
    prune_cache: bool = True,
    stop: StopRequest | None = None,
) -> PollReport:
    """Poll the due feeds (or every enabled feed, or `sources`) once and store what is
    new. `on_feed(report, feeds in this poll)` is called as each feed is done
    (progress). A worker's job passes its feed (loaded with its check), the worker's
    feed and page fetchers (kept open across its jobs, with the gate its workers share),
    and
    `prune_cache=False` when it pruned the page cache for `now` already. Once `stop` is
    requested, the feeds still being fetched or parsed are dropped (recorded nowhere,
    they stay due) and what was fetched before is stored; `PollReport.stopped` counts
    the dropped ones."""
    started = utcnow()
    now = now or started
    writer = Writer(session_factory, settings)
    own_pool = pool is None
    parse_pool = pool or ParsePool()
    stopped = asyncio.ensure_future(stop.wait()) if stop is not None else None
    try:
        due, store_path = await writer.call(writer.load_due, now, all_feeds, sources)
        if len(due) <= 1:
            writer.gather_seconds = 0.0
        sources = interleave_by_host(due)
        feed_fetcher, pages = fetchers or (Fetcher(settings.fetch), None)
        async with (
            _kept_open(feed_fetcher) if fetchers else feed_fetcher as fetcher,
            ArticleStage(
                settings,
                fetcher,
                parse_pool.run,
                writer.in_session,
                now,
                page_fetcher=pages,
                prune=prune_cache,
            ) as stage,
        ):
            ctx = _Context(
                settings, fetcher, parse_pool, writer, now, _backlog(settings.fetch), store_path
            )
            ctx.articles, ctx.stopped = stage, stopped
            reports = await asyncio.gather(
                *(_reported(collect_one(s, ctx), len(sources), on_feed) for s in sources)
            )
    finally:
        if stopped is not None:
            stopped.cancel()
        # Off the event loop: the writer's last gather pause (WRITE_GATHER_SECONDS) would
        # block it, and a worker's other feeds wait on that loop (bench-scale: 25 ms/feed).
        await asyncio.to_thread(writer.close)
        if own_pool:
            parse_pool.close()
    feeds = tuple(r for r in reports if r is not None)
    return PollReport(
        started_at=started,
        finished_at=utcnow(),
        feeds=feeds,
        new_article_ids=tuple(sorted(ctx.new_ids)),
        articles=stage.stats,
        stopped=len(reports) - len(feeds),
    )


@contextlib.asynccontextmanager
async def _kept_open(fetcher: Fetcher) -> AsyncIterator[Fetcher]:
    yield fetcher  # the caller's: it closes it


async def _reported(
    work: Awaitable[FeedReport | None],
    total: int,
    on_feed: Callable[[FeedReport, int], None] | None,
) -> FeedReport | None:
    report = await work
    if on_feed is not None and report is not None:
        on_feed(report, total)
    return report


def _backlog(fetch: FetchSettings) -> asyncio.Semaphore:
    # Bodies fetched but not parsed yet: one per request slot is enough to keep the
    # workers fed (parsing is the slower stage) and halves the bodies held at peak.
    return asyncio.Semaphore(max(4, fetch.concurrency))


def poll_sync(
    settings: Settings,
    session_factory: SessionFactory,
    *,
    all_feeds: bool = False,
    now: datetime | None = None,
    on_feed: Callable[[FeedReport, int], None] | None = None,
    stop: StopRequest | None = None,
) -> PollReport:
    """`poll` for synchronous callers (CLI, scheduler jobs)."""
    return asyncio.run(
        poll(settings, session_factory, all_feeds=all_feeds, now=now, on_feed=on_feed, stop=stop)
    )


async def discover_feed_url(url: str, fetch: FetchSettings) -> str:
    """The feed URL for a URL given by a user: itself if it is a feed, else the feed its
    page advertises. Raises ParseError (or FetchError) with a clear message otherwise."""
    async with Fetcher(fetch) as fetcher:
        fetched = await fetcher.fetch_url(url)
    if fetched.error:
        raise FetchError(url, fetched.error.message, status=fetched.status)
    try:
        parse_feed(fetched.content, fetched.final_url, fetched.content_type, max_entries=1)
    except NotAFeed as exc:
        if exc.alternates:
            return check_url(exc.alternates[0])  # the page's word: checked like the user's
        raise
    return fetched.permanent_redirect or url
