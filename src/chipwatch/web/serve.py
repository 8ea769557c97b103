"""Run the site with uvicorn on the watch's store; print its URL once it listens."""

from __future__ import annotations

import socket
import sys
from urllib.parse import urlsplit

import uvicorn

from chipwatch.errors import UsageError
from chipwatch.pipeline import open_sessions
from chipwatch.settings import Settings
from chipwatch.web.app import create_app


class _Server(uvicorn.Server):
    """uvicorn's server, saying where it listens (the real port, when asked for port 0)."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit:
            return
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                shown = f"[{host}]" if ":" in host else host
                print(f"chipwatch serve: listening on http://{shown}:{port}/", flush=True)
        sys.stdout.flush()


def base_path(public_url: str) -> str:
    """The path the reverse proxy serves the site under ("" at the root)."""
    return urlsplit(public_url).path.rstrip("/")


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, or a UsageError naming them (a bad port or host, an
    address in use): uvicorn would log the failure and, for some, exit 0."""
    where = f"{host}:{port}"
    if not 0 <= port <= 65535:
        raise UsageError(f"--port {port}: must be between 0 and 65535 (0: any free port)")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"{where}: cannot listen: {_reason(exc)}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        # Listening here, not in uvicorn: two servers started at once both bind, and the
        # second one's listen() failed inside uvicorn as a traceback.
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise UsageError(f"{where}: cannot listen: {_reason(exc)}") from None
    return sock


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    host = host or settings.web.host
    port = settings.web.port if port is None else port
    sock = listening_socket(host, port)
    app = create_app(settings, open_sessions(settings))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        root_path=base_path(settings.web.public_url),
        proxy_headers=True,
        forwarded_allow_ips=settings.web.forwarded_allow_ips,
        log_level="warning",
        server_header=False,
    )
    with sock:
        _Server(config).run(sockets=[sock])
