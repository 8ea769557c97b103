"""Feed bytes -> ParsedFeed (pure, CPU-bound; runs in worker processes).

feedparser does the parsing with its sanitizer and relative-URI resolution turned off:
chipwatch keeps plain text only and escapes where it renders, so sanitising here would
only cost time. Entry text is reduced to plain text (tags stripped, entities unescaped).
An HTML page served where a feed was expected is rejected with a clear error that carries
the feed URLs the page advertises (`<link rel="alternate" type="application/rss+xml">`).
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin

import feedparser

from chipwatch.errors import ParseError
from chipwatch.types import FeedEntry, ParsedFeed

FEED_TYPES = {
    "application/rss+xml",
    "application/atom+xml",
    "application/rdf+xml",
    "application/feed+json",
    "application/json",
    "text/xml",
    "application/xml",
}

_HTML_START = re.compile(
    rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>]|head[\s>])", re.I | re.S
)
_DROP_BLOCKS = re.compile(r"<(script|style|template)\b.*?</\1\s*>|<!--.*?-->", re.I | re.S)
_BREAKS = re.compile(r"<(?:br|/p|/div|/li|/h[1-6]|/tr|/blockquote)\b[^>]*>", re.I)
_OPEN_TAG_AT_END = re.compile(r"<[^>]*$")
_TAG = re.compile(r"</?[a-zA-Z][^<>]*>|<![^<>]*>")


class NotAFeed(ParseError):
    """An HTML page where a feed was expected; `alternates` are the feeds it links to."""

    def __init__(self, url: str, alternates: tuple[str, ...]) -> None:
        self.alternates = alternates
        hint = f"; it links to the feed {alternates[0]}" if alternates else ""
        super().__init__(url, f"HTML page, not a feed{hint}")


class ParseTimeout(ParseError):
    pass


def to_text(value: str | None, limit: int | None = None) -> str:
    """Markup -> plain text: drop scripts, strip tags, unescape entities, tidy spaces."""
    if not value:
        return ""
    text = value
    if limit is not None and len(text) > limit * 3:
        # Markup is rarely over 3x its text: cut before the regexes, not after.
        text = _OPEN_TAG_AT_END.sub("", text[: limit * 3])
    for _ in range(2):  # second pass: markup that was escaped twice in the feed
        if "<" not in text and "&" not in text:
            break
        if _TAG.search(text):
            # In markup a raw newline is just a space; block tags make the line breaks.
            text = _BREAKS.sub("\n", _DROP_BLOCKS.sub(" ", text.replace("\n", " ")))
        text = html.unescape(_TAG.sub(" ", text))
    # str.split() is C-fast and knows every Unicode space (regexes were 3x slower here).
    lines = (" ".join(line.split()) for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def looks_like_html(content: bytes) -> bool:
    head = content[:2048].lstrip(b"\xef\xbb\xbf")
    return bool(_HTML_START.match(head))


class _AlternateLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.links: list[tuple[str, str]] = []  # (type, href)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): (v or "") for k, v in attrs}
        if tag == "base" and values.get("href") and self.base is None:
            self.base = values["href"]
        rels = values.get("rel", "").lower().split()
        kind = values.get("type", "").lower().split(";")[0].strip()
        if tag == "link" and "alternate" in rels and kind in FEED_TYPES and values.get("href"):
            self.links.append((kind, values["href"]))


def discover_feeds(content: bytes, page_url: str) -> tuple[str, ...]:
    """Feed URLs an HTML page advertises, RSS/Atom first, absolute, in page order."""
    finder = _AlternateLinks()
    with contextlib.suppress(Exception):  # broken HTML: keep what was found so far
        finder.feed(content[:1_000_000].decode("utf-8", "replace"))
    base = urljoin(page_url, finder.base) if finder.base else page_url
    ranked = sorted(finder.links, key=lambda link: "json" in link[0])
    urls = (urljoin(base, href.strip()) for _, href in ranked)
    return tuple(dict.fromkeys(u for u in urls if u.startswith(("http://", "https://"))))


def parse_feed(
    content: bytes,
    url: str,
    content_type: str = "",
    *,
    max_entries: int = 500,
    max_entry_chars: int = 100_000,
) -> ParsedFeed:
    """Parse one feed document; raise NotAFeed or ParseError when it is unusable."""
    if not content.strip():
        raise ParseError(url, "empty response body")
    if looks_like_html(content):
        raise NotAFeed(url, discover_feeds(content, url))
    if content.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{":
        return parse_json_feed(content, url, max_entries, max_entry_chars)
    headers = {"content-type": content_type} if content_type else None
    try:
        parsed = feedparser.parse(
            content,
            response_headers=headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except ParseTimeout:
        raise
    except Exception as exc:  # feedparser is meant never to raise; be sure anyway
        raise ParseError(url, f"feed parser failed: {type(exc).__name__}: {exc}") from None
    return _to_parsed_feed(parsed, url, content, max_entries, max_entry_chars)


def _to_parsed_feed(
    parsed: Any, url: str, content: bytes, max_entries: int, max_entry_chars: int
) -> ParsedFeed:
    if not parsed.get("version") and not parsed.entries:
        if (
            "html" in str(parsed.get("feed", {}).get("content_type", ""))
            or b"<body" in content[:8192].lower()
        ):
            raise NotAFeed(url, discover_feeds(content, url))
        problem = parsed.get("bozo_exception")
        detail = f": {problem}" if problem else ""
        raise ParseError(url, f"not a recognisable RSS, Atom, RDF or JSON feed{detail}")
    if not parsed.entries and parsed.get("bozo"):
        problem = parsed.get("bozo_exception")
        raise ParseError(url, f"malformed feed with no readable entries: {problem}")
    feed = parsed.get("feed", {})
    entries = tuple(_entry(e, max_entry_chars) for e in parsed.entries[:max_entries])
    return ParsedFeed(
        title=to_text(feed.get("title"))[:300],
        entries=entries,
        ttl_minutes=_int_or_none(feed.get("ttl")),
        site_url=feed.get("link") or None,
    )


def parse_json_feed(content: bytes, url: str, max_entries: int, max_chars: int) -> ParsedFeed:
    """JSON Feed 1.0/1.1 (feedparser 6 reads XML only)."""
    try:
        document = json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ParseError(url, f"invalid JSON: {exc}") from None
    version = str(document.get("version", "")) if isinstance(document, dict) else ""
    if "jsonfeed.org" not in version:
        raise ParseError(url, "JSON document that is not a JSON Feed")
    items = document.get("items")
    entries = [
        _json_entry(item, max_chars)
        for item in (items if isinstance(items, list) else [])[:max_entries]
        if isinstance(item, dict)
    ]
    return ParsedFeed(
        title=to_text(str(document.get("title") or ""))[:300],
        entries=tuple(entries),
        site_url=_clean_id(document.get("home_page_url")),
    )


def _json_entry(item: dict[str, Any], max_chars: int) -> FeedEntry:
    texts = [str(item.get(k) or "") for k in ("content_html", "content_text", "summary")]
    authors = item.get("authors") or (
        [item["author"]] if isinstance(item.get("author"), dict) else []
    )
    author = next(
        (str(a.get("name")) for a in authors if isinstance(a, dict) and a.get("name")), None
    )
    return FeedEntry(
        guid=_clean_id(str(item["id"])) if item.get("id") is not None else None,
        url=_clean_id(item.get("url") or item.get("external_url")),
        title=to_text(str(item.get("title") or ""))[:1000],
        summary=to_text(max(texts, key=len), max_chars)[:max_chars],
        published=_iso_date(item.get("date_published") or item.get("date_modified")),
        author=author,
    )


def _iso_date(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _entry(entry: Any, max_chars: int) -> FeedEntry:
    return FeedEntry(
        guid=_clean_id(entry.get("id")),
        url=_clean_id(entry.get("link")),
        title=to_text(entry.get("title"))[:1000],
        summary=to_text(_longest_text(entry), max_chars)[:max_chars],
        published=_date(entry),
        author=to_text(entry.get("author"))[:300] or None,
    )


def _longest_text(entry: Any) -> str:
    # Many feeds put a teaser in <description> and the article in <content:encoded>.
    candidates = [entry.get("summary") or ""]
    candidates += [c.get("value") or "" for c in entry.get("content") or []]
    return max(candidates, key=len)


def _clean_id(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:2048] or None


def _date(entry: Any) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        value = entry.get(key)
        if value:
            with contextlib.suppress(TypeError, ValueError):
                return datetime(*value[:6])  # feedparser gives UTC struct_time
    return None


def _int_or_none(value: object) -> int | None:
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


@contextlib.contextmanager
def time_limit(seconds: float, url: str) -> Iterator[None]:
    """Raise ParseTimeout in this (worker) process after `seconds`; no-op off Unix."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    if not hasattr(signal, "setitimer") or seconds <= 0 or not in_main_thread:
        yield
        return

    def _expired(_signum: int, _frame: object) -> None:
        raise ParseTimeout(url, f"parsing took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
