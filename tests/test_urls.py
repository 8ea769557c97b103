"""URLs checked at the door and before each request; the address guard's IPv6 unwrapping.

Hostile spellings come in many forms; each must be a clear refusal (InvalidURLError or
UnsafeURLError, so a per-feed `invalid_url`/`unsafe` error), never an exception of the
HTTP client, and a refused URL is never requested.
"""

from __future__ import annotations

import asyncio

import pytest
from feedserver import FeedServer, Item, rss

from chipwatch.errors import FeedErrorKind, InvalidURLError, UnsafeURLError
from chipwatch.fetch import Fetcher, is_public_address
from chipwatch.settings import FetchSettings
from chipwatch.urls import MAX_URL_CHARS, check_url

# --- the address guard -------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "::1",
        "::",
        "fe80::1%eth0",
        # IPv4-mapped
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        # IPv4-compatible (deprecated, still routed by some stacks)
        "::127.0.0.1",
        "::10.0.0.1",
        "::192.168.1.1",
        "::169.254.169.254",
        # NAT64 well-known prefix (RFC 6052) and local-use prefix (RFC 8215)
        "64:ff9b::127.0.0.1",
        "64:ff9b::7f00:1",
        "64:ff9b::10.0.0.1",
        "64:ff9b::a9fe:a9fe",  # 169.254.169.254, the cloud metadata address
        "64:ff9b:1::c0a8:101",
        # 6to4 (RFC 3056): 2002:AABB:CCDD::/48 carries AA.BB.CC.DD
        "2002:7f00:1::",
        "2002:7f00:0001::1",
        "2002:0a00:0001:1234::5",
        "2002:c0a8:0101::",
        "2002:a9fe:a9fe::1",
    ],
)
def test_private_addresses_are_refused_in_every_spelling(address: str) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "2606:4700:4700::1111",
        "::ffff:93.184.216.34",
        "64:ff9b::93.184.216.34",  # NAT64 of a public address: reaches that address
        "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
    ],
)
def test_public_addresses_pass_also_when_embedded(address: str) -> None:
    assert is_public_address(address)


# --- URLs --------------------------------------------------------------------------------

HOSTILE = [
    ("http://0177.0.0.1/feed.xml", InvalidURLError),  # octal
    ("http://0x7f.0.0.1/feed.xml", InvalidURLError),  # hex
    ("http://0x7f000001/feed.xml", InvalidURLError),
    ("http://2130706433/feed.xml", InvalidURLError),  # one integer
    ("http://127.1/feed.xml", InvalidURLError),  # shortened
    ("http://017700000001/", InvalidURLError),
    ("http://a.test:99999/feed", InvalidURLError),
    ("http://a.test:0/feed", InvalidURLError),
    ("http://a.test:-1/feed", InvalidURLError),
    ("http://a.test:/feed", InvalidURLError),
    ("http://a.test:8o/feed", InvalidURLError),
    ("http://[::1/feed", InvalidURLError),
    ("http://[zz::1]/feed", InvalidURLError),
    ("http://user:pw@a.test/feed", InvalidURLError),
    ("http://trusted.test@evil.test/feed", InvalidURLError),
    ("http://@a.test/feed", InvalidURLError),
    ("http://user:pw@/feed", InvalidURLError),
    ("http:///feed", InvalidURLError),
    ("http://:80/feed", InvalidURLError),
    ("http://ex ample.test/feed", InvalidURLError),
    ("http://a.test/fe\ned", InvalidURLError),
    ("http://a.test/\x00", InvalidURLError),
    (" http://a.test/feed", InvalidURLError),
    ("http://a%2etest/feed", InvalidURLError),
    ("http://a..test/feed", InvalidURLError),
    ("http://-a.test/feed", InvalidURLError),
    ("http://xn--a.test/feed", InvalidURLError),  # an invalid punycode label
    ("http://" + "a" * 64 + ".test/", InvalidURLError),
    ("http://a.test/" + "x" * MAX_URL_CHARS, InvalidURLError),
    ("", InvalidURLError),
    ("http://a.test:+80/feed", InvalidURLError),
    ("http://a.test:\u0668\u0660/feed", InvalidURLError),  # Arabic-Indic digits
    ("http://a.test:65536/feed", InvalidURLError),
    ("http://a.test:80:80/feed", InvalidURLError),
    ("http://a.test\\@evil.test/feed", InvalidURLError),
    ("http://evil.test\\.a.test/feed", InvalidURLError),
    ("http://256.1.1.1/feed", InvalidURLError),
    ("http://1.2.3.4.5/feed", InvalidURLError),
    ("file:///etc/passwd", UnsafeURLError),
    ("ftp://a.test/feed", UnsafeURLError),
    ("javascript:alert(1)", UnsafeURLError),
    ("gopher://a.test:70/", UnsafeURLError),
    ("//a.test/feed", UnsafeURLError),
    ("a.test/feed", UnsafeURLError),
]


