"""Feed bytes -> ParsedFeed (pure, CPU-bound; runs in worker processes).

feedparser is the reference parser, with its sanitizer and relative-URI resolution turned
off: chipwatch keeps plain text only and escapes where it renders, so sanitising here would
only cost time. fastfeedparser (about 40x faster) goes first for the documents where it is
known to give the same FeedEntry values as feedparser (`fast_parse`: well-formed UTF-8
RSS/Atom without the elements the two read differently, plus cheap cross-checks on its
output); everything else goes to feedparser. tests/test_parse_equivalence.py proves the
combination equal to feedparser alone over every file of ../shared/feeds.
Entry text is reduced to plain text (tags stripped, entities unescaped).
An HTML page served where a feed was expected is rejected with a clear error that carries
the feed URLs the page advertises (`<link rel="alternate" type="application/rss+xml">`).
"""

from __future__ import annotations

import contextlib
import html
import re
import signal
import threading
import xml.parsers.expat
import xml.sax.expatreader
from collections.abc import Iterator
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any, NamedTuple
from urllib.parse import urljoin

import fastfeedparser
import feedparser
import feedparser.api

from chipwatch.errors import ParseError
from chipwatch.markup import json_document, to_text
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


class NotAFeed(ParseError):
    """An HTML page where a feed was expected; `alternates` are the feeds it links to."""

    def __init__(self, url: str, alternates: tuple[str, ...]) -> None:
        self.alternates = alternates
        hint = f"; it links to the feed {alternates[0]}" if alternates else ""
        super().__init__(url, f"HTML page, not a feed{hint}")


class ParseTimeout(ParseError):
    pass


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
    fast: bool = True,
) -> ParsedFeed:
    """Parse one feed document; raise NotAFeed or ParseError when it is unusable.

    `fast=False` forces feedparser (the reference; the equivalence test compares both)."""
    if not content.strip():
        raise ParseError(url, "empty response body")
    if looks_like_html(content):
        raise NotAFeed(url, discover_feeds(content, url))
    if content.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"{":
        return parse_json_feed(content, url, max_entries, max_entry_chars)
    content = without_impossible_references(content)
    if fast:
        quick = fast_parse(content, content_type, max_entries, max_entry_chars)
        if quick is not None:
            return quick
    return reference_parse(content, url, content_type, max_entries, max_entry_chars)


# Numeric references long enough to name a surrogate (U+D800-DFFF) or a code point past
# U+10FFFF; the callback decides. Shorter ones (&#8217;, &#xE9;) are never looked at.
_LONG_REFERENCE = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{4,})|([0-9]{5,}));")


def without_impossible_references(content: bytes) -> bytes:
    """The document with each reference to a character that cannot exist (&#xDFFF;,
    &#x110000;: emitted by some publishers' systems) made U+FFFD: one of them failed the
    whole feed (a UnicodeEncodeError deep in feedparser), its good items with it."""
    if b"&#" not in content:
        return content
    return _LONG_REFERENCE.sub(_replacement, content)


def _replacement(match: re.Match[bytes]) -> bytes:
    hex_digits, decimal = match.groups()
    digits = (hex_digits or decimal).lstrip(b"0") or b"0"
    if len(digits) > 8:  # past U+10FFFF in either base (and int() refuses thousands)
        return b"&#xFFFD;"
    code = int(digits, 16) if hex_digits else int(digits)
    if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
        return b"&#xFFFD;"
    return match.group(0)


class _BufferedExpatReader(xml.sax.expatreader.ExpatParser):
    """The SAX reader feedparser gets (`create_parser`): expat with `buffer_text` on, so
    a run of character data reaches feedparser in one call instead of one per line or
    entity. feedparser only appends the pieces and joins them (or escapes each one,
    character by character, for XHTML), so the result is the same: the whole feedparser
    result (entries, feed, bozo and its message) is identical over the 2,306 corpus files
    (tests/test_parse_equivalence.py), for ~20 % less of its time."""

    def reset(self) -> None:
        super().reset()
        self._parser.buffer_text = True  # type: ignore[attr-defined]


def create_parser() -> xml.sax.expatreader.ExpatParser:
    """SAX driver entry point: `xml.sax.make_parser(["chipwatch.parse"])` calls it."""
    return _BufferedExpatReader()


