"""Polite, bounded HTTP fetching of feeds and pages -> FetchResult.

Every failure comes back as `FetchResult.error`; one feed never stops the others.

Politeness: a global limit on requests in flight, a per-host limit and delay, our
User-Agent, conditional GET (ETag / Last-Modified), Retry-After and Cache-Control honoured
by the caller's scheduling (we only report them here).

Safety: http and https only; redirects are followed by hand so each hop is checked; the
network guard resolves host names itself and connects to the address it checked (so a DNS
answer cannot change between the check and the connection); the decompressed body is
capped, and the whole fetch runs under one deadline however slowly the server trickles.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import socket
import ssl
import time
import typing
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import httpcore
import httpx
from httpx._transports.default import map_httpcore_exceptions  # pinned httpx==0.28.1

from chipwatch import USER_AGENT
from chipwatch.clock import utcnow as utcnow  # re-exported: callers import it from here
from chipwatch.errors import (
    BodyTooLarge,
    DeadlineExceeded,
    FeedError,
    FetchError,
    InvalidURLError,
    UnsafeURLError,
    feed_error,
)
from chipwatch.settings import FetchSettings
from chipwatch.types import FetchResult, Source
from chipwatch.urls import check_url as validate_url

REDIRECT_STATUSES = {301, 302, 303, 307, 308}
PERMANENT_REDIRECTS = {301, 308}
ACCEPT_FEED = (
    "application/rss+xml, application/atom+xml, application/rdf+xml, application/xml;q=0.9, "
    "text/xml;q=0.9, application/feed+json;q=0.8, application/json;q=0.7, */*;q=0.5"
)
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded;charset=UTF-8"
_DRAIN_BYTES = 64 * 1024  # the most of an unused body read to keep its connection


# --- network guard ---------------------------------------------------------------------


# Prefixes whose addresses carry an IPv4 address that a gateway or the host reaches:
# NAT64 (RFC 6052, well-known and local-use), 6to4 (RFC 3056). IPv4-mapped (::ffff:0:0/96)
# and IPv4-compatible (::/96, deprecated but still routed by some stacks) too.
_NAT64 = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if it is one of the embedding forms."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in network for network in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if int(ip) >> 32 == 0 and int(ip) > 1:  # ::a.b.c.d (:: and ::1 are judged as they are)
        return ipaddress.IPv4Address(int(ip))
    return None


def is_public_address(address: str) -> bool:
    """False for loopback, private, link-local, multicast, reserved and unspecified, also
    when spelled as an IPv6 address embedding such an IPv4 address."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            # The prefix itself must be public too (it is, for the well-known ones).
            return _is_public(inner)
    return _is_public(ip)


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


def check_url(url: str) -> None:
    """Refuse what chipwatch.urls refuses (InvalidURLError, UnsafeURLError)."""
    validate_url(url)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolve, refuse non-public addresses, then connect to the very address checked."""

    def __init__(self, is_allowed: Callable[[str], bool] = is_public_address) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._is_allowed = is_allowed  # injectable so tests can trust one loopback address

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port)
        refused = [a for a in addresses if not self._is_allowed(a)]
        if refused:
            # Refuse if any answer is private: round-robin must not reach an inside host.
            raise UnsafeURLError(host, f"resolves to non-public address {refused[0]} (refused)")
        return await self._inner.connect_tcp(
            addresses[0],
            port,
            timeout=timeout,
            local_address=local_address,
            socket_options=socket_options,
        )

    async def connect_unix_socket(self, *args: typing.Any, **kwargs: typing.Any) -> typing.Any:
        raise UnsafeURLError("unix socket", "refused")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpx.ConnectError(f"DNS resolution failed for {host}: {exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise httpx.ConnectError(f"no address for {host}")
    return addresses


@functools.cache
def verifying_context() -> ssl.SSLContext:
    """One verifying context (certifi, as httpx's own transport) for every pool of every
    client in the process: loading the CA file costs ~25 ms of CPU, and a worker builds
    two clients per feed job (bench-scale: most of a job's CPU before this)."""
    return httpx.create_ssl_context()


class PerHostTransport(httpx.AsyncBaseTransport):
    """One small keep-alive pool per (scheme, host, port).

    httpcore's pool scans every connection it holds for each request (idle and expiry
    checks, a getpeername() and a poll() per connection): with one pool for 20 hosts x 2
    connections that scan was most of the poller's CPU. Per-host pools hold at most
    `per_host_concurrency` connections, so the scan is short. Pools of idle hosts are
    closed once more than `max_pools` exist, so a poll over many hosts does not keep
    thousands of sockets open."""

    def __init__(
        self,
        settings: FetchSettings,
        backend: httpcore.AsyncNetworkBackend | None,
        max_pools: int,
    ) -> None:
        self._settings = settings
        self._backend = backend
        self._max_pools = max_pools
        self._ssl_context: ssl.SSLContext | None = None
        self._pools: dict[tuple[bytes, bytes, int | None], httpcore.AsyncConnectionPool] = {}
        self._busy: dict[tuple[bytes, bytes, int | None], int] = {}

    def _pool(self, key: tuple[bytes, bytes, int | None]) -> httpcore.AsyncConnectionPool:
        pool = self._pools.pop(key, None)  # re-inserted last: the dict is kept in LRU order
        if pool is None:
            keep = max(1, self._settings.per_host_concurrency)
            if self._ssl_context is None:
                self._ssl_context = verifying_context()
            pool = httpcore.AsyncConnectionPool(
                max_connections=None,  # our semaphores bound the requests in flight
                max_keepalive_connections=keep,
                retries=0,
                ssl_context=self._ssl_context,
                network_backend=self._backend,
            )
        self._pools[key] = pool
        return pool

    async def _trim(self) -> None:
        idle = [k for k in self._pools if not self._busy.get(k)]
        for key in idle[: max(0, len(self._pools) - self._max_pools)]:
            await self._pools.pop(key).aclose()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.url.raw_scheme, request.url.raw_host, request.url.port)
        if len(self._pools) > self._max_pools:
            await self._trim()
        pool = self._pool(key)
        self._busy[key] = self._busy.get(key, 0) + 1
        try:
            response = await _send_through(pool, request)
        except BaseException:
            self._release(key)
            raise
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ReleasingStream(response.stream, lambda: self._release(key)),
            extensions=response.extensions,
        )

    def _release(self, key: tuple[bytes, bytes, int | None]) -> None:
        self._busy[key] = max(0, self._busy.get(key, 1) - 1)
        if not self._busy[key]:
            del self._busy[key]

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


