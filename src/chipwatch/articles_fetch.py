"""New articles -> the same articles with the publisher's text, where the feed gave little.

Runs in the poll between the parse workers and the writer (`collect.collect_one`), on
each feed's new articles:

1. news-search links are resolved to the publisher's URL, outlet and title
   (`chipwatch.resolve`);
2. for a source whose `article_text` is "fetch" (the default of news-search sources),
   each article whose feed text (beyond its title) is shorter than
   `[articles] fetch_below_chars` and that is not stored yet gets its page fetched,
   extracted and judged in a parse worker (`chipwatch.pagetext`); an article page that
   is a consent wall, a paywall, an error or too short keeps the feed's text;
3. every article leaves with its `text_kind`: FULL for a page's text, else the kind of
   the feed's text (`TextKind.guess`).

Limits, beyond the guards every fetch has (private addresses refused, body cap,
deadline, redirects checked hop by hop: the same `Fetcher`):
- politeness: page requests have their own per-host limits (`[articles]
  per_host_concurrency`, `per_host_delay_seconds`): a news search points at many
  publishers, each of which sees at most that many requests at once from us;
- a per-cycle budget (`max_per_cycle`, all sources together): articles beyond it are
  not stored in this cycle; the next poll finds them again (still not stored) and
  fetches them then, so one query of 100 items never means 100 page fetches at once;
- once only: a page being fetched for one feed is shared with any other feed of the
  same poll that found it, an article stored already is not fetched again, and every
  verdict is kept (`store/pages.py`) for `cache_days`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from chipwatch.dedupe import content_hash
from chipwatch.errors import FeedError, FeedErrorKind, feed_error
from chipwatch.extract import canonical_url, detect_language
from chipwatch.fetch import Fetcher
from chipwatch.pagetext import PageReading, PageVerdict, read_page
from chipwatch.resolve import HTML_ACCEPT, Resolver, article_text_mode
from chipwatch.settings import FetchSettings, Settings
from chipwatch.store.articles import filter_new
from chipwatch.store.pages import (
    LINK,
    PAGE,
    FetchedPage,
    forget_older_than,
    known_pages,
    remember_pages,
)
from chipwatch.types import Article, Source, TextKind

# Runs `fn(session, *args)` in the poll's writer thread, in one transaction.
DbCall = Callable[..., Awaitable[Any]]
# Runs a picklable job in the poll's parse pool.
PoolCall = Callable[..., Awaitable[Any]]
_HTML_TYPES = ("text/html", "application/xhtml+xml", "")


@dataclass
class ArticleStats:
    """What the stage did in one poll (the bench and the poll log read it)."""

    fetched: int = 0  # page requests made
    full_text: int = 0  # articles stored with the page's text
    kept_feed_text: int = 0  # pages that were walls, errors or too short
    from_cache: int = 0  # verdicts taken from the fetched-pages table
    deferred: int = 0  # articles left for the next cycle (budget spent)
    unresolved: int = 0  # news-search links still redirects (kept with the feed's text)


def page_fetch_settings(settings: Settings) -> FetchSettings:
    """The feed fetcher's guards and caps, with the article pages' politeness."""
    articles = settings.articles
    return replace(
        settings.fetch,
        per_host_concurrency=articles.per_host_concurrency,
        per_host_delay_seconds=articles.per_host_delay_seconds,
        deadline_seconds=min(settings.fetch.deadline_seconds, articles.deadline_seconds),
    )


def feed_body_chars(article: Article) -> int:
    """Characters of the feed's text beyond the title (what `TextKind.guess` measures)."""
    body = article.text.strip()
    title = article.title.strip()
    if body.startswith(title):
        body = body[len(title) :].strip()
    return len(body)


def with_feed_kind(article: Article) -> Article:
    if article.text_kind is not None:
        return article
    return replace(article, text_kind=TextKind.guess(article.title, article.text))


_LINK_FAULTS = frozenset({FeedErrorKind.INVALID_URL, FeedErrorKind.UNSAFE})


