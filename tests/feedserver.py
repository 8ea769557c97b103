"""A threaded loopback HTTP server for tests and benchmarks.

    with FeedServer() as server:
        server.add("/feed.xml", body, headers={"Content-Type": "application/rss+xml"})
        server.redirect("/old", "/feed.xml", status=301)
        server.mount("/corpus/", Path("feeds"))   # serve a directory, ETag per file
        url = server.url("/feed.xml")
        ...
        server.hits["/feed.xml"]                  # requests seen per path

Routes answer with a configurable status and headers, ETag/Last-Modified validation
(304), gzip, a slow trickle (`trickle=(chunk_bytes, delay_seconds)`) and a slow start
(`delay=seconds` before the answer). HTTP/1.1 with
keep-alive, like real servers, so connection reuse is exercised.
"""

from __future__ import annotations

import gzip as gzip_module
import hashlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    etag: str | None = None
    last_modified: str | None = None
    gzip: bool = False  # compress the body and send Content-Encoding: gzip
    raw_gzip: bytes | None = None  # pre-compressed body (gzip bombs)
    trickle: tuple[int, float] | None = None  # (bytes per chunk, seconds between chunks)
    delay: float = 0.0  # seconds before the answer starts (a slow server)


class FeedServer:
    """Context manager around a ThreadingHTTPServer bound to a loopback address."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.routes: dict[str, Route] = {}
        self.mounts: dict[str, Path] = {}
        self.hits: Counter[str] = Counter()
        self.request_headers: dict[str, dict[str, str]] = {}
        self.arrivals: list[float] = []  # time.monotonic() of each request
        self.connections = 0  # TCP connections accepted (keep-alive reuse shows here)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def add(
        self,
        path: str,
        body: bytes | str = b"",
        status: int = 200,
        headers: dict[str, str] | None = None,
        **options: object,
    ) -> Route:
        data = body.encode("utf-8") if isinstance(body, str) else body
        route = Route(body=data, status=status, headers=dict(headers or {}), **options)  # type: ignore[arg-type]
        self.routes[path] = route
        return route

    def redirect(self, path: str, target: str, status: int = 301) -> Route:
        location = target if "://" in target else self.url(target)
        return self.add(path, status=status, headers={"Location": location})

    def mount(self, prefix: str, directory: Path) -> None:
        """Serve `directory/<rest>` at `prefix<rest>`, with an ETag from the file's bytes."""
        self.mounts[prefix] = directory

    def start(self) -> FeedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FeedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def resolve(self, path: str) -> Route | None:
        if path in self.routes:
            return self.routes[path]
        for prefix, directory in self.mounts.items():
            if path.startswith(prefix):
                return _file_route(directory, path[len(prefix) :])
        return None


_FILE_ROUTES: dict[Path, Route] = {}


def _file_route(directory: Path, rest: str) -> Route | None:
    candidate = (directory / rest).resolve()
    if directory.resolve() not in candidate.parents or not candidate.is_file():
        return None
    route = _FILE_ROUTES.get(candidate)
    if route is None:
        body = candidate.read_bytes()
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        route = Route(body=body, etag=etag, headers={"Content-Type": "application/xml"})
        _FILE_ROUTES[candidate] = route
    return route


def _handler_for(server: FeedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out separately: no 40 ms stalls

        def setup(self) -> None:  # once per connection
            super().setup()
            with server._lock:
                server.connections += 1

        def do_GET(self) -> None:  # noqa: N802 - the http.server naming
            path = urlsplit(self.path).path
            with server._lock:
                server.arrivals.append(time.monotonic())
                server.hits[path] += 1
                server.request_headers[path] = dict(self.headers.items())
            route = server.resolve(path)
            if route is not None and route.delay:
                time.sleep(route.delay)
            if route is None:
                self._send(404, {"Content-Type": "text/plain"}, b"not found")
                return
            if self._not_modified(route):
                self._send(304, {"ETag": route.etag or ""} if route.etag else {}, b"")
                return
            headers = {"Content-Type": "application/rss+xml", **route.headers}
            if route.etag:
                headers["ETag"] = route.etag
            if route.last_modified:
                headers["Last-Modified"] = route.last_modified
            body = route.body
            if route.raw_gzip is not None:
                body = route.raw_gzip
                headers["Content-Encoding"] = "gzip"
            elif route.gzip:
                body = gzip_module.compress(body)
                headers["Content-Encoding"] = "gzip"
            self._send(route.status, headers, body, route.trickle)

        def _not_modified(self, route: Route) -> bool:
            if route.status != 200:
                return False
            if route.etag and self.headers.get("If-None-Match") == route.etag:
                return True
            since = self.headers.get("If-Modified-Since")
            return bool(route.last_modified and since == route.last_modified)

        def _send(
            self,
            status: int,
            headers: dict[str, str],
            body: bytes,
            trickle: tuple[int, float] | None = None,
        ) -> None:
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if trickle is None:
                    self.wfile.write(body)
                    return
                size, delay = trickle
                for start in range(0, len(body), size):
                    self.wfile.write(body[start : start + size])
                    self.wfile.flush()
                    time.sleep(delay)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (deadline, body cap): expected in tests

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # keep test output quiet

    return Handler


# --- small feed builders for tests (our own words) ---------------------------------------


@dataclass(frozen=True)
class Item:
    title: str
    link: str | None = None
    guid: str | None = None
    description: str = ""
    pub_date: str | None = "Mon, 03 Mar 2025 09:00:00 GMT"


def rss(items: list[Item], title: str = "Test feed", ttl: int | None = None) -> bytes:
    """An RSS 2.0 document; text is escaped the way publishers do."""
    from html import escape

    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>http://example.test/</link>",
        "<description>fixture</description>",
    ]
    if ttl is not None:
        parts.append(f"<ttl>{ttl}</ttl>")
    for item in items:
        parts.append("<item>")
        parts.append(f"<title>{escape(item.title)}</title>")
        if item.link:
            parts.append(f"<link>{escape(item.link)}</link>")
        if item.guid:
            parts.append(f'<guid isPermaLink="false">{escape(item.guid)}</guid>')
        parts.append(f"<description>{escape(item.description)}</description>")
        if item.pub_date:
            parts.append(f"<pubDate>{item.pub_date}</pubDate>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(parts).encode("utf-8")
