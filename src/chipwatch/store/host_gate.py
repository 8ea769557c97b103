"""Per-host politeness across workers and hosts, and one job at a time per feed, on
PostgreSQL.

The in-process limits of `fetch.Fetcher` hold within one poll; workers run many polls
at once, on many machines. A `HostGate` makes `fetch.per_host_concurrency` and
`fetch.per_host_delay_seconds` hold for all of them:
- concurrency: a request to a host holds one of its N slots, a session-level advisory
  lock (hashtext(host), slot) on the gate's connection; a dead worker's connection
  closes and its slots are free at once (no stale lock to clean up);
- delay: a request takes the host's turn with one UPSERT that succeeds only when
  `host_slots.next_at` has passed (then next_at = now + delay), else it learns how long
  to wait and asks again. The turn is taken when the request goes out, not reserved
  ahead: a reserved start that a busy event loop overslept let the next worker's request
  arrive right behind it (0.03 s apart with a 0.4 s delay, seen on a loaded machine).
- one job per feed: the feed job holds an advisory lock (class, source id) while it runs;
  a job that finds it held does nothing.
One connection per worker process; the slots and feeds it holds are tracked here because
advisory locks are re-entrant within a session (the same session could take one twice).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg

GATE_RETRY_SECONDS = 0.02  # how often a request waiting for a host's slot asks again

_TRY = """
SELECT s FROM unnest(%(slots)s::int[]) AS s
WHERE pg_try_advisory_lock(hashtext(%(host)s), s) LIMIT 1
"""
_RELEASE = "SELECT pg_advisory_unlock(hashtext(%(host)s), %(slot)s)"
FEED_LOCK_CLASS = 0x66656564  # "feed": (class, source id) advisory locks of feed jobs
_TRY_FEED = "SELECT pg_try_advisory_lock(%(cls)s, %(id)s)"
_RELEASE_FEED = "SELECT pg_advisory_unlock(%(cls)s, %(id)s)"
# One statement: take the turn if next_at has passed (the row is locked and re-checked
# by ON CONFLICT ... WHERE, so two workers never both take it), else return the seconds
# left, read from the statement's snapshot (stale only towards asking again sooner).
_TAKE_TURN = """
WITH now AS (SELECT clock_timestamp() AT TIME ZONE 'utc' AS t),
taken AS (
    INSERT INTO host_slots AS h (host, next_at)
    SELECT %(host)s, t + make_interval(secs => %(delay)s) FROM now
    ON CONFLICT (host) DO UPDATE SET next_at = EXCLUDED.next_at
    WHERE h.next_at <= EXCLUDED.next_at - make_interval(secs => %(delay)s)
    RETURNING true AS taken, 0.0::float8 AS wait
)
SELECT taken, wait FROM taken
UNION ALL
SELECT false, extract(epoch FROM h.next_at - now.t)::float8 FROM host_slots AS h, now
WHERE h.host = %(host)s AND NOT EXISTS (SELECT 1 FROM taken)
"""


class HostGate:
    def __init__(self, conninfo: str, per_host: int, delay_seconds: float) -> None:
        self._conninfo = conninfo
        self._per_host = per_host
        self._delay = delay_seconds
        self._connection: psycopg.AsyncConnection | None = None
        self._lock = asyncio.Lock()
        self._held: set[tuple[str, int]] = set()
        self._feeds: set[int] = set()  # feeds whose job runs in this process

    async def _execute(self, query: str, params: dict[str, object]) -> tuple[object, ...] | None:
        async with self._lock:
            return await self._run(query, params)

    async def _run(self, query: str, params: dict[str, object]) -> tuple[object, ...] | None:
        """One statement on the gate's connection; the caller holds `_lock`."""
        if self._connection is None or self._connection.closed:
            self._connection = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True
            )
            self._held.clear()  # a new session holds nothing
            self._feeds.clear()
        cursor = await self._connection.execute(query, params)
        return await cursor.fetchone()

    @asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        """Hold one of the host's slots (waiting for one), after its delay."""
        taken = await self._take(host)
        try:
            if self._delay > 0:
                await self._take_turn(host[:255])
            yield
        finally:
            self._held.discard((host, taken))
            await self._execute(_RELEASE, {"host": host, "slot": taken})

    async def _take_turn(self, host: str) -> None:
        while True:
            row = await self._execute(_TAKE_TURN, {"host": host, "delay": self._delay})
            if row is not None and row[0]:
                return
            # No row: another worker inserted the host's row after this statement's
            # snapshot was taken; ask again soon.
            left = float(row[1]) if row is not None and row[1] is not None else 0.0  # type: ignore[arg-type]
            await asyncio.sleep(min(max(left, GATE_RETRY_SECONDS), self._delay))

    async def _take(self, host: str) -> int:
        while True:
            async with self._lock:  # choosing and taking a slot is one step in this process
                free = [s for s in range(self._per_host) if (host, s) not in self._held]
                row = await self._run(_TRY, {"slots": free, "host": host}) if free else None
                if row is not None:
                    slot = int(row[0])  # type: ignore[call-overload]
                    self._held.add((host, slot))
                    return slot
            await asyncio.sleep(GATE_RETRY_SECONDS)

    @asynccontextmanager
    async def feed(self, source_id: int) -> AsyncIterator[bool]:
        """Whether this job may poll the feed: False while another job (here or on any
        host) holds it. Its poll makes the feed not due, so the other job has nothing
        to add; a dead worker's hold ends with its connection."""
        async with self._lock:
            taken = source_id not in self._feeds
            if taken:
                row = await self._run(_TRY_FEED, {"cls": FEED_LOCK_CLASS, "id": source_id})
                taken = bool(row and row[0])
            if taken:
                self._feeds.add(source_id)
        try:
            yield taken
        finally:
            if taken:
                self._feeds.discard(source_id)
                await self._execute(_RELEASE_FEED, {"cls": FEED_LOCK_CLASS, "id": source_id})

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