def use_buffered_sax(enabled: bool = True) -> None:
    """Make feedparser's strict parser use `create_parser` (it asks `xml.sax.make_parser`
    for the drivers named in `feedparser.api.PREFERRED_XML_PARSERS` first)."""
    drivers = feedparser.api.PREFERRED_XML_PARSERS
    if __name__ in drivers:
        drivers.remove(__name__)
    if enabled:
        drivers.insert(0, __name__)


use_buffered_sax()


def reference_parse(
    content: bytes, url: str, content_type: str, max_entries: int, max_entry_chars: int
) -> ParsedFeed:
    """feedparser: the reference for every document the fast path declines."""
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


# --- the fast path: fastfeedparser where it is proven to agree with feedparser ------------

# Content types feedparser reads as UTF-8 by default (text/* defaults to US-ASCII there).
_FAST_TYPES = {"", "application/xml", "application/rss+xml", "application/atom+xml"}
_XML_DECL = re.compile(rb"^<\?xml[^>]*?encoding\s*=\s*[\"']([^\"']+)[\"']", re.I)
# Elements feedparser maps onto an entry's title, summary or content and fastfeedparser
# does not (media:description, dc:description, itunes:summary, dc:title, xhtml:body...).
_ALIASES = re.compile(
    rb"<(?:[A-Za-z_][\w.-]*:(?:description|summary|abstract|body|title)|abstract|fullitem|body)"
    rb"[\s/>]"
)
# Text constructs other than plain text or escaped HTML (inline XHTML, base64, Atom 0.3
# modes): feedparser decodes them, fastfeedparser does not.
_SPECIAL_TEXT = re.compile(
    rb"<(?:title|summary|content|subtitle|description)\b[^>]*?"
    rb"(?:\btype\s*=\s*[\"'](?!(?:text|html|text/html|text/plain)[\"'])|\bmode\s*=)"
)
_ATOM_1 = b"http://www.w3.org/2005/Atom"
# A DOCTYPE with a name only: no external identifier, no internal subset.
_BARE_DOCTYPE = re.compile(
    rb"<!DOCTYPE[ \t\r\n]+(?![Nn][Ee][Tt][Ss][Cc][Aa][Pp][Ee])\w+[ \t\r\n]*>"
)
_LINK = re.compile(rb"<link[\s>/]")
_RSS_ROOT = re.compile(rb"<rss[\s>]")
_ATOM_ROOT = re.compile(rb"<feed[\s>]")
_FIRST_ITEM = re.compile(rb"<(?:item|entry)[\s>]")
_TTL = re.compile(rb"<ttl>([^<]*)</ttl>")
_ITEM = re.compile(rb"<item[\s>]")
_ENTRY = re.compile(rb"<entry[\s>]")


class _Decline(Exception):
    """The fast result is not known to match feedparser's: use feedparser."""


_ALIAS_NAMES = {"description", "summary", "abstract", "body", "title"}
_ALIAS_PLAIN = {"abstract", "fullitem", "body"}
_TEXT_NAMES = {"title", "summary", "content", "subtitle", "description"}
_PLAIN_TYPES = {"text", "html", "text/html", "text/plain"}


def _check_element(name: str, attributes: dict[str, str]) -> None:
    prefix, _, local = name.rpartition(":")
    if (prefix and local in _ALIAS_NAMES) or name in _ALIAS_PLAIN:
        raise _Decline
    if name in _TEXT_NAMES and (
        "mode" in attributes or attributes.get("type", "text") not in _PLAIN_TYPES
    ):
        raise _Decline


# The Media RSS namespace, under the prefix feedparser knows it by.
_MRSS_DECLARATIONS = tuple(
    b"xmlns:media=" + quote + uri + quote
    for uri in (b"http://search.yahoo.com/mrss/", b"http://search.yahoo.com/mrss")
    for quote in (b'"', b"'")
)


# The iTunes namespace URIs feedparser maps to its `itunes` prefix (compared lower-cased,
# `track_namespace`); every declaration of the `itunes` prefix must bind one of them.
_ITUNES_DECLARATION = re.compile(
    rb"xmlns:itunes\s*=\s*([\"'])(?i:http://(?:www\.itunes|example)\.com/dtds/podcast-1\.0\.dtd)\1"
)
_ITUNES_PREFIX = re.compile(rb"xmlns:itunes\s*=")


def _bound_to_itunes(content: bytes) -> bool:
    """The `itunes` prefix is declared, and only ever bound to an iTunes namespace URI."""
    declared = len(_ITUNES_DECLARATION.findall(content))
    return 0 < declared == len(_ITUNES_PREFIX.findall(content))