async def _send_through(
    pool: httpcore.AsyncConnectionPool, request: httpx.Request
) -> httpcore.Response:
    # What httpx.AsyncHTTPTransport.handle_async_request does, minus its pool.
    core_request = httpcore.Request(
        method=request.method,
        url=httpcore.URL(
            scheme=request.url.raw_scheme,
            host=request.url.raw_host,
            port=request.url.port,
            target=request.url.raw_path,
        ),
        headers=request.headers.raw,
        content=request.stream,
        extensions=request.extensions,
    )
    with map_httpcore_exceptions():
        return await pool.handle_async_request(core_request)


class _ReleasingStream(httpx.AsyncByteStream):
    def __init__(self, stream: typing.Any, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> typing.AsyncIterator[bytes]:
        with map_httpcore_exceptions():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        try:
            if hasattr(self._stream, "aclose"):
                with map_httpcore_exceptions():
                    await self._stream.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


def build_client(
    settings: FetchSettings, is_allowed: Callable[[str], bool] = is_public_address
) -> httpx.AsyncClient:
    """An AsyncClient with our timeouts, per-host keep-alive pools and (unless allowed)
    the network guard."""
    timeout = httpx.Timeout(
        connect=settings.connect_timeout_seconds,
        read=settings.read_timeout_seconds,
        write=settings.read_timeout_seconds,
        pool=None,  # our own semaphores do the queueing
    )
    # httpx 0.28 has no public hook for the network backend; our transport builds the
    # httpcore pools itself, with the guarded backend (pinned httpx==0.28.1).
    backend = None if settings.allow_private_networks else GuardedBackend(is_allowed)
    transport = PerHostTransport(settings, backend, max_pools=max(64, settings.concurrency * 2))
    # trust_env=False: no proxy from the environment; a proxy would bypass the guard.
    return httpx.AsyncClient(
        transport=transport,
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"},
    )


# --- header parsing (pure) ---------------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Retry-After is either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = (now or utcnow()).replace(tzinfo=UTC)
    return max(0.0, (when - current).total_seconds())


def parse_max_age(headers: httpx.Headers, now: datetime | None = None) -> float | None:
    """Freshness lifetime from Cache-Control max-age, else Expires (relative to Date)."""
    for directive in headers.get("cache-control", "").split(","):
        name, _, value = directive.strip().partition("=")
        if name.lower() == "max-age" and value.strip().strip('"').isdigit():
            return float(value.strip().strip('"'))
    expires = headers.get("expires")
    if not expires:
        return None
    try:
        when = parsedate_to_datetime(expires)
        base = parsedate_to_datetime(headers["date"]) if "date" in headers else None
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if base is None or base.tzinfo is None:
        base = (now or utcnow()).replace(tzinfo=UTC)
    return max(0.0, (when - base).total_seconds())


# --- body ------------------------------------------------------------------------------


async def read_capped(response: httpx.Response, url: str, cap: int) -> bytes:
    """Read and decompress the body ourselves so no chunk can inflate past the cap."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
        raise FetchError(url, f"unsupported content-encoding {encoding!r}")
    # wbits 47 = auto-detect a gzip or zlib header (what servers send for gzip/deflate).
    decoder = zlib.decompressobj(47) if encoding not in ("", "identity") else None
    parts: list[bytes] = []
    size = 0
    # The pieces as httpcore reads them (64 KiB reads): asking httpx for fixed
    # 64 KiB chunks copied every byte through a BytesIO twice more.
    async for raw in response.aiter_raw():
        pending = raw
        while pending:
            if decoder is None:
                piece, pending = pending, b""
            else:
                piece = _inflate(decoder, pending, cap - size + 1, url)
                pending = decoder.unconsumed_tail
            size += len(piece)
            if size > cap:
                raise BodyTooLarge(url, f"body larger than {cap} bytes after decompression")
            parts.append(piece)
    return b"".join(parts)


async def drain(response: httpx.Response, limit: int = _DRAIN_BYTES) -> None:
    """Read the rest of a body we do not use (304, redirect, error page), up to `limit`.

    httpcore puts a connection back in its pool only if the response was read to its
    end; closing it earlier closes the connection. Without this, every 304 of a warm
    cycle (a response with no body, but not read to its end) opened a new connection.
    A bigger body is not worth reading: the connection is closed instead."""
    if response.is_stream_consumed:
        return
    left = limit
    try:
        async for raw in response.aiter_raw():
            left -= len(raw)
            if left < 0:
                return
    except (httpx.HTTPError, OSError):
        return  # the answer is known already; only the connection is lost


def _inflate(decoder: typing.Any, data: bytes, limit: int, url: str) -> bytes:
    try:
        return typing.cast(bytes, decoder.decompress(data, max(1, limit)))
    except zlib.error as exc:
        raise FetchError(url, f"corrupt compressed body: {exc}") from None


# --- the fetcher -------------------------------------------------------------------------


# A host's slot held for one request: store.host_gate.HostGate.slot on workers.
HostSlot = Callable[[str], contextlib.AbstractAsyncContextManager[None]]


@dataclass
class _Hop:
    permanent_chain: bool = True
    statuses: list[int] = field(default_factory=list)


class Fetcher:
    """Shared client and limits for one poll cycle. Use as an async context manager."""

    def __init__(
        self,
        settings: FetchSettings,
        client: httpx.AsyncClient | None = None,
        host_gate: HostSlot | None = None,
    ) -> None:
        self.settings = settings
        self._client = client or build_client(settings)
        # Workers: the per-host limit and delay across processes (store.host_gate); the
        # local semaphores still bound this poll's own requests.
        self._gate = host_gate
        self._global = asyncio.Semaphore(settings.concurrency)
        self._hosts: dict[str, asyncio.Semaphore] = {}
        self._next_slot: dict[str, float] = {}

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def fetch(self, source: Source) -> FetchResult:
        """Conditional GET of a source's feed URL."""
        return await self.fetch_url(
            source.url, etag=source.etag, last_modified=source.last_modified
        )

    async def fetch_url(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = ACCEPT_FEED,
        form: bytes | None = None,
    ) -> FetchResult:
        """GET a URL (POST `form`, urlencoded, if given); every failure is returned as
        FetchResult.error."""
        started = time.monotonic()
        fetched_at = utcnow()
        try:
            check_url(url)  # before the host is read from it: urlsplit raises on some
            host = (urlsplit(url).hostname or "").lower()
            async with self._host_slot(host), self._global, self._shared_slot(host):
                await self._polite_delay(host)
                async with asyncio.timeout(self.settings.deadline_seconds):
                    result = await self._follow(url, etag, last_modified, accept, fetched_at, form)
        except TimeoutError:
            error = DeadlineExceeded(
                url, f"fetch took longer than {self.settings.deadline_seconds:g} s"
            )
            result = _failed(url, feed_error(error, url), fetched_at)
        except httpx.HTTPError as exc:
            described = replace(feed_error(exc, url), message=_describe(exc))
            result = _failed(url, described, fetched_at)
        except Exception as exc:  # noqa: BLE001 - one URL never raises out of a fetch
            result = _failed(url, feed_error(exc, url), fetched_at)
        return replace(result, elapsed_seconds=time.monotonic() - started)

    def _host_slot(self, host: str) -> asyncio.Semaphore:
        if host not in self._hosts:
            self._hosts[host] = asyncio.Semaphore(self.settings.per_host_concurrency)
        return self._hosts[host]

    def _shared_slot(self, host: str) -> contextlib.AbstractAsyncContextManager[None]:
        return self._gate(host) if self._gate is not None else contextlib.nullcontext()

    async def _polite_delay(self, host: str) -> None:
        delay = self.settings.per_host_delay_seconds
        if delay <= 0 or self._gate is not None:  # the gate spaces requests across workers
            return
        # The turn is taken when the request goes out, not reserved before sleeping: an
        # event loop busy past two reserved starts woke both requests at once.
        while True:
            now = time.monotonic()
            turn = self._next_slot.get(host, now)
            if turn <= now:
                self._next_slot[host] = now + delay
                return
            await asyncio.sleep(turn - now)

    async def _follow(
        self,
        url: str,
        etag: str | None,
        last_modified: str | None,
        accept: str,
        fetched_at: datetime,
        form: bytes | None = None,
    ) -> FetchResult:
        hops = _Hop()
        current = url
        for _ in range(self.settings.max_redirects + 1):
            check_url(current)
            # Validators belong to the stored URL; after a redirect they may not apply.
            conditional = current == url
            headers = {"Accept": accept}
            if conditional and etag:
                headers["If-None-Match"] = etag
            if conditional and last_modified:
                headers["If-Modified-Since"] = last_modified
            if form is not None:
                headers["Content-Type"] = FORM_CONTENT_TYPE
            method = "GET" if form is None else "POST"
            request = self._client.build_request(method, current, headers=headers, content=form)
            try:
                response = await self._client.send(request, stream=True)
            except httpx.RemoteProtocolError as exc:
                # httpx parses a redirect's Location itself, before we see the response.
                if "location header" in str(exc).lower():
                    raise InvalidURLError(current, f"redirect to an invalid URL: {exc}") from None
                raise
            try:
                if response.status_code in REDIRECT_STATUSES:
                    hops.statuses.append(response.status_code)
                    hops.permanent_chain &= response.status_code in PERMANENT_REDIRECTS
                    location = response.headers.get("location")
                    if not location:
                        raise FetchError(
                            current, "redirect without Location", status=response.status_code
                        )
                    current = urljoin(current, location.strip())
                    if response.status_code not in (307, 308):
                        form = None  # 301/302/303 after a POST: GET the new location
                    await drain(response)
                    continue
                result = await self._finish(
                    url, current, response, hops, fetched_at, etag, last_modified
                )
                await drain(response)
                return result
            finally:
                await response.aclose()
        raise FetchError(
            url, f"more than {self.settings.max_redirects} redirects", status=hops.statuses[-1]
        )

    async def _finish(
        self,
        url: str,
        final_url: str,
        response: httpx.Response,
        hops: _Hop,
        fetched_at: datetime,
        etag: str | None,
        last_modified: str | None,
    ) -> FetchResult:
        status = response.status_code
        moved = final_url if hops.statuses and hops.permanent_chain and final_url != url else None
        common: dict[str, typing.Any] = {
            "source_url": url,
            "final_url": final_url,
            "status": status,
            "permanent_redirect": moved,
            "fetched_at": fetched_at,
            "max_age_seconds": parse_max_age(response.headers, fetched_at),
            "retry_after_seconds": parse_retry_after(
                response.headers.get("retry-after"), fetched_at
            ),
        }
        if status == 304:
            return FetchResult(
                **common,
                not_modified=True,
                etag=response.headers.get("etag", etag),
                last_modified=response.headers.get("last-modified", last_modified),
            )
        if status == 410:
            gone = FeedError.http(410, "Gone: the feed was removed")
            return FetchResult(**common, gone=True, error=gone)
        if status >= 400 or status < 200:
            return FetchResult(**common, error=FeedError.http(status, response.reason_phrase))
        body = await read_capped(response, final_url, self.settings.max_body_bytes)
        return FetchResult(
            **common,
            content=body,
            content_type=response.headers.get("content-type", ""),
            etag=response.headers.get("etag"),
            last_modified=response.headers.get("last-modified"),
        )


def _failed(url: str, error: FeedError, fetched_at: datetime) -> FetchResult:
    return FetchResult(
        source_url=url,
        final_url=url,
        status=error.http_status,
        error=error,
        fetched_at=fetched_at,
    )


def _describe(exc: httpx.HTTPError) -> str:
    kinds: dict[type[Exception], str] = {
        httpx.ConnectTimeout: "connect timeout",
        httpx.ReadTimeout: "read timeout",
        httpx.ConnectError: "connection failed",
    }
    kind = kinds.get(type(exc), type(exc).__name__)
    detail = str(exc)
    return f"{kind}: {detail}" if detail else kind


async def fetch_once(url: str, settings: FetchSettings) -> FetchResult:
    """One GET with a throwaway client (CLI `add`, feed discovery)."""
    async with Fetcher(settings) as fetcher:
        return await fetcher.fetch_url(url)
