"""A stop asked for by a signal, seen by a poll running in another thread's event loop.

`chipwatch run` handles SIGTERM and SIGINT in the main thread while the scheduler's job
thread runs the poll under `asyncio.run`: the handler calls `request(signum)`, and every
poll awaiting `wait()` wakes up at once (no polling of a flag), stops fetching, and
stores what it has already fetched.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class StopRequest:
    def __init__(self) -> None:
        self.signum: int | None = None  # the first signal asked for the stop
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def is_set(self) -> bool:
        return self.signum is not None

    def request(self, signum: int) -> None:
        """Ask for the stop (safe from a signal handler: the job threads never hold the
        lock while they wait, so the main thread cannot find it held by itself)."""
        with self._lock:
            if self.signum is None:
                self.signum = signum
            waiters = list(self._waiters)
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # that poll ended and closed its loop
                loop.call_soon_threadsafe(_wake, future)

    async def wait(self) -> None:
        """Return once a stop is requested (at once if it was already)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self.signum is not None:
                return
            self._waiters.append((loop, future))
        try:
            await future
        finally:
            with self._lock:
                self._waiters.remove((loop, future))


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