# feedparser's summary-like elements (`_start_description`, `_start_summary`; a media
# description is read by the same code) and content elements (`_start_content`,
# `_start_content_encoded`), under the names expat gives them in an entry.
_SUMMARY_LIKE = {"description", "summary", "media:description"}
_CONTENT_LIKE = {"content", "content:encoded"}
# Elements that move feedparser's `_get_context` away from the entry, or its entry.
_CONTEXT_CHANGERS = {"source", "image", "textinput", "channel", "feed", "rss"}
# Local names feedparser may read as a summary or content block under another name
# (case variants, other prefixes: it maps prefixes by namespace URI, lower-cased).
_TEXT_LOCALS = {"description", "summary", "content", "encoded", "abstract", "body", "fullitem"}
# Outside entries, the ones that can add a summary to the feed's context (after which a
# `<description>` there is read as content and sets `hasContent` for the next entry).
_FEED_SUMMARY_LOCALS = _TEXT_LOCALS - {"description", "abstract"}
_CONTENT_MODULE = "http://purl.org/rss/1.0/modules/content/"
# Text constructs feedparser neither base64-decodes (`_is_base64`) nor reads as XHTML.
_TEXT_TYPES = {"text", "plain", "html", "text/plain", "text/html"}


def _unmodelled_text(name: str) -> bool:
    """A name feedparser could map onto a summary or content other than as expat spells
    it: `Description`, `atom:content`, `c:encoded` (`media:*` is bound to Media RSS)."""
    lower = name.lower()
    prefix, _, local = lower.rpartition(":")
    if lower != name:
        return local in _TEXT_LOCALS or lower in _CONTEXT_CHANGERS
    if not prefix or prefix == "media" or lower == "content:encoded":
        return False
    return local in _TEXT_LOCALS


def _plain_text_construct(attributes: dict[str, str]) -> bool:
    """No `mode`, and a type feedparser keeps as text (it lower-cases attribute names)."""
    for key, value in attributes.items():
        key = key.lower()
        if key == "mode" or (key == "type" and value.lower() not in _TEXT_TYPES):
            return False
    return True


class _EntryTexts:
    """One entry's summary and content blocks as feedparser builds them, replayed from
    expat events. A summary-like element found a summary and no content yet becomes a
    content block (and that sets `hasContent`); otherwise it is stored as the summary,
    unless a summary was stored from a shallower element (`property_depth_map`). A
    content element sets `hasContent` and becomes the summary too if there is none."""

    def __init__(self, doubtful: bool) -> None:
        self.summary: str | None = None
        self.summary_depth: int | None = None  # None: unset, or copied from a content
        self.contents: list[str] = []
        self.replayed = False  # holds a media description or an iTunes summary
        self.doubtful = doubtful  # a shape the replay does not model

    def close(self, as_content: bool, summary_like: bool, depth: int, value: str) -> None:
        if as_content:
            self.contents.append(value)
            if not summary_like and self.summary is None:
                self.summary = value  # `_end_content` copies text content to the summary
        elif self.summary_depth is None or depth <= self.summary_depth:
            self.summary, self.summary_depth = value, depth

    def longest(self) -> str:
        """`_longest_text` of feedparser's entry; raises _Decline for text it rewrites."""
        candidates = [self.summary or "", *self.contents]
        for value in candidates:
            _same_text(value)
        return max(candidates, key=len)


