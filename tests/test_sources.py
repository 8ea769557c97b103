"""News-search sources end to end on loopback: Google News and Bing feeds in their real
formats, a fake Google decoder, publishers on their own loopback addresses, a consent
wall, a page that times out, two queries finding one article, a 100-item query under
the per-cycle budget, the cache, and the digest showing what was stored."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from newsserver import (
    GoogleNewsService,
    NewsItem,
    Site,
    article_page,
    article_paragraphs,
    bing_link,
    bing_news_rss,
    consent_page,
    google_news_rss,
    paywall_page,
)
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from chipwatch.collect import ParsePool, PollReport, poll
from chipwatch.settings import (
    ArticleSettings,
    FetchSettings,
    NewsSearchSettings,
    Settings,
)
from chipwatch.store.db import open_engine, session_factory
from chipwatch.store.models import ArticleRow, ClassificationRow, DigestRow, FetchedPageRow
from chipwatch.store.sources import add_source

NOW = datetime(2026, 12, 1, 10, 0, 0)


@pytest.fixture(scope="module")
def pool() -> Iterator[ParsePool]:
    parse_pool = ParsePool(workers=2)
    yield parse_pool
    parse_pool.close()


@pytest.fixture
def google() -> Iterator[GoogleNewsService]:
    with GoogleNewsService("127.0.0.1") as service:
        yield service


@pytest.fixture
def bing() -> Iterator[Site]:
    with Site("127.0.0.1") as service:
        yield service


@pytest.fixture
def publishers() -> Iterator[list[Site]]:
    sites = [Site(f"127.0.0.{i}", latency=(0.0, 0.02), seed=i) for i in (2, 3, 4)]
    for site in sites:
        site.__enter__()
    yield sites
    for site in sites:
        site.__exit__()


def make_settings(tmp_path: Path, google: Site, bing: Site, **articles: object) -> Settings:
    return Settings(
        config_path=tmp_path / "chipwatch.toml",
        config_dir=tmp_path,
        data_dir=tmp_path / "data",
        topics_path=tmp_path / "topics.toml",
        corpus_dir=tmp_path / "corpus",
        fetch=FetchSettings(allow_private_networks=True, deadline_seconds=5),
        articles=ArticleSettings(
            **{"per_host_delay_seconds": 0.0, "deadline_seconds": 1.0, **articles}  # type: ignore[arg-type]
        ),
        news_search=NewsSearchSettings(google_news_url=google.origin, bing_url=bing.origin),
    )


def sessions_for(settings: Settings) -> sessionmaker[Session]:
    return session_factory(open_engine(settings.database_path))


def add(sessions: sessionmaker[Session], url: str, name: str, article_text: str = "") -> int:
    with sessions.begin() as session:
        row, _ = add_source(session, url, name, "en", article_text)
        return row.id


def run(settings: Settings, sessions: sessionmaker[Session], pool: ParsePool) -> PollReport:
    return asyncio.run(poll(settings, sessions, all_feeds=True, now=NOW, pool=pool))


def stored(sessions: sessionmaker[Session]) -> list[ArticleRow]:
    with sessions() as session:
        return list(session.scalars(select(ArticleRow).order_by(ArticleRow.id)))


def publish(site: Site, path: str, title: str, topic: str) -> str:
    return site.page(path, article_page(title, article_paragraphs(topic)))


def test_google_news_items_become_publisher_articles(
    tmp_path: Path, google: GoogleNewsService, bing: Site, publishers: list[Site], pool: ParsePool
) -> None:
    one, two, three = publishers
    fab = publish(one, "/2026/12/01/fab-tools", "Fab tool rules widen", "fab tool licences")
    memory = publish(two, "/world/memory-rules", "Memory chip notice", "memory chip notices")
    moved = publish(three, "/tech/ascend", "Ascend parts listed", "the Ascend parts listing")
    consent = one.page("/2026/12/01/consent", consent_page("North Ledger"))
    paywall = two.page("/world/paywalled", paywall_page("Smuggling case"))
    # a real article, but after 3 s: past [articles] deadline_seconds = 1
    late = three.slow_page(
        "/tech/late", 3.0, article_page("Late story", article_paragraphs("a late story"))
    )
    items = [
        NewsItem("Fab tool rules widen", google.link_to(fab), "North Ledger"),
        # old-style id (URL inside it), with a tracking parameter canonicalisation drops
        NewsItem(
            "Memory chip notice",
            google.link_to(memory + "?utm_source=gnews", old_style=True),
            "Harbor Wire",
        ),
        NewsItem("Ascend parts listed", google.redirect_link(moved), "Tech Review"),
        NewsItem("Cookie wall story", google.link_to(consent), "North Ledger"),
        NewsItem("Smuggling case", google.link_to(paywall), "Harbor Wire"),
        NewsItem("Late story", google.link_to(late), "Tech Review"),
    ]
    feed = google.feed("/rss/search", google_news_rss(items))
    settings = make_settings(tmp_path, google, bing)
    sessions = sessions_for(settings)
    add(sessions, feed + "?q=chips+when:7d&hl=en-US&gl=US&ceid=US:en", "Google News: chips")

    report = run(settings, sessions, pool)

    rows = {row.title: row for row in stored(sessions)}
    assert set(rows) == {i.title for i in items}  # " - Outlet" stripped from every title
    article = rows["Fab tool rules widen"]
    assert article.url == fab and article.source_name == "North Ledger"
    assert article.text_kind == "full" and "fab tool licences" in article.text
    assert len(article.text) >= 500 and article.language == "en"
    assert rows["Memory chip notice"].url == memory  # utm_source dropped
    assert rows["Memory chip notice"].text_kind == "full"
    assert (
        rows["Ascend parts listed"].url == moved and rows["Ascend parts listed"].text_kind == "full"
    )
    for title in ("Cookie wall story", "Smuggling case", "Late story"):
        kept = rows[title]
        assert kept.text_kind == "headline", title  # the wall's words are not the article's
        assert "cookies" not in kept.text and "subscriber" not in kept.text
        assert kept.text == title  # the feed's text, without the outlet's name
    assert rows["Cookie wall story"].url == consent
    assert report.articles.full_text == 3 and report.articles.kept_feed_text == 3
    # the decoder: one page per new-style link, then one POST for all of them
    assert google.batch_calls == 1 and google.decoded == 4

    # A second poll: the feed is unchanged and stored; nothing is fetched again.
    hits = sum(site.requests for site in publishers)
    run(settings, sessions, pool)
    assert sum(site.requests for site in publishers) == hits and len(stored(sessions)) == 6


def test_bing_feed_resolves_through_its_url_parameter(
    tmp_path: Path, google: GoogleNewsService, bing: Site, publishers: list[Site], pool: ParsePool
) -> None:
    page = publish(publishers[0], "/news/chips-1", "Chip curbs reach lithography", "lithography")
    # the link Bing gives is an older address the publisher moved (301) to the page
    old = publishers[0].url("/old/chips-1")
    publishers[0].route("GET", "/old/chips-1", lambda _p, _q, _b: (301, {"Location": page}, b""))
    items = [NewsItem("Chip curbs reach lithography", bing_link(bing.origin, old), "Daily Fab")]
    feed = bing.page("/news/search", bing_news_rss(items, teaser="A short teaser."), "text/xml")
    settings = make_settings(tmp_path, google, bing)
    sessions = sessions_for(settings)
    add(sessions, feed + "?q=chips&format=rss", "Bing News: chips")
    run(settings, sessions, pool)
    (row,) = stored(sessions)
    assert row.url == page  # where the article is, after the publisher's redirect
    assert row.source_name == "Daily Fab" and row.text_kind == "full"
    assert "lithography" in row.text and len(row.text) >= 500
    assert bing.hits["/news/apiclick.aspx"] == 0  # resolved without asking Bing


def test_two_queries_and_the_publisher_feed_store_one_article(
    tmp_path: Path, google: GoogleNewsService, bing: Site, publishers: list[Site], pool: ParsePool
) -> None:
    site = publishers[0]
    page = publish(site, "/2026/12/01/entity-list", "Entity List grows", "the Entity List")
    first = google.feed(
        "/rss/search/a", google_news_rss([NewsItem("Entity List grows", google.link_to(page), "N")])
    )
    second = google.feed(
        "/rss/search/b", google_news_rss([NewsItem("Entity List grows", google.link_to(page), "N")])
    )
    third = bing.page(
        "/news/search",
        bing_news_rss([NewsItem("Entity List grows", bing_link(bing.origin, page), "N")]),
        "text/xml",
    )
    settings = make_settings(tmp_path, google, bing)
    sessions = sessions_for(settings)
    for url in (first, second, third):
        add(sessions, url + "?q=x", url)
    run(settings, sessions, pool)
    (row,) = stored(sessions)
    assert row.url == page
    assert site.hits["/2026/12/01/entity-list"] == 1  # fetched once for the three items

    # The publisher's own feed carries the same article later: still one.
    from feedserver import Item, rss

    own = site.page(
        "/feed",
        rss([Item("Entity List grows", page + "?utm_medium=rss", "pub-1", "Lead.")]),
        "application/rss+xml",
    )
    add(sessions, own, "The publisher")
    run(settings, sessions, pool)
    assert len(stored(sessions)) == 1


def test_a_hundred_items_under_the_per_cycle_budget(
    tmp_path: Path, google: GoogleNewsService, bing: Site, publishers: list[Site], pool: ParsePool
) -> None:
    items = []
    for i in range(100):
        site = publishers[i % 3]
        url = publish(site, f"/story/{i}", f"Story number {i} on chips", f"chip story {i}")
        items.append(NewsItem(f"Story number {i} on chips", google.link_to(url), "Outlet"))
    feed = google.feed("/rss/search", google_news_rss(items), etag='"v1"')
    settings = make_settings(tmp_path, google, bing, max_per_cycle=30, per_host_concurrency=2)
    sessions = sessions_for(settings)
    add(sessions, feed + "?q=chips", "Google News: chips")

    report = run(settings, sessions, pool)
    assert report.articles.fetched == 30 and report.articles.deferred == 70
    assert len(stored(sessions)) == 30 and all(r.text_kind == "full" for r in stored(sessions))
    assert sum(site.requests for site in publishers) == 30
    assert max(site.max_in_flight for site in publishers) <= 2  # per_host_concurrency

    # The next cycle takes the next 30: the feed is fetched whole (no If-None-Match while
    # articles wait, or its 304 would hide them).
    second = run(settings, sessions, pool)
    assert second.articles.fetched == 30 and len(stored(sessions)) == 60
    for _ in range(2):
        run(settings, sessions, pool)
    assert len(stored(sessions)) == 100
    last = run(settings, sessions, pool)  # all stored: the validators are kept again
    assert last.feeds[0].status == "not-modified"
    assert google.batch_calls == 5  # 100 links in batches of 20, decoded once each
    assert google.decoded == 100


def test_feed_text_mode_and_long_feed_text_fetch_nothing(
    tmp_path: Path, google: GoogleNewsService, bing: Site, publishers: list[Site], pool: ParsePool
) -> None:
    page = publish(publishers[0], "/a", "Story A", "story a")
    settings = make_settings(tmp_path, google, bing)
    sessions = sessions_for(settings)
    feed = google.feed(
        "/rss/search", google_news_rss([NewsItem("Story A", google.link_to(page), "O")])
    )
    add(sessions, feed + "?q=a", "Google News: a", article_text="feed")
    long_text = " ".join(article_paragraphs("the long feed text", 8))
    from feedserver import Item, rss

    own = publishers[1].page(
        "/feed",
        rss([Item("Story B", publishers[1].url("/b"), "b-1", long_text)]),
        "application/rss+xml",
    )
    add(sessions, own, "Publisher B", article_text="fetch")
    run(settings, sessions, pool)
    rows = {r.title: r for r in stored(sessions)}
    assert rows["Story A"].url == page and rows["Story A"].text_kind == "headline"
    assert rows["Story B"].text_kind == "full" and rows["Story B"].text == long_text
    assert publishers[0].hits["/a"] == 0 and publishers[1].hits["/b"] == 0


def test_the_cache_answers_for_a_page_fetched_before(
    tmp_path: Path, google: GoogleNewsService, bing: Site, publishers: list[Site], pool: ParsePool
) -> None:
    page = publish(publishers[0], "/cached", "Cached story", "the cached story")
    feed = google.feed(
        "/rss/search", google_news_rss([NewsItem("Cached story", google.link_to(page), "O")])
    )
    settings = make_settings(tmp_path, google, bing)
    sessions = sessions_for(settings)
    add(sessions, feed + "?q=c", "Google News: c")
    run(settings, sessions, pool)
    with sessions.begin() as session:  # the article goes (as retention would), the cache stays
        session.execute(delete(ArticleRow))
        kinds = sorted(session.scalars(select(FetchedPageRow.kind)))
    assert kinds == ["link", "page"]
    decoded, fetched = google.decoded, publishers[0].hits["/cached"]
    report = run(settings, sessions, pool)
    (row,) = stored(sessions)
    assert row.url == page and row.text_kind == "full" and "cached story" in row.text
    assert report.articles.from_cache == 1
    assert google.decoded == decoded and publishers[0].hits["/cached"] == fetched == 1

    # Past [articles] cache_days the page (and the link) are fetched again.
    with sessions.begin() as session:
        session.execute(delete(ArticleRow))
    later = NOW + timedelta(days=31)
    asyncio.run(poll(settings, sessions, all_feeds=True, now=later, pool=pool))
    assert publishers[0].hits["/cached"] == 2 and google.decoded == decoded + 1
    with sessions() as session:  # the old results were dropped, the new ones kept
        ages = list(session.scalars(select(FetchedPageRow.fetched_at)))
    assert len(ages) == 2 and min(ages) == later


def test_the_digest_shows_outlet_publisher_url_and_what_was_read(
    tmp_path: Path, google: GoogleNewsService, bing: Site, publishers: list[Site], pool: ParsePool
) -> None:
    from test_digest_data import TOPICS

    from chipwatch.digest import build_digests, load_feed_health

    page = publish(publishers[0], "/2026/12/01/h20", "Licences for H20 shipments", "H20 licences")
    headline_only = publishers[1].page("/wall", consent_page())
    items = [
        NewsItem("Licences for H20 shipments", google.link_to(page), "North Ledger"),
        NewsItem("Rare earth permits slow", google.link_to(headline_only), "Harbor Wire"),
    ]
    feed = google.feed("/rss/search", google_news_rss(items))
    settings = make_settings(tmp_path, google, bing)
    sessions = sessions_for(settings)
    add(sessions, feed + "?q=h20", "Google News: H20 (en)")
    run(settings, sessions, pool)
    now = datetime.now(UTC)
    with sessions.begin() as session:
        for row in stored(sessions):
            session.add(
                ClassificationRow(
                    article_id=row.id, relevant=True, relevance=0.9,
                    topics=["ai-chip-licensing"], topic_scores={"ai-chip-licensing": 0.9},
                    novel=False, language="en",
                    evidence={"summary": "", "matched_terms": {"ai-chip-licensing": ["licences"]}},
                    model_key="test", classified_at=now.replace(tzinfo=None),
                )
            )  # fmt: skip
    with sessions() as session:
        (digest_id,) = build_digests(session, settings, TOPICS, load_feed_health(session), now)
        raw = session.get(DigestRow, digest_id).message
    message = BytesParser(policy=policy.default).parsebytes(raw)
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    for body in (html, text):
        assert "North Ledger" in body and "Harbor Wire" in body
        assert "judged on the article&#39;s text" in body or "judged on the article's text" in body
        assert "judged on the headline only" in body
        assert "Google News: H20" not in body  # the outlet, not the feed's name
    assert page in html
    assert "that H20 licences would be reviewed" in html  # the excerpt is the article's text


def test_politeness_delay_between_pages_of_one_host(
    tmp_path: Path, google: GoogleNewsService, bing: Site, publishers: list[Site], pool: ParsePool
) -> None:
    site = publishers[0]
    items = [
        NewsItem(f"Story {i}", google.link_to(publish(site, f"/p{i}", f"Story {i}", f"s {i}")), "O")
        for i in range(3)
    ]
    feed = google.feed("/rss/search", google_news_rss(items))
    settings = make_settings(tmp_path, google, bing, per_host_delay_seconds=0.4)
    sessions = sessions_for(settings)
    add(sessions, feed + "?q=p", "Google News: p")
    run(settings, sessions, pool)
    gaps = [b - a for a, b in zip(site.arrivals, site.arrivals[1:], strict=False)]
    assert len(site.arrivals) == 3 and min(gaps) >= 0.35  # [articles] per_host_delay_seconds


def test_fetch_below_chars_decides_what_is_short(
    tmp_path: Path, google: GoogleNewsService, bing: Site, publishers: list[Site], pool: ParsePool
) -> None:
    from feedserver import Item, rss

    site = publishers[1]
    page = publish(site, "/b", "Story B", "story b")
    lead = "A lead of a hundred characters or so, which the default limit of 600 counts as short."
    own = site.page("/feed", rss([Item("Story B", page, "b-1", lead)]), "application/rss+xml")
    settings = make_settings(tmp_path, google, bing, fetch_below_chars=50)
    sessions = sessions_for(settings)
    add(sessions, own, "Publisher B", article_text="fetch")
    run(settings, sessions, pool)
    (row,) = stored(sessions)
    assert row.text == lead and row.text_kind == "summary"
    assert site.hits["/b"] == 0  # 90 characters are not shorter than 50


def test_article_pages_are_under_the_network_guard(
    tmp_path: Path, google: GoogleNewsService, bing: Site, publishers: list[Site], pool: ParsePool
) -> None:
    """A page on a private address is refused like a feed would be: the feed text stays."""
    from chipwatch.articles_fetch import ArticleStage
    from chipwatch.collect import Writer
    from chipwatch.fetch import Fetcher
    from chipwatch.types import Article, Source

    page = publish(publishers[0], "/inside", "Inside story", "an inside story")
    settings = make_settings(tmp_path, google, bing)
    sessions = sessions_for(settings)
    guarded = FetchSettings(allow_private_networks=False)
    article = Article(
        identity="url:inside", source_url="https://www.example.com/feed", url=page,
        title="Inside story", text="Inside story", published=NOW, fetched_at=NOW,
        language="en", content_hash="h",
    )  # fmt: skip

    async def attempt() -> list[Article]:
        writer = Writer(sessions, settings)
        try:
            async with (
                Fetcher(settings.fetch) as feeds,
                ArticleStage(
                    settings, feeds, pool.run, writer.in_session, NOW, Fetcher(guarded)
                ) as stage,
            ):
                source = Source(1, "https://www.example.com/feed", "x", article_text="fetch")
                out = await stage.complete(source, [article])
                assert stage.stats.fetched == 1 and stage.stats.kept_feed_text == 1
                return out
        finally:
            writer.close()

    (kept,) = asyncio.run(attempt())
    assert kept.text == "Inside story" and kept.text_kind == "headline"
    assert publishers[0].hits["/inside"] == 0  # never connected


def test_the_poll_summary_says_what_the_page_stage_did() -> None:
    from chipwatch.articles_fetch import ArticleStats
    from chipwatch.collect import PollReport
    from chipwatch.pipeline import PollSummary, _pages_line

    stats = ArticleStats(fetched=30, full_text=27, kept_feed_text=3, deferred=70)
    now = datetime.now(UTC)
    summary = PollSummary(PollReport(now, now + timedelta(seconds=2), articles=stats), None)
    assert "30 fetched" in str(summary) and "70 left for the next cycle" in str(summary)
    assert _pages_line(ArticleStats()) == ""
