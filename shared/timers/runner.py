"""The timer loop a service's worker runs when its spec names timer handlers.

Each round claims due timers (`due_at <= clock.now()`) of the kinds this worker handles, in
due order, with `FOR UPDATE SKIP LOCKED`, in one transaction: a second worker skips the rows
the first holds and claims others, so each timer is handled by one worker only. Each handler
runs in a savepoint of that transaction, and the timer is marked fired in the same savepoint:
the handler's writes and the firing commit together, or neither does. A crash before the
commit leaves the timers unfired and due, for the next round of any worker: exactly once
across workers and restarts.

A handler that raises rolls back to its savepoint; the timer counts an attempt, records the
error and moves to `now + base * 2^(attempts - 1)` (capped at an hour); after
`timer_max_attempts` it is parked (kept, logged, counted, not retried). Timers of kinds this
worker has no handler for are left alone (a newer worker may handle them).

The loop wakes on the timers table's NOTIFY (a schedule committed), at the next due time, and
at least every `timer_poll_seconds` (the safety net, and how a moved FrozenClock is noticed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta

import asyncpg

from shared.clock import Clock
from shared.db.database import Database
from shared.metrics import TIMER_FAILURES, TIMERS_FIRED, TIMERS_OVERDUE, TIMERS_PARKED
from shared.settings import Settings
from shared.timers.schedule import Timer, TimerHandler
from shared.timers.tables import timers_channel

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 3600.0
MIN_WAIT_SECONDS = 0.05

_CLAIM = """
SELECT kind, key, due_at, payload, attempts, created_at
FROM timers
WHERE fired_at IS NULL AND parked_at IS NULL AND due_at <= $1 AND kind = ANY($2::text[])
ORDER BY due_at
LIMIT $3
FOR UPDATE SKIP LOCKED
"""
_MARK_FIRED = "UPDATE timers SET fired_at = $3 WHERE kind = $1 AND key = $2"
_RETRY = """
UPDATE timers SET attempts = attempts + 1, last_error = $3, due_at = $4
WHERE kind = $1 AND key = $2
"""
_PARK = """
UPDATE timers SET attempts = attempts + 1, last_error = $3, parked_at = $4
WHERE kind = $1 AND key = $2
"""
_NEXT_DUE = """
SELECT min(due_at) FROM timers
WHERE fired_at IS NULL AND parked_at IS NULL AND kind = ANY($1::text[])
"""
_OVERDUE = """
SELECT count(*) FROM timers
WHERE fired_at IS NULL AND parked_at IS NULL AND due_at <= $1 AND kind = ANY($2::text[])
"""
_PURGE = "DELETE FROM timers WHERE fired_at < $1"


def backoff_seconds(base: float, attempts: int) -> float:
    """The pause after the attempts-th failure (1, 2, ...)."""
    return float(min(base * 2 ** (attempts - 1), MAX_BACKOFF_SECONDS))


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:1000]


class TimerRunner:
    def __init__(
        self,
        *,
        service: str,
        database: Database,
        settings: Settings,
        handlers: Mapping[str, TimerHandler],
        clock: Clock,
    ) -> None:
        self.service = service
        self.database = database
        self.settings = settings
        self.handlers = dict(handlers)
        self.kinds = sorted(self.handlers)
        self.clock = clock
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Run until cancelled (the worker's supervisor restarts it after a failure)."""
        listener = await self.database.connect_dedicated()
        try:
            await listener.add_listener(
                timers_channel(self.database.schema), lambda *_: self._wake.set()
            )
            await self._fire_until_cancelled()
        finally:
            with contextlib.suppress(OSError, asyncpg.InterfaceError, asyncpg.PostgresError):
                await listener.close(timeout=1.0)

    async def _fire_until_cancelled(self) -> None:
        loop = asyncio.get_running_loop()
        next_purge = next_gauge = loop.time()
        while True:
            self._wake.clear()
            fired = await self.fire_due()
            if fired == self.settings.timer_batch_size:
                continue  # more may be due
            if loop.time() >= next_gauge:
                await self.measure_overdue()
                next_gauge = loop.time() + 5
            if loop.time() >= next_purge:
                await self.purge_fired()
                next_purge = loop.time() + 600
            wait = await self._time_to_next_due()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def _time_to_next_due(self) -> float:
        poll = self.settings.timer_poll_seconds
        async with self.database.connection() as connection:
            next_due: datetime | None = await connection.fetchval(_NEXT_DUE, self.kinds)
        if next_due is None:
            return poll
        until = (next_due - self.clock.now()).total_seconds()
        # Due already but not claimed: another worker holds it; look again shortly, not at once.
        return min(max(until, MIN_WAIT_SECONDS), poll)

    async def fire_due(self) -> int:
        """One round: claim up to timer_batch_size due timers and handle them; how many were
        claimed (fired, retried or parked)."""
        now = self.clock.now()
        async with self.database.transaction() as connection:
            rows = await connection.fetch(_CLAIM, now, self.kinds, self.settings.timer_batch_size)
            for row in rows:
                timer = Timer(
                    kind=row["kind"],
                    key=row["key"],
                    due_at=row["due_at"],
                    payload=row["payload"],
                    attempts=row["attempts"],
                    created_at=row["created_at"],
                )
                await self._fire_one(connection, timer)
        return len(rows)

    async def _fire_one(self, connection: asyncpg.Connection, timer: Timer) -> None:
        handler = self.handlers[timer.kind]
        try:
            async with connection.transaction():  # a savepoint: this timer's work only
                await handler(connection, timer)
                await connection.execute(_MARK_FIRED, timer.kind, timer.key, self.clock.now())
        except asyncio.CancelledError:
            raise
        except Exception as error:
            if connection.is_closed():
                raise  # the connection is gone: nothing was recorded, the batch is due again
            await self._record_failure(connection, timer, error)
            return
        TIMERS_FIRED.labels(self.service, timer.kind).inc()

    async def _record_failure(
        self, connection: asyncpg.Connection, timer: Timer, error: Exception
    ) -> None:
        attempts = timer.attempts + 1
        now = self.clock.now()
        TIMER_FAILURES.labels(self.service, timer.kind).inc()
        if attempts >= self.settings.timer_max_attempts:
            await connection.execute(_PARK, timer.kind, timer.key, describe(error), now)
            TIMERS_PARKED.labels(self.service, timer.kind).inc()
            log.error(
                "timer handler kept failing; timer parked",
                extra={"kind": timer.kind, "key": timer.key, "attempts": attempts},
                exc_info=error,
            )
            return
        delay = backoff_seconds(self.settings.timer_retry_base_seconds, attempts)
        due_at = now + timedelta(seconds=delay)
        await connection.execute(_RETRY, timer.kind, timer.key, describe(error), due_at)
        log.warning(
            "timer handler failed; retrying later",
            extra={
                "kind": timer.kind,
                "key": timer.key,
                "attempts": attempts,
                "error": repr(error),
            },
        )

    async def measure_overdue(self) -> None:
        async with self.database.connection() as connection:
            overdue = await connection.fetchval(_OVERDUE, self.clock.now(), self.kinds)
        TIMERS_OVERDUE.labels(self.service).set(overdue)

    async def purge_fired(self) -> None:
        before = self.clock.now() - timedelta(hours=self.settings.timer_retention_hours)
        async with self.database.connection() as connection:
            await connection.execute(_PURGE, before)
