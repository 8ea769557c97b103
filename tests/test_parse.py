"""Parsing: plain text, HTML pages, autodiscovery, caps, TTL (pure, no I/O)."""

from __future__ import annotations

from datetime import datetime

import pytest
from feedserver import Item, rss

from chipwatch.errors import ParseError
from chipwatch.parse import NotAFeed, discover_feeds, parse_feed, to_text

ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom fixture</title>
<link href="http://site.test/"/><id>urn:x</id><updated>2025-03-03T10:00:00+01:00</updated>
<entry><title type="html">Licence &lt;em&gt;update&lt;/em&gt;</title><id>urn:e1</id>
<link href="/posts/1"/><updated>2025-03-03T10:00:00+01:00</updated>
<content type="html">&lt;p&gt;Controls on &lt;b&gt;etching&lt;/b&gt; tools
&amp;amp; parts.&lt;/p&gt;
&lt;script&gt;alert(1)&lt;/script&gt;</content></entry></feed>"""


def test_rss_entries_are_plain_text() -> None:
    items = [
        Item(
            "A &amp; B <i>rules</i>", "http://x.test/1", "g1", "<p>One<br>two &eacute;t&eacute;</p>"
        )
    ]
    feed = parse_feed(rss(items, ttl=90), "http://x.test/feed")
    (entry,) = feed.entries
    assert entry.title == "A & B rules"
    assert entry.summary == "One\ntwo été"
    assert entry.guid == "g1" and entry.url == "http://x.test/1"
    assert entry.published == datetime(2025, 3, 3, 9, 0, 0)
    assert feed.ttl_minutes == 90 and feed.title == "Test feed"


def test_atom_dates_to_utc_and_no_markup_left() -> None:
    feed = parse_feed(ATOM, "http://site.test/atom")
    (entry,) = feed.entries
    assert entry.title == "Licence update"
    assert entry.summary == "Controls on etching tools & parts."
    assert "<" not in entry.summary and "alert" not in entry.summary
    assert entry.published == datetime(2025, 3, 3, 9, 0, 0)
    assert entry.url == "/posts/1"  # resolved later, against the final URL, by extract


def test_to_text_double_escaped_markup() -> None:
    assert to_text("&lt;p&gt;Hello &amp;amp; welcome&lt;/p&gt;") == "Hello & welcome"
    assert to_text("<!-- hidden --><style>p{}</style>Shown") == "Shown"
    assert to_text(None) == ""


def test_html_page_is_a_clear_error() -> None:
    page = b"<!DOCTYPE html>\n<html><head><title>Shop</title></head><body>Hi</body></html>"
    with pytest.raises(NotAFeed, match="HTML page, not a feed$"):
        parse_feed(page, "http://shop.test/")


def test_autodiscovery_links() -> None:
    page = b"""<html><head><base href="http://cdn.test/blog/">
    <link rel="alternate" type="application/feed+json" href="feed.json">
    <link rel="stylesheet" href="x.css">
    <link rel="alternate" type="application/atom+xml" href="atom.xml">
    </head><body></body></html>"""
    assert discover_feeds(page, "http://site.test/") == (
        "http://cdn.test/blog/atom.xml",
        "http://cdn.test/blog/feed.json",
    )
    with pytest.raises(NotAFeed) as caught:
        parse_feed(page, "http://site.test/")
    assert caught.value.alternates[0] == "http://cdn.test/blog/atom.xml"
    assert "it links to the feed http://cdn.test/blog/atom.xml" in str(caught.value)


def test_garbage_and_empty_are_parse_errors() -> None:
    with pytest.raises(ParseError, match="empty response body"):
        parse_feed(b"  \n", "http://x.test/")
    with pytest.raises(ParseError, match="not a recognisable"):
        parse_feed(b"\x00\x01 binary junk", "http://x.test/")


def test_caps_on_entries_and_text() -> None:
    items = [Item(f"Item {i}", f"http://x.test/{i}", f"g{i}", "word " * 500) for i in range(20)]
    feed = parse_feed(rss(items), "http://x.test/", max_entries=5, max_entry_chars=100)
    assert len(feed.entries) == 5
    assert all(len(e.summary) <= 100 for e in feed.entries)


def test_json_feed() -> None:
    body = (
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": ['
        b'{"id": "1", "url": "http://j.test/1", "title": "Hello", "content_text": "Body"}]}'
    )
    feed = parse_feed(body, "http://j.test/feed.json", "application/json")
    assert [e.title for e in feed.entries] == ["Hello"]


def test_a_json_feed_with_a_lone_surrogate_escape_keeps_its_entries() -> None:
    # "\ud800" alone is valid JSON but not text: it could not be stored or embedded.
    body = (
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": ['
        b'{"id": "1", "url": "http://j.test/1", "title": "\\ud800 Chip rules", '
        b'"content_text": "Body \\udfff and \\ud83d\\ude00"}]}'
    )
    feed = parse_feed(body, "http://j.test/feed.json", "application/json")
    entry = feed.entries[0]
    assert entry.title == "\ufffd Chip rules"
    assert entry.summary.encode("utf-8").decode("utf-8") == "Body \ufffd and \U0001f600"


def test_json_feed_fields_of_the_wrong_type_are_no_text() -> None:
    body = (
        b'{"version": "https://jsonfeed.org/version/1.1", "title": ["J"], "items": ['
        b'{"id": "1", "url": "http://j.test/1", "title": ["list"], "content_text": {"a": 1}},'
        b'{"id": "2", "url": "http://j.test/2", "title": 2026, "summary": true}]}'
    )
    feed = parse_feed(body, "http://j.test/feed.json", "application/json")
    assert feed.title == ""
    assert [e.title for e in feed.entries] == ["", "2026"]  # was "['list']"
    assert [e.summary for e in feed.entries] == ["", ""]  # was "{'a': 1}" and "True"


@pytest.mark.parametrize(
    ("date", "published"),
    [
        ("Mon, 01 Dec 2025 10:00:00 +9999", None),  # was shifted by 99 h 99 min
        ("Mon, 01 Dec 2025 10:00:00 +2500", None),
        ("Mon, 01 Dec 2025 10:00:00 +0100", datetime(2025, 12, 1, 9, 0)),
        ("Mon, 01 Dec 2025 10:00:00 -1400", datetime(2025, 12, 2, 0, 0)),
    ],
)
def test_a_date_with_an_offset_no_zone_has_is_no_date(date: str, published: object) -> None:
    body = (
        '<rss version="2.0"><channel><title>T</title><item><title>Chip rules</title>'
        f"<link>http://a.test/1</link><pubDate>{date}</pubDate></item></channel></rss>"
    )
    feed = parse_feed(body.encode(), "http://a.test/feed")
    assert feed.entries[0].published == published


@pytest.mark.parametrize("fast", [True, False])
def test_a_reference_to_a_character_that_cannot_exist_loses_only_itself(fast: bool) -> None:
    """&#xDFFF; (a surrogate), &#x110000; (past Unicode) failed the whole feed, its good
    items with it; such a reference is now U+FFFD. Ordinary ones are untouched."""
    refs = ["&#xDFFF;", "&#55296;", "&#x110000;", "&#x0000DFFF;", "&#" + "9" * 5000 + ";"]
    items = "".join(
        f"<item><title>bad {ref} item {i}</title><link>https://wire.test/{i}</link>"
        f"<description>text {ref}</description></item>"
        for i, ref in enumerate(refs)
    )
    document = (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
        "<link>https://wire.test/</link><description>d</description>"
        "<item><title>good &#8217;one&#x1F600;</title><link>https://wire.test/g</link>"
        f"<description>fine</description></item>{items}</channel></rss>"
    ).encode()
    parsed = parse_feed(document, "https://wire.test/feed", "application/rss+xml", fast=fast)
    titles = [entry.title for entry in parsed.entries]
    assert titles[0] == "good \u2019one\U0001f600"
    assert titles[1:] == [f"bad \ufffd item {i}" for i in range(len(refs))]
