"""The fetcher against a real loopback server: validators, redirects, limits, the guard."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import time
from datetime import datetime

import httpx
import pytest
from feedserver import FeedServer, Item, rss

from chipwatch import USER_AGENT
from chipwatch.fetch import (
    Fetcher,
    build_client,
    is_public_address,
    parse_max_age,
    parse_retry_after,
)
from chipwatch.settings import FetchSettings
from chipwatch.types import FetchResult, Source

OPEN = FetchSettings(allow_private_networks=True)
FEED = rss([Item("Export licence rules tightened", "http://example.test/a", "a-1")])


def fetch(url: str, settings: FetchSettings = OPEN, **kwargs: object) -> FetchResult:
    async def run() -> FetchResult:
        async with Fetcher(settings) as fetcher:
            return await fetcher.fetch_url(url, **kwargs)  # type: ignore[arg-type]

    return asyncio.run(run())


@pytest.fixture
def server():
    with FeedServer() as running:
        yield running


def test_ok_sends_user_agent_and_returns_validators(server: FeedServer) -> None:
    server.add("/feed", FEED, etag='"v1"', last_modified="Mon, 03 Mar 2025 09:00:00 GMT")
    result = fetch(server.url("/feed"))
    assert result.error is None and result.status == 200 and result.content == FEED
    assert result.etag == '"v1"' and result.last_modified == "Mon, 03 Mar 2025 09:00:00 GMT"
    assert server.request_headers["/feed"]["User-Agent"] == USER_AGENT


def test_conditional_get_gives_304(server: FeedServer) -> None:
    server.add("/feed", FEED, etag='"v1"')

    async def run() -> FetchResult:
        async with Fetcher(OPEN) as fetcher:
            return await fetcher.fetch(Source(1, server.url("/feed"), "", etag='"v1"'))

    result = asyncio.run(run())
    assert result.not_modified and result.status == 304 and result.error is None
    assert result.etag == '"v1"'
    assert server.request_headers["/feed"]["If-None-Match"] == '"v1"'


@pytest.mark.parametrize("status", [301, 308])
def test_permanent_redirect_is_reported(server: FeedServer, status: int) -> None:
    server.add("/new", FEED)
    server.redirect("/old", "/new", status=status)
    result = fetch(server.url("/old"))
    assert result.error is None and result.content == FEED
    assert result.permanent_redirect == server.url("/new")


def test_temporary_redirect_in_chain_is_not_permanent(server: FeedServer) -> None:
    server.add("/new", FEED)
    server.redirect("/mid", "/new", status=301)
    server.redirect("/old", "/mid", status=302)
    result = fetch(server.url("/old"))
    assert result.final_url == server.url("/new") and result.permanent_redirect is None


def test_redirect_loop_stops(server: FeedServer) -> None:
    server.redirect("/a", "/b", status=302)
    server.redirect("/b", "/a", status=302)
    result = fetch(server.url("/a"))
    assert result.error is not None and "redirects" in str(result.error)


def test_410_is_gone(server: FeedServer) -> None:
    server.add("/feed", b"", status=410)
    result = fetch(server.url("/feed"))
    assert result.gone and result.status == 410 and "410" in str(result.error or "")


def test_429_retry_after_seconds(server: FeedServer) -> None:
    server.add("/feed", b"slow down", status=429, headers={"Retry-After": "3600"})
    result = fetch(server.url("/feed"))
    assert result.status == 429 and result.retry_after_seconds == 3600
    assert result.error is not None and "429" in str(result.error)


def test_retry_after_http_date_and_cache_headers() -> None:
    now = datetime(2025, 3, 3, 9, 0, 0)
    assert parse_retry_after("Mon, 03 Mar 2025 10:00:00 GMT", now) == 3600
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after("soon", now) is None
    assert parse_max_age(httpx.Headers({"Cache-Control": "public, max-age=900"})) == 900
    expires = httpx.Headers(
        {"Expires": "Mon, 03 Mar 2025 09:30:00 GMT", "Date": "Mon, 03 Mar 2025 09:00:00 GMT"}
    )
    assert parse_max_age(expires) == 1800


def test_slow_trickle_hits_the_deadline(server: FeedServer) -> None:
    server.add("/slow", FEED * 4, trickle=(64, 0.1))
    settings = FetchSettings(allow_private_networks=True, deadline_seconds=0.5)
    result = fetch(server.url("/slow"), settings)
    assert result.error is not None and "longer than 0.5 s" in str(result.error)
    assert result.elapsed_seconds < 2


def test_gzip_bomb_stops_at_the_cap(server: FeedServer) -> None:
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024))
    server.add("/bomb", raw_gzip=bomb)
    settings = FetchSettings(allow_private_networks=True, max_body_bytes=1024 * 1024)
    result = fetch(server.url("/bomb"), settings)
    assert len(bomb) < 50_000
    assert result.error is not None and "larger than 1048576 bytes" in str(result.error)


def test_gzip_body_is_inflated(server: FeedServer) -> None:
    server.add("/feed", FEED, gzip=True)
    assert fetch(server.url("/feed")).content == FEED


def test_guard_refuses_loopback(server: FeedServer) -> None:
    server.add("/feed", FEED)
    result = fetch(server.url("/feed"), FetchSettings(allow_private_networks=False))
    assert result.error is not None and "non-public address 127.0.0.1" in str(result.error)
    assert server.hits["/feed"] == 0  # refused before any byte was sent


def test_guard_refuses_a_redirect_to_a_private_address(server: FeedServer) -> None:
    # The first hop's address is trusted for the test; the redirect target is not.
    with FeedServer(host="127.0.0.2") as inside:
        inside.add("/secret", b"internal")
        server.redirect("/feed", inside.url("/secret"), status=302)
        settings = FetchSettings(allow_private_networks=False)

        async def run() -> FetchResult:
            client = build_client(settings, is_allowed=lambda ip: ip == "127.0.0.1")
            async with Fetcher(settings, client=client) as fetcher:
                return await fetcher.fetch_url(server.url("/feed"))

        result = asyncio.run(run())
        assert server.hits["/feed"] == 1
        assert inside.hits["/secret"] == 0
        assert result.error is not None and "127.0.0.2" in str(result.error)


def test_only_http_and_https(server: FeedServer) -> None:
    assert "scheme 'file'" in str(fetch("file:///etc/passwd").error or "")
    server.redirect("/feed", "file:///etc/passwd", status=302)
    assert "scheme 'file'" in str(fetch(server.url("/feed")).error or "")


def test_public_address_classification() -> None:
    assert is_public_address("93.184.216.34")
    private = ("127.0.0.1", "10.1.2.3", "192.168.1.1", "169.254.169.254", "::1", "fe80::1")
    others = ("224.0.0.1", "0.0.0.0", "::ffff:127.0.0.1", "100.64.0.1", "240.0.0.1")
    for address in private + others:
        assert not is_public_address(address), address


def test_connection_refused_is_a_value() -> None:
    with FeedServer() as gone:
        url = gone.url("/feed")
    result = fetch(url)
    assert result.error is not None and result.status is None


def test_per_host_limit_is_respected(server: FeedServer) -> None:
    server.add("/slow", FEED, trickle=(len(FEED) // 2 + 1, 0.2))
    settings = FetchSettings(allow_private_networks=True, per_host_concurrency=1)

    async def run() -> list[FetchResult]:
        async with Fetcher(settings) as fetcher:
            return await asyncio.gather(*(fetcher.fetch_url(server.url("/slow")) for _ in range(3)))

    results = asyncio.run(run())
    assert all(r.error is None for r in results)
    # one at a time: each waits for the previous, so the last took >= 3 x 0.2 s overall
    assert max(r.elapsed_seconds for r in results) >= 0.5


def test_the_per_host_delay_holds_after_the_event_loop_was_busy(server: FeedServer) -> None:
    server.add("/feed", FEED)
    settings = FetchSettings(allow_private_networks=True, per_host_delay_seconds=0.3)

    async def run() -> None:
        async with Fetcher(settings) as fetcher:
            await fetcher.fetch_url(server.url("/feed"))
            waiting = [asyncio.create_task(fetcher.fetch_url(server.url("/feed"))) for _ in "ab"]
            for _ in range(3):
                await asyncio.sleep(0)  # both now wait for their turn to the host
            time.sleep(1.0)  # the loop is busy past both turns (a parse, a slow callback)
            await asyncio.gather(*waiting)

    asyncio.run(run())
    gaps = [b - a for a, b in itertools.pairwise(server.arrivals)]
    # Turns reserved before sleeping sent both waiting requests at once when the loop
    # came back; taken when the request goes out, they stay a delay apart.
    assert len(gaps) == 2 and min(gaps) >= 0.25, gaps


def test_connection_is_reused_after_answers_without_a_used_body(server: FeedServer) -> None:
    # 304s, redirects and error pages are read to their end (an error page up to a cap),
    # so httpcore keeps the connection; closing them unread closed it each time.
    server.add("/feed", FEED, etag='"v1"')
    server.redirect("/old", "/feed", status=302)
    server.add("/missing", b"no such feed " * 100, status=404)
    server.add("/huge-error", b"x" * 200_000, status=500)
    settings = FetchSettings(allow_private_networks=True, per_host_concurrency=1)

    async def run() -> list[FetchResult]:
        async with Fetcher(settings) as fetcher:
            source = Source(1, server.url("/feed"), "", etag='"v1"')
            results = [await fetcher.fetch(source) for _ in range(3)]
            results.append(await fetcher.fetch_url(server.url("/old")))
            results.append(await fetcher.fetch_url(server.url("/missing")))
            results.append(await fetcher.fetch(source))
            results.append(await fetcher.fetch_url(server.url("/huge-error")))
            results.append(await fetcher.fetch(source))
            return results

    results = asyncio.run(run())
    assert [r.status for r in results] == [304, 304, 304, 200, 404, 304, 500, 304]
    assert results[3].content == FEED and str(results[4].error) == "HTTP 404 Not Found"
    # one connection for all, but a second after the 200 kB error page (not worth reading)
    assert server.connections == 2