class _ElementCheck:
    """expat handlers refusing (`_Decline`) the elements of `_ALIASES`/`_SPECIAL_TEXT`,
    except a `media:title`/`itunes:title` inside an item or entry whose own `<title>` has
    text, and a `media:description`/`itunes:summary` inside an entry whose text blocks it
    can replay (`texts`), and the feed's own `itunes:summary` alone.

    feedparser reads `media:title` as a title too, but keeps the shallowest non-empty
    title of an entry (`title_depth`, `property_depth_map`): the entry's own `<title>`
    wins wherever the media title stands, unless a `<source>` came in between (it resets
    `title_depth`), so an entry with a `<source>` and a media title is refused.

    feedparser reads `media:description` as a `<description>`: it becomes the summary or
    an extra content block depending on the order, `hasContent` and depths. For an entry
    holding one, `_EntryTexts` replays that from the bytes and `texts` keeps the text
    `_longest_text` would pick, by entry index; `count` is the number of entries seen.
    Declined: a text element with child elements, `mode` or a non-text type, another
    spelling or prefix of a text element, a `<source>`/`<image>`/`<textinput>` in the
    entry, a default namespace other than Atom's on the root, `content` bound to another
    namespace, a summary or content outside entries before it (it can set `hasContent`
    for the next entry), and a media description outside entries.

    feedparser reads `itunes:summary` (prefix bound to the iTunes namespace only) as a
    `<summary>`: the same rules as a `<description>` for an entry's text (their default
    content types differ, which changes no value), so it is replayed the same way. The
    feed's own iTunes summary becomes the feed's summary and touches no entry unless a
    summary or content is next to it (`_feed_itunes_summary`). `itunes:title` is kept
    apart by feedparser (`itunes_title`), but fastfeedparser takes an item's first
    *:title child as the title: accepted after the item's own non-blank `<title>`."""

    def __init__(self, parser: Any, media_names: bool, itunes_names: bool) -> None:
        self.parser = parser  # text is only collected inside the elements that matter
        self.media_titles = media_names
        self.itunes = itunes_names  # `itunes` bound to the iTunes namespace only
        self.depth = 0
        self.item_depth = 0  # depth of the open item/entry, 0 outside one
        self.in_title = False  # inside the open item's own <title>
        self.titled = self.media = self.source = False
        self.count = 0  # items/entries started
        self.texts: dict[int, str] = {}
        self.entry = _EntryTexts(False)
        self.has_content = False  # feedparser's `hasContent`: reset at each entry's end
        self.feed_text = False  # a summary/content outside entries came first
        self.feed_summary = False  # the feed may hold a summary (an iTunes summary)
        self.feed_block = 0  # depth of an open feed-level iTunes summary, 0 if none
        self.namespaced = False  # a default namespace or `content` binding not modelled
        # The open summary/content element: (as content, summary-like, depth, pieces).
        self.block: tuple[bool, bool, int, list[str]] | None = None

    def start(self, name: str, attributes: dict[str, str]) -> None:
        self.depth += 1
        if attributes:  # most elements have none: skip the two look-ups
            self._namespaces(attributes)
        if self.block is not None or self.in_title:
            self.entry.doubtful = True  # feedparser would serialise it into the text
        if self.feed_block:
            raise _Decline  # markup in the feed's iTunes summary: not a proven shape
        if name in ("item", "entry"):
            if self.item_depth:
                raise _Decline  # nested entries: not a shape we have proven
            self.item_depth = self.depth
            self.titled = self.media = self.source = False
            self.entry = _EntryTexts(self.feed_text or self.has_content)
        elif not self.item_depth:
            if name == "itunes:summary" and self.itunes:
                self._feed_itunes_summary()
                return
            self._feed_element(name)
        elif name == "media:title" and self.media_titles:
            if self.depth == self.item_depth + 1 and not self.titled:
                raise _Decline  # fastfeedparser takes an item's first *:title child
            self.media = True
            return
        elif name == "itunes:title" and self.itunes:
            # feedparser keeps it as `itunes_title`; fastfeedparser takes an item's first
            # *:title child as the title, so it must come after a titled <title>.
            if self.depth == self.item_depth + 1 and not self.titled:
                raise _Decline
            return
        elif (name == "media:description" and self.media_titles) or (
            name == "itunes:summary" and self.itunes
        ):
            # read as a <description> (media) or a <summary> (iTunes) by feedparser:
            # the same summary/content rules, replayed
            self.entry.replayed = True
            self._open_block(True, attributes)
            return
        else:
            self._entry_element(name, attributes)
        _check_element(name, attributes)

    def _feed_element(self, name: str) -> None:
        """Outside entries: note what can leave `hasContent` set for the first entry."""
        if name == "media:description":
            raise _Decline  # the feed's own: not a shape we have proven
        lower = name.lower()
        local = lower.rpartition(":")[2]
        summary_or_content = local in _FEED_SUMMARY_LOCALS and not lower.startswith("media:")
        if self.feed_summary and (summary_or_content or name == "description"):
            raise _Decline  # after the feed's iTunes summary: see `_feed_itunes_summary`
        self.feed_text = self.feed_text or summary_or_content

    def _feed_itunes_summary(self) -> None:
        """The feed's iTunes summary (`_start_summary` in the feed's context) is the feed's
        summary if the feed has none and touches no entry. Declined: any summary or
        content element before it or after it (a `<description>` too): with a summary
        there, feedparser makes the next one a content block, which sets `hasContent`
        until the first entry's end; and child elements (see `start`)."""
        if self.feed_summary or self.feed_text:
            raise _Decline
        self.feed_summary = True
        self.feed_block = self.depth

    def _entry_element(self, name: str, attributes: dict[str, str]) -> None:
        if name == "source":
            self.source = True
        elif name == "title" and self.depth == self.item_depth + 1:
            self.in_title = True
            self.parser.CharacterDataHandler = self.text
        if name in _SUMMARY_LIKE or name in _CONTENT_LIKE:
            self._open_block(name in _SUMMARY_LIKE, attributes)
        elif name in _CONTEXT_CHANGERS or _unmodelled_text(name):
            self.entry.doubtful = True

    def _namespaces(self, attributes: dict[str, str]) -> None:
        default = attributes.get("xmlns")
        if default is not None and (self.depth > 1 or default != _ATOM_1.decode()):
            self.namespaced = True
        bound = attributes.get("xmlns:content")
        if bound is not None and bound != _CONTENT_MODULE:
            self.namespaced = True

    def _open_block(self, summary_like: bool, attributes: dict[str, str]) -> None:
        if not _plain_text_construct(attributes):
            self.entry.doubtful = True
        # `_start_description`/`_start_summary`: a content block if a summary exists and
        # no content yet; `_start_content` and `_start_content_encoded` set `hasContent`.
        as_content = not summary_like or (self.entry.summary is not None and not self.has_content)
        self.has_content = self.has_content or as_content
        self.block = (as_content, summary_like, self.depth, [])
        self.parser.CharacterDataHandler = self.text

    def end(self, name: str) -> None:
        if self.feed_block == self.depth:
            self.feed_block = 0
        if self.block is not None and self.depth == self.block[2]:
            as_content, summary_like, depth, pieces = self.block
            self.entry.close(as_content, summary_like, depth, "".join(pieces).strip())
            self.block = None
            if not self.in_title:
                self.parser.CharacterDataHandler = None
        if self.depth == self.item_depth:
            self._end_entry()
        if self.in_title and self.depth == self.item_depth + 1:
            self.in_title = False
            self.parser.CharacterDataHandler = None
        self.depth -= 1

    def _end_entry(self) -> None:
        if self.media and (self.source or not self.titled):
            raise _Decline
        if self.entry.replayed:
            if self.entry.doubtful or self.namespaced:
                raise _Decline
            self.texts[self.count] = self.entry.longest()
        self.item_depth = 0
        self.has_content = False  # `_end_item`
        self.count += 1

    def text(self, data: str) -> None:
        if self.block is not None:
            self.block[3].append(data)
        if self.in_title and not data.isspace():
            self.titled = True


