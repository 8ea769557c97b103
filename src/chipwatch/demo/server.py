"""A loopback HTTP server with the demo's sample feeds (RSS 2.0, with ETag and 304)."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape

from chipwatch.demo.samples import ENGLISH_WIRE, FRENCH_GENERAL, SampleItem
from chipwatch.types import CorpusDocument

_FALLBACK_DATE = "2025-07-16"  # undated corpus articles tell the mid-July H20 story


def corpus_items(documents: Iterable[CorpusDocument]) -> tuple[SampleItem, ...]:
    """The corpus articles as feed items: the opening sentence as headline."""
    return tuple(_corpus_item(doc) for doc in documents)


def _corpus_item(doc: CorpusDocument) -> SampleItem:
    text = doc.text.strip()
    day = doc.published or _FALLBACK_DATE
    if len(day) == 7:  # a month only
        day += "-15"
    # Corpus titles default to the opening text, too long for a headline.
    return SampleItem(doc.id, _headline(text), text, f"{day}T08:00:00Z", True)


def _headline(text: str, limit: int = 110) -> str:
    first = re.split(r"(?<=[.!?])\s|\n", text, maxsplit=1)[0]
    if len(first) <= limit:
        return first
    return first[:limit].rsplit(" ", 1)[0] + "…"


def rss(title: str, base_url: str, items: Iterable[SampleItem]) -> bytes:
    entries = "".join(_rss_item(base_url, item) for item in items)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>{escape(base_url)}</link>"
        f"<description>{escape(title)}</description><ttl>30</ttl>{entries}</channel></rss>"
    ).encode()


def _rss_item(base_url: str, item: SampleItem) -> str:
    date = format_datetime(datetime.fromisoformat(item.published.replace("Z", "+00:00")))
    link = f"{base_url}/articles/{item.slug}"
    return (
        f"<item><title>{escape(item.title)}</title><link>{escape(link)}</link>"
        f'<guid isPermaLink="false">{escape(item.slug)}</guid><pubDate>{date}</pubDate>'
        f"<description>{escape(item.text)}</description></item>"
    )


def demo_feeds(base_url: str, corpus: Iterable[CorpusDocument]) -> dict[str, bytes]:
    """Path -> feed document for the three demo feeds."""
    return {
        "/presse-fr.xml": rss("La presse tech (démo)", base_url, corpus_items(corpus)),
        "/wire-en.xml": rss("Tech and trade wire (demo)", base_url, ENGLISH_WIRE),
        "/general-fr.xml": rss("Actualités générales (démo)", base_url, FRENCH_GENERAL),
    }


class _FeedHandler(BaseHTTPRequestHandler):
    documents: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802 - name fixed by http.server
        body = self.documents.get(self.path)
        if body is None:
            self.send_error(404)
            return
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # the demo prints its own summary


@contextmanager
def serve_demo_feeds(corpus: Iterable[CorpusDocument]) -> Iterator[tuple[str, list[str]]]:
    """Serve the demo feeds on 127.0.0.1; yield the base URL and the feed URLs."""
    documents: dict[str, bytes] = {}
    # A handler class per server, so two demo servers never share their documents.
    handler = type("DemoFeedHandler", (_FeedHandler,), {"documents": documents})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    base_url = f"http://127.0.0.1:{server.server_address[1]}"
    documents.update(demo_feeds(base_url, list(corpus)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base_url, [base_url + path for path in documents]
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    """`python -m chipwatch.demo.server`: serve the sample feeds until stopped, printing
    one feed URL per line (scripts/check_wheel.sh polls them from an installed wheel)."""
    import signal
    import sys

    from chipwatch.classify.corpus import load_corpus
    from chipwatch.settings import PACKAGED_CONFIG_DIR

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with serve_demo_feeds(load_corpus(PACKAGED_CONFIG_DIR / "corpus")) as (_, urls):
        print("\n".join(urls), flush=True)
        with suppress(KeyboardInterrupt):
            stop.wait()
    sys.exit(0)


if __name__ == "__main__":
    main()