@pytest.mark.parametrize(("url", "error"), HOSTILE)
def test_hostile_urls_are_refused_clearly(url: str, error: type[Exception]) -> None:
    with pytest.raises(error) as raised:
        check_url(url)
    assert str(raised.value).strip()


@pytest.mark.parametrize(
    "url",
    [
        "http://a.test/feed.xml",
        "https://A.Test:8443/path?q=1#frag",
        "http://127.0.0.1:8080/feed",  # a plain dotted quad (the guard judges the address)
        "http://[::1]:8080/feed",
        "https://例え.jp/フィード",  # an IDN host and a non-ASCII path
        "https://news.xn--wgv71a119e.jp/rss",
        "https://my_host.test/feed",
        "http://a.test./feed",  # trailing dot of a fully qualified name
        "http://a.test:080/feed",
        "http://a.test/feed#@evil.test",  # a fragment, not user info
        "HTTP://A.TEST/feed",
    ],
)
def test_ordinary_urls_pass(url: str) -> None:
    assert check_url(url) == url


def test_refused_urls_are_never_requested_and_come_back_as_typed_errors() -> None:
    settings = FetchSettings(allow_private_networks=True, deadline_seconds=5)
    with FeedServer() as server:
        server.add("/feed.xml", rss([Item("One", "http://a.test/1")]))
        port = server.port
        cases = {
            f"http://0177.0.0.1:{port}/feed.xml": FeedErrorKind.INVALID_URL,
            f"http://2130706433:{port}/feed.xml": FeedErrorKind.INVALID_URL,
            f"http://x:y@127.0.0.1:{port}/feed.xml": FeedErrorKind.INVALID_URL,
            f"file:///feed.xml?{port}": FeedErrorKind.UNSAFE,
        }

        async def run() -> list[object]:
            async with Fetcher(settings) as fetcher:
                return [await fetcher.fetch_url(url) for url in cases]

        results = asyncio.run(run())
        assert server.hits["/feed.xml"] == 0
    for result, kind in zip(results, cases.values(), strict=True):
        assert result.error is not None and result.error.kind is kind  # type: ignore[attr-defined]


def test_redirects_to_hostile_urls_are_refused() -> None:
    settings = FetchSettings(allow_private_networks=True, deadline_seconds=5)
    with FeedServer() as server:
        server.add("/feed.xml", rss([Item("One", "http://a.test/1")]))
        targets = {
            "/r1": "http://0177.0.0.1/feed.xml",
            "/r2": f"http://u:p@127.0.0.1:{server.port}/feed.xml",
            "/r3": "file:///etc/passwd",
            "/r4": "http://[::1/feed",
            "/r5": f"http://127.0.0.1:{server.port}/" + "x" * MAX_URL_CHARS,
        }
        for path, location in targets.items():
            server.add(path, status=302, headers={"Location": location})

        async def run() -> list[object]:
            async with Fetcher(settings) as fetcher:
                return [await fetcher.fetch_url(server.url(path)) for path in targets]

        results = asyncio.run(run())
        assert server.hits["/feed.xml"] == 0
    kinds = [r.error.kind for r in results]  # type: ignore[attr-defined]
    assert kinds == [
        FeedErrorKind.INVALID_URL,
        FeedErrorKind.INVALID_URL,
        FeedErrorKind.UNSAFE,
        FeedErrorKind.INVALID_URL,
        FeedErrorKind.INVALID_URL,
    ]