class _Scan(NamedTuple):
    """What the expat pass learnt: entries seen, and the text feedparser would give the
    entries it replayed (index -> `_longest_text`, before `to_text`)."""

    entries: int
    texts: dict[int, str]


def _scan(content: bytes, check_elements: bool) -> _Scan | None:
    """expat: ~5 ms per MB without handlers; None if ill-formed or declined. feedparser
    reads ill-formed XML with its loose parser, whose repairs fastfeedparser does not
    reproduce. `check_elements` also refuses the elements of `_ALIASES` and
    `_SPECIAL_TEXT` when they are real elements, not text that looks like them (HTML in
    CDATA, escaped markup); see `_ElementCheck` for the media elements it accepts."""
    parser = xml.parsers.expat.ParserCreate()
    check = None
    if check_elements:
        # media:* only where the prefix is bound to Media RSS, and only to it.
        declared = sum(content.count(d) for d in _MRSS_DECLARATIONS)
        media = 0 < declared == content.count(b"xmlns:media=")
        itunes = b"xmlns:itunes" in content and _bound_to_itunes(content)
        check = _ElementCheck(parser, media, itunes)
        parser.buffer_text = True  # one call per run of text: only joined anyway
        parser.StartElementHandler = check.start
        parser.EndElementHandler = check.end
    try:
        parser.Parse(content, True)
    except (xml.parsers.expat.ExpatError, _Decline):
        return None
    return _Scan(check.count, check.texts) if check else _Scan(0, {})


def is_well_formed(content: bytes, *, check_elements: bool = False) -> bool:
    """Well-formed for expat and, with `check_elements`, accepted by `_ElementCheck`."""
    return _scan(content, check_elements) is not None


