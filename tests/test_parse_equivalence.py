"""The fast parser in front of feedparser gives the same entries as feedparser alone.

Over every file of ../shared/feeds/ (realworld/ and feedparser-corpus/), `parse_feed`
with the fast path (fastfeedparser where `fast_path_allowed` and its cross-checks accept
the document, feedparser otherwise) must give what `parse_feed(fast=False)` gives:

- the same outcome kind: both parse, or both raise the same error class and message;
- the same feed title, site URL and TTL;
- the same entries in the same order, compared on what chipwatch stores of them: guid,
  URL, title, summary text and published date. Title and summary are compared *after*
  our plain-text conversion (`to_text`: tags stripped, entities unescaped, whitespace
  collapsed per line), exactly, character for character; dates to the second (feedparser
  has no sub-second precision), as naive UTC. The author is not compared: it is not
  stored.

The test also reports how many files took the fast path, and requires most of the
realworld feeds to take it (otherwise the fast path would be dead code).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from chipwatch.errors import ParseError
from chipwatch.parse import fast_parse, parse_feed

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "feeds"
CORPORA = (SHARED / "realworld", SHARED / "feedparser-corpus")
CONTENT_TYPE = "application/xml"  # what tests/feedserver.py serves corpus files as

pytestmark = pytest.mark.skipif(
    not all(c.is_dir() for c in CORPORA),
    reason=f"feed corpora absent: expected {SHARED} (see ../shared/feeds/README.md)",
)


def _view(content: bytes, fast: bool) -> object:
    """What chipwatch keeps of one parse, as plain comparable values."""
    try:
        feed = parse_feed(content, "http://corpus.test/feed", CONTENT_TYPE, fast=fast)
    except ParseError as exc:
        return ("error", type(exc).__name__, str(exc))
    entries = [(e.guid, e.url, e.title, e.summary, e.published) for e in feed.entries]
    return ("feed", feed.title, feed.site_url, feed.ttl_minutes, entries)


def compare(path: Path) -> tuple[str, bool, str | None]:
    """(path, took the fast path, difference or None) for one file (in a worker)."""
    content = path.read_bytes()
    took_fast = fast_parse(content, CONTENT_TYPE, 500, 100_000) is not None
    reference, combined = _view(content, fast=False), _view(content, fast=True)
    if reference == combined:
        return str(path), took_fast, None
    return str(path), took_fast, _first_difference(reference, combined)


def _first_difference(reference: object, combined: object) -> str:
    if not (isinstance(reference, tuple) and isinstance(combined, tuple)):
        return "?"
    if reference[0] != combined[0] or reference[0] == "error":
        return f"outcome {reference[:3]!r} != {combined[:3]!r}"
    for name, a, b in zip(("title", "site_url", "ttl"), reference[1:4], combined[1:4], strict=True):
        if a != b:
            return f"feed {name}: {a!r} != {b!r}"
    ref_entries, got_entries = reference[4], combined[4]
    if len(ref_entries) != len(got_entries):
        return f"{len(ref_entries)} entries != {len(got_entries)}"
    fields = ("guid", "url", "title", "summary", "published")
    for i, (a, b) in enumerate(zip(ref_entries, got_entries, strict=True)):
        for name, x, y in zip(fields, a, b, strict=True):
            if x != y:
                return f"entry {i} {name}: {str(x)[:120]!r} != {str(y)[:120]!r}"
    return "?"


def _files() -> Iterator[Path]:
    for corpus in CORPORA:
        yield from sorted(p for p in corpus.rglob("*") if p.is_file())


def test_fast_path_gives_the_same_entries_as_feedparser_on_every_corpus_file() -> None:
    files = list(_files())
    assert len(files) > 2300
    with ProcessPoolExecutor(max_workers=2) as workers:
        results = list(workers.map(compare, files, chunksize=16))
    differences = [(path, diff) for path, _, diff in results if diff is not None]
    fast = [path for path, took_fast, _ in results if took_fast]
    realworld = [p for p in fast if "/realworld/" in p]
    print(
        f"\n{len(files)} files: {len(fast)} through fastfeedparser "
        f"({len(realworld)} of 200 realworld), {len(files) - len(fast)} through feedparser"
    )
    assert not differences, differences[:10]
    assert len(realworld) >= 150  # the fast path must carry most real feeds


def _feedparser_view(content: bytes) -> tuple[object, ...]:
    import feedparser

    result = feedparser.parse(
        content,
        response_headers={"content-type": CONTENT_TYPE},
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    return (
        repr(result.get("feed")),
        repr(result.get("entries")),
        result.get("bozo"),
        str(result.get("bozo_exception")),
        result.get("version"),
    )


def compare_buffered(path: Path) -> tuple[str, bool]:
    """(path, same) for feedparser with expat's `buffer_text` on and off (in a worker)."""
    from chipwatch.parse import use_buffered_sax

    content = path.read_bytes()
    try:
        use_buffered_sax(False)
        plain = _feedparser_view(content)
        use_buffered_sax(True)
        buffered = _feedparser_view(content)
    finally:
        use_buffered_sax(True)
    return str(path), plain == buffered


def test_buffered_sax_reader_gives_feedparser_the_same_result_on_every_corpus_file() -> None:
    """`parse.create_parser` (expat with `buffer_text`) changes nothing feedparser returns:
    every key of its result that chipwatch could read, and the error, compared whole."""
    import xml.sax

    import feedparser.api

    from chipwatch.parse import _BufferedExpatReader

    assert isinstance(
        xml.sax.make_parser(feedparser.api.PREFERRED_XML_PARSERS), _BufferedExpatReader
    )
    files = list(_files())
    with ProcessPoolExecutor(max_workers=2) as workers:
        results = list(workers.map(compare_buffered, files, chunksize=16))
    assert [path for path, same in results if not same] == []
