"""Benchmark news-search sources: one poll cycle with link resolution and article fetching.

    .venv/bin/python scripts/bench_sources.py [--items 200] [--hosts 50]

Serves, from a separate process (so serving does not compete with the poller for its
GIL), a Google News search feed of 200 items on 127.0.0.1 whose links go through the
loopback stand-in of Google's decoder to 50 publisher hosts (127.0.0.2-51), each
answering after 20-200 ms. One page in twenty is a consent wall or a paywall (no text
to find). Polls once into a fresh data directory and prints: the cycle's wall time,
the share of the pages that have text stored with >= 500 characters of article text
(target >= 90 %), and the most requests any publisher host had in flight at once
against the politeness limit (`[articles] per_host_concurrency`).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the loopback stand-ins (tests/newsserver.py)
WALL_EVERY = 20  # one page in twenty is a wall: consent or paywall
MIN_TEXT = 500


def serve(items: int, hosts: int, ready: Any, stop: Any, results: Any) -> None:
    from newsserver import (
        GoogleNewsService,
        NewsItem,
        Site,
        article_page,
        article_paragraphs,
        consent_page,
        google_news_rss,
        paywall_page,
    )

    google = GoogleNewsService("127.0.0.1").__enter__()
    google.latency = (0.02, 0.05)
    sites = [
        Site(f"127.0.0.{i + 2}", latency=(0.02, 0.2), seed=i).__enter__() for i in range(hosts)
    ]
    news, walls = [], 0
    for n in range(items):
        site = sites[n % hosts]
        title = f"Export rules for chips, part {n}"
        if n % WALL_EVERY == WALL_EVERY - 1:
            body = consent_page() if walls % 2 == 0 else paywall_page(title)
            walls += 1
        else:
            body = article_page(title, article_paragraphs(f"the licence rule number {n}"))
        url = site.page(f"/news/{n}", body)
        news.append(NewsItem(title, google.link_to(url), f"Outlet {n % hosts}"))
    feed = google.feed("/rss/search", google_news_rss(news, "chip export controls"))
    ready.put((google.origin, feed, items - walls))
    stop.wait()
    results.put(
        {
            "max_in_flight": max(s.max_in_flight for s in sites),
            "publisher_requests": sum(s.requests for s in sites),
            "max_requests_per_host": max(s.requests for s in sites),
            "google_requests": google.requests,
            "google_max_in_flight": google.max_in_flight,
        }
    )
    for site in [google, *sites]:
        site.__exit__()


def run(items: int, hosts: int) -> None:
    from sqlalchemy import select

    from chipwatch.collect import poll
    from chipwatch.settings import (
        ArticleSettings,
        FetchSettings,
        NewsSearchSettings,
        Settings,
    )
    from chipwatch.store.db import open_engine, session_factory
    from chipwatch.store.models import ArticleRow
    from chipwatch.store.sources import add_source

    context = multiprocessing.get_context("spawn")
    ready, results, stop = context.Queue(), context.Queue(), context.Event()
    server = context.Process(target=serve, args=(items, hosts, ready, stop, results))
    server.start()
    origin, feed, with_text = ready.get(timeout=120)
    articles = ArticleSettings(
        max_per_cycle=items, per_host_concurrency=1, per_host_delay_seconds=0.25
    )
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        settings = Settings(
            config_path=data / "chipwatch.toml",
            config_dir=data,
            data_dir=data / "data",
            topics_path=data / "topics.toml",
            corpus_dir=data / "corpus",
            fetch=FetchSettings(allow_private_networks=True),
            articles=articles,
            news_search=NewsSearchSettings(google_news_url=origin),
        )
        sessions = session_factory(open_engine(settings.database_path))
        with sessions.begin() as session:
            add_source(session, feed + "?q=chips+when:7d&hl=en-US&gl=US&ceid=US:en", "bench")
        load = os.getloadavg()[0]
        started = time.perf_counter()
        report = asyncio.run(poll(settings, sessions, all_feeds=True))
        wall = time.perf_counter() - started
        with sessions() as session:
            rows = list(session.scalars(select(ArticleRow)))
    stop.set()
    served = results.get(timeout=60)
    server.join(timeout=30)
    long_text = sum(1 for r in rows if r.text_kind == "full" and len(r.text) >= MIN_TEXT)
    stats = report.articles
    print(f"load average (1 min) {load:.2f} -> {os.getloadavg()[0]:.2f}")
    print(f"items {items}, publisher hosts {hosts}, pages with text {with_text}")
    print(f"cycle wall time (resolve + fetch + extract + store): {wall:.1f} s")
    print(
        f"stored {len(rows)}; with >= {MIN_TEXT} chars of article text: {long_text} = "
        f"{100 * long_text / with_text:.1f} % of the pages that have text (target >= 90 %)"
    )
    print(
        f"kept the feed's text: {stats.kept_feed_text} (walls served: {items - with_text}); "
        f"deferred {stats.deferred}; unresolved {stats.unresolved}"
    )
    print(
        f"publisher requests {served['publisher_requests']} "
        f"(most to one host {served['max_requests_per_host']}); "
        f"most in flight at one host {served['max_in_flight']} "
        f"vs politeness limit {articles.per_host_concurrency}"
    )
    print(
        f"Google stand-in: {served['google_requests']} requests, "
        f"most in flight {served['google_max_in_flight']} "
        f"vs fetch.per_host_concurrency {settings.fetch.per_host_concurrency}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=50)
    args = parser.parse_args()
    run(args.items, args.hosts)


if __name__ == "__main__":
    main()