def fast_path_allowed(content: bytes, content_type: str) -> bool:
    """The class of documents the fast parser handles exactly as feedparser does:
    UTF-8 (no other charset in the header or the XML declaration), RSS or Atom 1.0 root,
    well-formed, none of the title/summary aliases only feedparser reads (but media and
    iTunes titles, media descriptions and iTunes summaries `_ElementCheck` accepts), and
    no text construct but text or escaped HTML. See docs/collector.md, "Parsing"."""
    return _admit(content, content_type) is not None


def _admit(content: bytes, content_type: str) -> _Scan | None:
    """`fast_path_allowed`, with what the expat pass learnt when it ran."""
    media, _, params = content_type.lower().partition(";")
    if media.strip() not in _FAST_TYPES:
        return None
    charset = params.partition("charset=")[2].strip().strip("\"'")
    if charset and charset not in ("utf-8", "utf8"):
        return None
    head = content[:4096]
    if head.startswith((b"\xfe\xff", b"\xff\xfe", b"\x00", b"\xef\xbb\xbf")):
        return None
    declared = _XML_DECL.match(head)
    if declared and declared.group(1).lower() not in (b"utf-8", b"utf8"):
        return None
    if b"<!ENTITY" in head:
        return None  # entity declarations: the two parsers expand them differently
    if b"<!DOCTYPE" in head and not (head.count(b"<!DOCTYPE") == 1 and _BARE_DOCTYPE.search(head)):
        return None  # a bare `<!DOCTYPE html>` declares nothing: feedparser drops it
    if not (_RSS_ROOT.search(head) or (_ATOM_ROOT.search(head) and _ATOM_1 in head)):
        return None  # RSS 0.9x/2.0 and Atom 1.0 only (not RDF, not Atom 0.3)
    # The regexes see text too (HTML in CDATA): a hit only means "look at the elements".
    suspect = bool(_ALIASES.search(content) or _SPECIAL_TEXT.search(content))
    return _scan(content, suspect)


def fast_parse(
    content: bytes, content_type: str, max_entries: int, max_entry_chars: int
) -> ParsedFeed | None:
    """fastfeedparser's result as a ParsedFeed, or None: use feedparser instead."""
    if _OUTLET.search(content):
        return None  # fastfeedparser drops an item's <source>: the outlet of news search
    scan = _admit(content, content_type)
    if scan is None:
        return None
    try:
        parsed = fastfeedparser.parse(content)  # bytes: never fetches anything itself
        raw = list(parsed.get("entries") or [])
        if not raw:
            return None  # let feedparser tell an empty feed from a broken one
        if scan.texts and scan.entries != len(raw):
            return None  # the replayed texts are by entry index: same entries needed
        if not all(item.get("title") and item.get("published") for item in raw[:max_entries]):
            return None  # _fast_entry would decline: before converting any text
        ids = _fast_ids(raw, content)
        if ids is None:
            return None
        entries = tuple(
            _fast_entry(item, guid, max_entry_chars, scan.texts.get(index))
            for index, (item, guid) in enumerate(zip(raw[:max_entries], ids, strict=False))
        )
        ttl = _fast_ttl(content)
        feed = parsed.get("feed") or {}
        title = to_text(_same_text(feed.get("title")))[:300]
        site_url = feed.get("link") or None
        if site_url is None and _LINK.search(content[: _head_end(content)]):
            raise _Decline
    except _Decline:
        return None
    except Exception:  # noqa: BLE001 - anything unexpected: the reference decides
        return None
    return ParsedFeed(title=title, entries=entries, ttl_minutes=ttl, site_url=site_url)


_OUTLET = re.compile(rb"<source[\s>]|<[A-Za-z][\w.-]*:Source[\s>]")


def _fast_ids(raw: list[Any], content: bytes) -> list[str | None] | None:
    """fastfeedparser fills a missing id with the link (and a missing RSS link with the
    guid); feedparser leaves them empty. An id equal to its link is resolved by looking
    at that entry's bytes (`_real_id`), else the document goes to feedparser."""
    ids = [_clean_id(item.get("id")) for item in raw]
    links = [_clean_id(item.get("link")) for item in raw]
    linkless = [link is None for link in links]
    same = [i is not None and i == link for i, link in zip(ids, links, strict=True)]
    if not any(same) and not any(linkless):
        return ids
    atom = _RSS_ROOT.search(content[:4096]) is None
    starts = [m.start() for m in (_ENTRY if atom else _ITEM).finditer(content)]
    if len(starts) != len(raw):
        raise _Decline
    chunks = [content[a:b] for a, b in zip(starts, [*starts[1:], len(content)], strict=True)]
    for chunk, missing in zip(chunks, linkless, strict=True):
        if missing and not _surely_linkless(chunk):
            raise _Decline  # feedparser may find a link where fastfeedparser found none
    return [
        _real_id(chunk, value, atom) if ambiguous else value
        for chunk, value, ambiguous in zip(chunks, ids, same, strict=True)
    ]


