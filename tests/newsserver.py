"""Loopback stand-ins for news-search services and publishers (tests and bench-sources).

    with Site("127.0.0.2", latency=(0.02, 0.2)) as site:      # a publisher
        site.page("/2026/12/chips", article_page("Title", paragraphs))
    with GoogleNewsService() as google:                      # feed + link decoder
        link = google.link_to("https://127.0.0.2:port/2026/12/chips")
        google.feed("/rss/search", google_news_rss([...]))

`GoogleNewsService` speaks the protocol of Google's current links: an item links to
`/rss/articles/<id>`, whose page carries a signature and a timestamp
(`data-n-a-sg`, `data-n-a-ts`); a POST to `/_/DotsSplashUi/data/batchexecute` with
`f.req` = the (id, timestamp, signature) triples answers each with the publisher's URL
(a wrong signature gets no answer). Every `Site` counts requests and the most requests
it had in flight at once, for the politeness checks. The texts are our own words.
"""

from __future__ import annotations

import base64
import json
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

Answer = tuple[int, dict[str, str], bytes]
Handler = Callable[[str, str, bytes], Answer]  # (path, query, body) -> answer


class Site:
    """A threaded HTTP/1.1 server on one loopback address with GET/POST routes."""

    def __init__(
        self, host: str = "127.0.0.1", latency: tuple[float, float] = (0.0, 0.0), seed: int = 0
    ) -> None:
        self.routes: dict[tuple[str, str], Handler] = {}
        self.hits: Counter[str] = Counter()
        self.arrivals: list[float] = []  # time.monotonic() of each request
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.latency = latency
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def origin(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.origin + path

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    def page(
        self,
        path: str,
        body: bytes | str,
        content_type: str = "text/html; charset=utf-8",
        etag: str | None = None,
    ) -> str:
        data = body.encode() if isinstance(body, str) else body
        headers = {"Content-Type": content_type, **({"ETag": etag} if etag else {})}
        self.route("GET", path, lambda _p, _q, _b: (200, headers, data))
        return self.url(path)

    def slow_page(self, path: str, seconds: float, body: str) -> str:
        def answer(_p: str, _q: str, _b: bytes) -> Answer:
            time.sleep(seconds)
            return 200, {"Content-Type": "text/html"}, body.encode()

        self.route("GET", path, answer)
        return self.url(path)

    def __enter__(self) -> Site:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _delay(self) -> float:
        low, high = self.latency
        with self._lock:
            return self._random.uniform(low, high) if high > 0 else 0.0


def _handler_for(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802
            self._answer("GET", b"")

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            self._answer("POST", self.rfile.read(length))

        def _answer(self, method: str, body: bytes) -> None:
            parts = urlsplit(self.path)
            with site._lock:
                site.requests += 1
                site.arrivals.append(time.monotonic())
                site.hits[parts.path] += 1
                site.in_flight += 1
                site.max_in_flight = max(site.max_in_flight, site.in_flight)
            try:
                time.sleep(site._delay())
                handler = site.routes.get((method, parts.path))
                if handler is None:
                    status, headers, data = 404, {"Content-Type": "text/html"}, NOT_FOUND_PAGE
                else:
                    status, headers, data = handler(parts.path, parts.query, body)
                etag = headers.get("ETag")
                if status == 200 and etag and self.headers.get("If-None-Match") == etag:
                    status, data = 304, b""
            finally:
                with site._lock:
                    site.in_flight -= 1
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    return Handler


NOT_FOUND_PAGE = (
    b"<html><head><title>Page not found</title></head><body><h1>Page not found</h1>"
    b"<p>The page you asked for has moved or never existed. Try our home page.</p>"
    b"</body></html>"
)


# --- Google News -------------------------------------------------------------------------


class GoogleNewsService(Site):
    """Google News stand-in: search feeds, article pages with signatures, the decoder."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.targets: dict[str, str] = {}  # article id -> publisher URL
        self.signatures: dict[str, tuple[str, str]] = {}  # id -> (signature, timestamp)
        self.decoded = 0  # ids answered by the decoder
        self.batch_calls = 0
        self.route("POST", "/_/DotsSplashUi/data/batchexecute", self._batch)

    def link_to(self, target: str, old_style: bool = False) -> str:
        """A Google News item link for `target`: current style (an opaque id that needs
        the decoder) or old style (the URL inside the base64 id)."""
        if old_style:
            raw = target.encode()
            article_id = base64.urlsafe_b64encode(
                b"\x08\x13\x22" + bytes([len(raw)]) + raw + b"\xd2\x01\x00"
            ).decode()
            article_id = article_id.rstrip("=")
        else:
            article_id = "AU_yqL" + secrets.token_urlsafe(24)
            self.signatures[article_id] = (secrets.token_urlsafe(18), str(1764600000))
            self.route("GET", f"/rss/articles/{article_id}", self._article_page)
        self.targets[article_id] = target
        return self.url(f"/rss/articles/{article_id}?oc=5")

    def redirect_link(self, target: str) -> str:
        """An older behaviour: the article page redirects straight to the publisher."""
        article_id = "CBMi" + secrets.token_urlsafe(12)
        self.route(
            "GET",
            f"/rss/articles/{article_id}",
            lambda _p, _q, _b: (302, {"Location": target}, b""),
        )
        return self.url(f"/rss/articles/{article_id}?oc=5")

    def feed(self, path: str, body: bytes, etag: str | None = None) -> str:
        return self.page(path, body, "application/xml; charset=utf-8", etag)

    def _article_page(self, path: str, _query: str, _body: bytes) -> Answer:
        article_id = path.rsplit("/", 1)[1]
        signature, timestamp = self.signatures[article_id]
        html = (
            "<!doctype html><html><head><title>Google News</title></head><body><c-wiz>"
            f'<div jscontroller="aLI87" data-n-a-id="{article_id}" '
            f'data-n-a-ts="{timestamp}" data-n-a-sg="{signature}"></div>'
            "</c-wiz><p>Opening the article...</p></body></html>"
        )
        return 200, {"Content-Type": "text/html; charset=utf-8"}, html.encode()

    def _batch(self, _path: str, _query: str, body: bytes) -> Answer:
        self.batch_calls += 1
        form = parse_qs(body.decode())
        calls = json.loads(form["f.req"][0])[0]
        rows = []
        for rpc, payload, _none, call_id in calls:
            request = json.loads(payload)
            article_id, timestamp, signature = request[2], str(request[3]), request[4]
            if rpc != "Fbv4je" or request[0] != "garturlreq":
                continue
            if self.signatures.get(article_id) != (signature, timestamp):
                continue  # a wrong signature gets no answer, as from the real service
            self.decoded += 1
            answer = json.dumps(["garturlres", self.targets[article_id], 1])
            rows.append(["wrb.fr", "Fbv4je", answer, None, None, None, call_id])
        rows.append(["di", 27])
        text = ")]}'\n\n" + json.dumps(rows)
        return 200, {"Content-Type": "application/json; charset=utf-8"}, text.encode()


# --- documents in the services' formats ---------------------------------------------------


@dataclass(frozen=True)
class NewsItem:
    title: str  # without the outlet
    link: str
    outlet: str
    outlet_url: str = "https://outlet.example"
    guid: str | None = None
    pub_date: str = "Tue, 01 Dec 2026 08:00:00 GMT"


def google_news_rss(items: list[NewsItem], query: str = "chips") -> bytes:
    """A Google News search feed: title " - Outlet", <source>, a description that is
    the headline and the outlet's name."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>',
        '<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>',
        "<generator>NFE/5.0</generator>",
        f'<title>"{escape(query)}" - Google News</title>',
        "<link>https://news.google.com/search?hl=en-US&amp;gl=US&amp;ceid=US:en</link>",
        "<language>en-US</language><webMaster>news-webmaster@google.com</webMaster>",
        "<copyright>2026 Google LLC</copyright>",
        "<lastBuildDate>Tue, 01 Dec 2026 09:00:00 GMT</lastBuildDate>",
        "<description>Google News</description>",
    ]
    for item in items:
        guid = item.guid or item.link.rsplit("/", 1)[1].split("?")[0]
        description = (
            f'<a href="{escape(item.link)}" target="_blank">{escape(item.title)}</a>'
            f'&nbsp;&nbsp;<font color="#6f6f6f">{escape(item.outlet)}</font>'
        )
        parts += [
            "<item>",
            f"<title>{escape(item.title)} - {escape(item.outlet)}</title>",
            f"<link>{escape(item.link)}</link>",
            f'<guid isPermaLink="false">{escape(guid)}</guid>',
            f"<pubDate>{item.pub_date}</pubDate>",
            f"<description>{escape(description)}</description>",
            f'<source url="{escape(item.outlet_url)}">{escape(item.outlet)}</source>',
            "</item>",
        ]
    parts.append("</channel></rss>")
    return "\n".join(parts).encode()


def bing_link(bing_origin: str, target: str, tid: str = "7F3A") -> str:
    from urllib.parse import quote

    return (
        f"{bing_origin}/news/apiclick.aspx?ref=FexRss&aid=&tid={tid}"
        f"&url={quote(target, safe='')}&c=1093847562&mkt=en-us"
    )


def bing_news_rss(items: list[NewsItem], teaser: str = "") -> bytes:
    """A Bing News search feed (`format=rss`): links through apiclick.aspx, the outlet
    in `News:Source`, a teaser of a sentence or two."""
    parts = [
        '<?xml version="1.0" encoding="utf-8" ?>',
        '<rss version="2.0" xmlns:News="https://www.bing.com/news/search?q=chips&amp;format=rss">',
        "<channel><title>chips - BingNews</title>",
        "<link>https://www.bing.com/news/search?q=chips&amp;format=rss</link>",
        "<description>Search results</description>",
    ]
    for item in items:
        parts += [
            "<item>",
            f"<title>{escape(item.title)}</title>",
            f"<link>{escape(item.link)}</link>",
            f"<description>{escape(teaser or item.title + '.')}</description>",
            f"<pubDate>{item.pub_date}</pubDate>",
            f"<News:Source>{escape(item.outlet)}</News:Source>",
            "</item>",
        ]
    parts.append("</channel></rss>")
    return "\n".join(parts).encode()


def article_page(title: str, paragraphs: list[str], outlet: str = "The Example") -> str:
    """A publisher's article page: navigation, the article, a footer."""
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    return (
        f"<!doctype html><html lang='en'><head><title>{escape(title)} | {escape(outlet)}</title>"
        f'<meta property="og:title" content="{escape(title)}"></head><body>'
        "<header><nav><a href='/'>Home</a> <a href='/tech'>Tech</a> <a href='/world'>World</a>"
        "</nav></header><main><article>"
        f"<h1>{escape(title)}</h1><p class='byline'>By a staff reporter</p>{body}"
        "</article></main><footer><p>Contact us. Terms of use. Careers.</p></footer>"
        "</body></html>"
    )


def consent_page(outlet: str = "The Example") -> str:
    """A cookie-consent wall served in place of the article."""
    return (
        f"<!doctype html><html><head><title>{escape(outlet)}</title></head><body>"
        "<div class='consent'><h2>We value your privacy</h2>"
        "<p>We and our partners use cookies to store and access information on your device, "
        "to show personalised content and to measure audiences. By clicking Accept all "
        "cookies you agree to this; you can change your choice at any time under Manage "
        "preferences.</p><p><button>Accept all cookies</button> <button>Reject all</button> "
        "<button>Manage preferences</button></p></div></body></html>"
    )


def paywall_page(title: str) -> str:
    """A subscription teaser: the lead, then the wall."""
    return (
        f"<!doctype html><html><head><title>{escape(title)}</title>"
        '<script type="application/ld+json">{"@type": "NewsArticle", '
        '"isAccessibleForFree": false}</script></head><body><article>'
        f"<h1>{escape(title)}</h1><p>Officials met on Monday to discuss the next steps of "
        "the licensing regime for advanced processors.</p>"
        "<p>You have a preview view of this article while we are checking your access. "
        "Already a subscriber? Sign in to continue reading.</p></article></body></html>"
    )


def article_paragraphs(topic: str, count: int = 8) -> list[str]:
    """Paragraphs of plausible news prose about `topic` (our own words)."""
    templates = [
        "Officials said on Tuesday that {t} would be reviewed again before the end of the "
        "quarter, after exporters asked for clearer guidance on licence conditions.",
        "Industry groups argued that the rules on {t} left too much room for interpretation "
        "and that smaller suppliers could not carry the cost of compliance.",
        "According to two people familiar with the talks, the discussion on {t} also "
        "covered the servicing of machines already installed abroad.",
        "Analysts expect the measures on {t} to shift orders between suppliers in the "
        "coming months, even if total demand for advanced chips keeps growing.",
        "The ministry published a list of questions and answers on {t} and promised a "
        "consultation with companies that ship sensitive equipment.",
        "Lawyers advising manufacturers noted that enforcement of {t} had become stricter, "
        "with more audits of distributors and resellers in third countries.",
        "In a statement, the company said it would comply with every rule on {t} and was "
        "working with customers to limit disruption to their production lines.",
        "Diplomats from several capitals said that coordination on {t} remained difficult, "
        "because each government weighs its own industry differently.",
    ]
    return [templates[i % len(templates)].format(t=topic) for i in range(count)]