class ArticleStage:
    """One poll's article fetching. Use as an async context manager (it owns the page
    fetcher)."""

    def __init__(
        self,
        settings: Settings,
        feed_fetcher: Fetcher,
        run_job: PoolCall,
        db: DbCall,
        now: datetime,
        page_fetcher: Fetcher | None = None,
        prune: bool = True,
    ) -> None:
        self._settings = settings
        self._prune = prune  # False: this process pruned the cache for `now` already
        self._run_job = run_job
        self._db = db
        self._now = now
        self._since = now - timedelta(days=settings.articles.cache_days)
        self._pages = page_fetcher or Fetcher(page_fetch_settings(settings))
        self._own_pages = page_fetcher is None  # a worker's shared one outlives the stage
        self._budget = settings.articles.max_per_cycle
        self._inflight: dict[str, asyncio.Future[PageReading]] = {}
        self._resolver = Resolver(
            settings.news_search, feed_fetcher, self._known_links, self._remember_links
        )
        self._deferred: set[int] = set()  # sources with articles left for a later cycle
        self._bad_links: dict[str, FeedError] = {}  # page URL -> why it must not be fetched
        self._link_faults: dict[int, FeedError] = {}  # source id -> its first such link
        self.stats = ArticleStats()

    async def __aenter__(self) -> ArticleStage:
        # The cache's lifetime: what is older than cache_days would be fetched again anyway.
        if self._prune:
            await self._db(forget_older_than, self._since)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._own_pages:
            await self._pages.__aexit__(*exc)

    async def complete(self, source: Source, articles: Sequence[Article]) -> list[Article]:
        """The articles to store now, resolved, with page text where it was wanted."""
        if not articles:
            return []
        try:
            return await self._complete(source, articles)
        except Exception as exc:  # noqa: BLE001 - the stage only adds to articles; it never loses them
            # Reported as the feed's error (a broken install shows at once), articles kept.
            error = feed_error(exc, source.url)
            self._link_faults.setdefault(
                source.id, replace(error, message=f"full text: {error.message}")
            )
            return [with_feed_kind(a) for a in articles]

    async def _complete(self, source: Source, articles: Sequence[Article]) -> list[Article]:
        # In chunks of one decoder batch, side by side: the pages of the first chunk are
        # fetched while the next chunk's links are decoded (the fetchers' limits still
        # bound the requests). The order of the articles is kept.
        size = self._settings.news_search.resolve_batch_size
        chunks = [articles[i : i + size] for i in range(0, len(articles), size)]
        parts = await asyncio.gather(*(self._complete_chunk(source, c) for c in chunks))
        return [article for part in parts for article in part]

    async def _complete_chunk(self, source: Source, articles: Sequence[Article]) -> list[Article]:
        resolved = await self._resolver.resolve(source, articles)
        self.stats.unresolved += sum(r.pending for r in resolved)
        ready = [r.article for r in resolved]
        wanted = article_text_mode(source, self._settings.news_search) == "fetch"
        limit = self._settings.articles.fetch_below_chars
        todo = [
            a
            for a, r in zip(ready, resolved, strict=True)
            if wanted and not r.pending and a.url and feed_body_chars(a) < limit
        ]
        if not todo:
            return [with_feed_kind(a) for a in ready]
        fresh = {a.identity for a in await self._db(_unstored, todo)}
        texts = await self._page_texts(source, [a for a in todo if a.identity in fresh])
        stored = {a.identity for a in todo} - fresh  # found stored: the writer drops them
        out: list[Article] = []
        for article in ready:
            if article.identity in stored:
                continue
            if article.identity in texts:
                reading = texts[article.identity]
                if reading is None:
                    self.stats.deferred += 1
                    self._deferred.add(source.id)
                    continue  # over budget: not stored now, fetched in a later cycle
                article = self._with_reading(article, reading, source.language)
            out.append(with_feed_kind(article))
        return out

    def link_fault(self, source_id: int) -> FeedError | None:
        """The error of an entry link of the source that is invalid or unsafe: the feed's
        doing, so reported as the feed's error (a page that is merely missing is not)."""
        return self._link_faults.get(source_id)

    def deferred(self, source_id: int) -> bool:
        """Whether some of the source's articles were left for a later cycle: its feed must
        then be fetched whole next time (no conditional GET), or a 304 would hide them."""
        return source_id in self._deferred

    def _with_reading(self, article: Article, reading: PageReading, hint: str) -> Article:
        if reading.verdict is not PageVerdict.ARTICLE or not reading.text:
            self.stats.kept_feed_text += 1
            return article
        self.stats.full_text += 1
        url = canonical_url(reading.final_url) or article.url  # after the publisher's moves
        text = reading.text[: self._settings.fetch.max_entry_chars]
        language = reading.language or detect_language(text, hint)  # a cached text has none
        return replace(
            article,
            url=url,
            text=text,
            language=language,
            content_hash=content_hash(article.title, text),
            text_kind=TextKind.FULL,
        )

    async def _page_texts(
        self, source: Source, todo: Sequence[Article]
    ) -> dict[str, PageReading | None]:
        """identity -> the page's reading (None: over budget, left for later)."""
        urls = [a.url for a in todo if a.url]
        cached = await self._db(known_pages, PAGE, urls, self._since) if urls else {}
        result: dict[str, PageReading | None] = {}
        waits: dict[str, Awaitable[PageReading]] = {}
        for article in todo:
            url = article.url or ""
            if url in cached:
                self.stats.from_cache += 1
                result[article.identity] = _reading(cached[url])
            elif url in self._inflight:
                waits[article.identity] = self._inflight[url]
            elif self._budget > 0:
                self._budget -= 1
                future = asyncio.ensure_future(self._read(url, source.language))
                self._inflight[url] = future
                waits[article.identity] = future
            else:
                result[article.identity] = None
        readings = await asyncio.gather(*waits.values())
        result.update(zip(waits, readings, strict=True))
        for article in todo:
            error = self._bad_links.get(article.url or "")
            if error is not None and source.id not in self._link_faults:
                message = f"full text: entry link {article.url!r}: {error.message}"
                self._link_faults[source.id] = replace(error, message=message)
        return result

    async def _read(self, url: str, hint: str) -> PageReading:
        self.stats.fetched += 1
        page = await self._pages.fetch_url(url, accept=HTML_ACCEPT)
        if page.error:
            if page.error.kind in _LINK_FAULTS:
                self._bad_links[url] = page.error
            return PageReading(PageVerdict.ERROR)  # not remembered: tried again if it comes back
        try:
            reading = await self._extract(page.content, page.content_type, page.final_url, hint)
        except BrokenProcessPool:
            return PageReading(PageVerdict.ERROR)  # the worker died on this page
        reading = replace(reading, final_url=page.final_url)
        record = FetchedPage(
            PAGE, url, page.final_url, str(reading.verdict), reading.text, self._now
        )
        await self._db(remember_pages, [record])
        return reading

    async def _extract(self, content: bytes, content_type: str, url: str, hint: str) -> PageReading:
        mime = content_type.split(";", 1)[0].strip().lower()
        if mime not in _HTML_TYPES or not content:
            return PageReading(PageVerdict.SHORT)  # a PDF, an image: no article text here
        reading: PageReading = await self._run_job(
            read_page,
            content,
            url,
            hint,
            self._settings.fetch.parse_timeout_seconds,
            self._settings.articles.min_text_chars,
        )
        return reading

    async def _known_links(self, links: Sequence[str]) -> Mapping[str, str]:
        pages: dict[str, FetchedPage] = await self._db(known_pages, LINK, links, self._since)
        return {url: page.target_url for url, page in pages.items() if page.target_url}

    async def _remember_links(self, found: Mapping[str, str]) -> None:
        records = [
            FetchedPage(LINK, link, url, "resolved", None, self._now) for link, url in found.items()
        ]
        await self._db(remember_pages, records)


def _unstored(session: Session, articles: Sequence[Article]) -> list[Article]:
    return filter_new(session, articles)


def _reading(page: FetchedPage) -> PageReading:
    try:
        verdict = PageVerdict(page.verdict)
    except ValueError:
        verdict = PageVerdict.SHORT
    text = page.text if verdict is PageVerdict.ARTICLE else None
    return PageReading(verdict, text, final_url=page.target_url)