def _real_id(item: bytes, value: str | None, atom: bool) -> str | None:
    """For an entry whose id equals its link: the id if the entry has both a link and an
    id element holding exactly that value (as text or as one CDATA section), None if it
    has the link and no id element, or (RSS) only empty `<guid>`s: feedparser keeps an
    empty id there, where fastfeedparser falls back to the link."""
    escaped = html.escape(value or "", quote=False).encode("utf-8")
    cdata = b"<![CDATA[" + (value or "").encode("utf-8") + b"]]>"
    links: tuple[bytes, ...]
    if atom:
        links = (b'href="' + escaped + b'"', b"href='" + escaped + b"'")
        elements, tag = (b"<id>" + escaped + b"</id>", b"<id>" + cdata + b"</id>"), b"<id"
    else:
        links = (b"<link>" + escaped + b"</link>", b"<link>" + cdata + b"</link>")
        elements, tag = (b">" + escaped + b"</guid>", b">" + cdata + b"</guid>"), b"<guid"
    if not any(link in item for link in links):
        raise _Decline
    if any(element in item for element in elements):
        return value
    if tag not in item:
        return None
    if not atom and _only_empty_guids(item):
        return None
    raise _Decline


def _surely_linkless(item: bytes) -> bool:
    """An entry without a link for feedparser too: its bytes (up to the next entry) hold
    no "link" at all, in any case and in any role (element, attribute, text: text only
    costs the fast path), no `id` element in any namespace, and only `guid`s with
    `isPermaLink="false"`: feedparser's `_end_guid` (also its `_end_id`) saves the value
    as the link unless `isPermaLink` is present and not "true"."""
    # (the attribute name `isPermaLink` is the one "link" known not to be a link)
    if _ANY_LINK.search(item.replace(b"isPermaLink", b"")) or _ID_ELEMENT.search(item):
        return False
    return len(_GUID_ELEMENT.findall(item)) == len(_NOT_PERMALINK_GUID.findall(item))


_ANY_LINK = re.compile(rb"[Ll][Ii][Nn][Kk]")
_ID_ELEMENT = re.compile(rb"<(?:[\w.-]+:)?id[\s/>]")
_GUID_ELEMENT = re.compile(rb"<(?:[\w.-]+:)?guid[\s/>]")
_NOT_PERMALINK_GUID = re.compile(rb"""<guid\s[^>]*\bisPermaLink\s*=\s*["']false["']""")
_EMPTY_GUID = re.compile(rb"<guid(?:\s[^>]*)?(?:/>|>\s*</guid>)")


def _only_empty_guids(item: bytes) -> bool:
    """Every `<guid` of the item's bytes is an empty element, and no `<id>`/`x:id` could
    give feedparser another id."""
    if b"<id" in item or b":id>" in item:
        return False
    return item.count(b"<guid") == len(_EMPTY_GUID.findall(item))


def _head_end(content: bytes) -> int:
    first = _FIRST_ITEM.search(content)
    return first.start() if first else len(content)


def _fast_ttl(content: bytes) -> int | None:
    head = content[: _head_end(content)]
    if b"<ttl" not in head:
        return None
    found = _TTL.search(head)
    if found is None:
        raise _Decline
    return _int_or_none(found.group(1).decode("utf-8", "replace"))


def _fast_entry(item: Any, guid: str | None, max_chars: int, text: str | None) -> FeedEntry:
    """`text`: the entry's text replayed from the bytes (`_EntryTexts`), if it was."""
    if text is None:
        texts = [_same_text(item.get("description"))]
        texts += [
            _same_text(c.get("value")) for c in item.get("content") or [] if isinstance(c, dict)
        ]
        text = max(texts, key=len)
    title = to_text(_same_text(item.get("title")))[:1000]
    published = _fast_date(item.get("published"))
    if not title or published is None:
        raise _Decline  # feedparser may find them in elements fastfeedparser skips
    author = item.get("author")
    if author is not None and not isinstance(author, str):
        raise _Decline  # converted later (FeedEntry.author): only text is known to work
    return FeedEntry(
        guid=guid,
        url=_clean_id(item.get("link")),
        title=title,
        markup=text,
        published=published,
        author_markup=author,
        max_chars=max_chars,
    )


def _same_text(value: object) -> str:
    """Decline text feedparser would rewrite: UTF-8 read as Latin-1 (re-decoded there)
    and C1 controls (mapped to their Windows-1252 characters there)."""
    if not value:
        return ""
    if not isinstance(value, str):
        raise _Decline
    if not value.isascii():
        # C1 controls are U+0080..U+009F: in UTF-8 exactly 0xC2 then 0x80..0x9F (0xC2 is
        # only ever a lead byte). A bytes search with a literal first byte is ~3x faster
        # than a character-class search over the str (28 MB of entry text per 200 feeds).
        if _C1_UTF8.search(value.encode("utf-8", "surrogatepass")):
            raise _Decline
        # Latin-1 encodable (every character < U+0100) and valid UTF-8 once encoded.
        # encode() stops at the first wider character, in C (max(value) was 40 % of the
        # fast path's own time on long texts).
        try:
            value.encode("iso-8859-1").decode("utf-8")
        except UnicodeError:
            return value
        raise _Decline
    return value


_C1_UTF8 = re.compile(b"\xc2[\x80-\x9f]")


def _fast_date(value: object) -> datetime | None:
    if not value:
        return None
    if not isinstance(value, str):
        raise _Decline
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _Decline from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment.replace(microsecond=0)  # feedparser's struct_time has whole seconds


def parse_json_feed(content: bytes, url: str, max_entries: int, max_chars: int) -> ParsedFeed:
    """JSON Feed 1.0/1.1 (feedparser 6 reads XML only)."""
    try:
        document = json_document(content.decode("utf-8-sig"))
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
        title=to_text(_json_text(document.get("title")))[:300],
        entries=tuple(entries),
        site_url=_clean_id(document.get("home_page_url")),
    )


def _json_text(value: object) -> str:
    """A JSON Feed text field: a string (or a number, written as one); a list, an object or
    a boolean is no text (it was stored as its Python repr, "['list']")."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _json_entry(item: dict[str, Any], max_chars: int) -> FeedEntry:
    texts = [_json_text(item.get(k)) for k in ("content_html", "content_text", "summary")]
    authors = item.get("authors") or (
        [item["author"]] if isinstance(item.get("author"), dict) else []
    )
    author = next(
        (_json_text(a.get("name")) for a in authors if isinstance(a, dict) and a.get("name")),
        None,
    )
    return FeedEntry(
        guid=_clean_id(str(item["id"])) if item.get("id") is not None else None,
        url=_clean_id(item.get("url") or item.get("external_url")),
        title=to_text(_json_text(item.get("title")))[:1000],
        markup=max(texts, key=len),
        published=_iso_date(item.get("date_published") or item.get("date_modified")),
        author_markup=author,
        max_chars=max_chars,
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
        markup=_longest_text(entry),
        published=_date(entry),
        author_markup=entry.get("author"),
        max_chars=max_chars,
        outlet=_outlet(entry),
    )


def _outlet(entry: Any) -> str | None:
    """The publisher an item names: RSS `<source>` (Google News), Bing's `News:Source`."""
    source = entry.get("source")
    title = source.get("title") if isinstance(source, dict) else None
    title = title or entry.get("news_source")
    if not isinstance(title, str):
        return None
    return to_text(title).strip()[:300] or None


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
    for key in ("published", "updated", "created"):
        value = entry.get(f"{key}_parsed")
        if value:
            if _impossible_offset(entry.get(key)):
                return None  # then dated by its fetch, as an undated entry
            with contextlib.suppress(TypeError, ValueError):
                return datetime(*value[:6])  # feedparser gives UTC struct_time
    return None


# A zone offset at the end of a date: feedparser applies "+9999" as 99 h 99 min.
_OFFSET = re.compile(r"[+-](\d\d):?(\d\d)\s*$")


def _impossible_offset(raw: object) -> bool:
    """An offset no zone has (beyond 14 hours, or 60 minutes and more): the date is a guess."""
    found = _OFFSET.search(raw) if isinstance(raw, str) else None
    if found is None:
        return False
    return int(found.group(1)) > 14 or int(found.group(2)) > 59


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
