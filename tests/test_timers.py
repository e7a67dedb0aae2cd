"""Durable timers (shared/timers): each fires exactly once, with two workers and across a
restart; a failing handler is retried with backoff, then parked; a cancelled timer never fires.

Runs against the notifications schema (which has the timers table), with kinds of its own, so
the service's own timer handlers never see these timers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.notifications.main import SPEC as NOTIFICATIONS
from services.registry import TOPICS
from shared.clock import FrozenClock
from shared.db.database import Database
from shared.http.app import service_database
from shared.settings import Settings
from shared.timers import Timer, TimerHandler, cancel_timer, schedule_timer
from shared.timers.runner import TimerRunner
from shared.worker import Worker
from tests.support import eventually

pytestmark = pytest.mark.asyncio

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
async def database(settings: Settings) -> AsyncIterator[Database]:
    database = service_database(NOTIFICATIONS, settings)
    await database.connect()
    try:
        yield database
    finally:
        await database.close()


def runner(
    database: Database,
    settings: Settings,
    handlers: dict[str, TimerHandler],
    clock: FrozenClock,
) -> TimerRunner:
    return TimerRunner(
        service="notifications",
        database=database,
        settings=settings,
        handlers=handlers,
        clock=clock,
    )


def recording(calls: list[Timer]) -> TimerHandler:
    async def handle(_connection: asyncpg.Connection, timer: Timer) -> None:
        calls.append(timer)

    return handle


async def schedule(
    database: Database, kind: str, key: str, due_at: datetime, **payload: Any
) -> None:
    async with database.transaction() as connection:
        await schedule_timer(connection, kind=kind, key=key, due_at=due_at, payload=payload)


async def timer_row(database: Database, kind: str, key: str) -> asyncpg.Record | None:
    async with database.connection() as connection:
        row: asyncpg.Record | None = await connection.fetchrow(
            "SELECT * FROM timers WHERE kind = $1 AND key = $2", kind, key
        )
        return row


async def count_fired(database: Database, kind: str) -> int:
    async with database.connection() as connection:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM timers WHERE kind = $1 AND fired_at IS NOT NULL", kind
        )
        return count


@contextlib.asynccontextmanager
async def running(*loops: Callable[[], Any]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(loop()) for loop in loops]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_each_timer_fires_exactly_once_with_two_workers(
    database: Database, settings: Settings
) -> None:
    kind = "test.two-workers"
    clock = FrozenClock(T0)
    keys = [f"k{n:04d}" for n in range(400)]
    async with database.transaction() as connection:
        for key in keys:
            await schedule_timer(
                connection, kind=kind, key=key, due_at=T0 + timedelta(minutes=5), payload={"n": key}
            )
    calls: list[Timer] = []
    small_batches = settings.model_copy(update={"timer_batch_size": 25, "timer_poll_seconds": 0.05})
    first = runner(database, small_batches, {kind: recording(calls)}, clock)
    second = runner(database, small_batches, {kind: recording(calls)}, clock)
    async with running(first.run, second.run):
        await asyncio.sleep(0.3)
        assert calls == []  # not due yet
        clock.advance(timedelta(minutes=5))

        async def all_fired() -> bool | None:
            return True if await count_fired(database, kind) == len(keys) else None

        await eventually(all_fired, timeout=20)
    assert sorted(timer.key for timer in calls) == keys  # every one, none twice
    assert {timer.payload["n"] for timer in calls} == set(keys)


async def test_a_timer_scheduled_before_a_restart_fires_once_after_it(
    database: Database, settings: Settings
) -> None:
    kind = "test.restart"
    clock = FrozenClock(T0)
    calls: list[Timer] = []
    spec = dataclasses.replace(NOTIFICATIONS, handlers={}, timer_handlers={kind: recording(calls)})
    fast = settings.model_copy(update={"timer_poll_seconds": 0.05})

    def worker() -> Worker:
        return Worker(spec, fast, topics=TOPICS, serve_http=False, clock=clock)

    await schedule(database, kind, "due-now", T0)
    await schedule(database, kind, "later", T0 + timedelta(minutes=10))
    async with running(worker().run):

        async def due_one_fired() -> bool | None:
            return True if await count_fired(database, kind) == 1 else None

        await eventually(due_one_fired)  # the first worker's timer loop runs
        assert [timer.key for timer in calls] == ["due-now"]
    # The first worker stops before the second timer is due; time passes; another starts.
    clock.advance(timedelta(minutes=11))
    async with running(worker().run):

        async def later_fired() -> bool | None:
            return True if await count_fired(database, kind) == 2 else None

        await eventually(later_fired)
    assert [timer.key for timer in calls] == ["due-now", "later"]
    row = await timer_row(database, kind, "later")
    assert row is not None and row["fired_at"] == T0 + timedelta(minutes=11)
    assert row["attempts"] == 0


async def test_a_failing_handler_is_retried_with_backoff_then_parked(
    database: Database, settings: Settings
) -> None:
    kind = "test.failing"
    follow_up = "test.failing.follow-up"
    clock = FrozenClock(T0)
    attempts: list[int] = []

    async def fails(connection: asyncpg.Connection, timer: Timer) -> None:
        attempts.append(timer.attempts)
        # Written, then rolled back with the failed attempt: never seen.
        await schedule_timer(connection, kind=follow_up, key=timer.key, due_at=T0)
        raise RuntimeError("the mail server said no")

    strict = settings.model_copy(update={"timer_max_attempts": 3, "timer_retry_base_seconds": 60})
    timers = runner(database, strict, {kind: fails}, clock)
    await schedule(database, kind, "x", T0)

    assert await timers.fire_due() == 1
    row = await timer_row(database, kind, "x")
    assert row is not None
    assert (row["attempts"], row["fired_at"], row["parked_at"]) == (1, None, None)
    assert row["last_error"] == "RuntimeError: the mail server said no"
    assert row["due_at"] == T0 + timedelta(seconds=60)
    assert await timer_row(database, follow_up, "x") is None

    assert await timers.fire_due() == 0  # not due again before its backoff
    clock.advance(timedelta(seconds=60))
    assert await timers.fire_due() == 1
    row = await timer_row(database, kind, "x")
    assert row is not None and row["due_at"] == T0 + timedelta(seconds=60 + 120)

    clock.advance(timedelta(seconds=120))
    assert await timers.fire_due() == 1
    row = await timer_row(database, kind, "x")
    assert row is not None
    assert row["attempts"] == 3 and row["fired_at"] is None
    assert row["parked_at"] == T0 + timedelta(seconds=180)

    clock.advance(timedelta(days=1))
    assert await timers.fire_due() == 0  # parked: never retried
    assert attempts == [0, 1, 2]


async def test_a_handler_that_recovers_fires_and_its_writes_commit_with_the_firing(
    database: Database, settings: Settings
) -> None:
    kind = "test.recovers"
    follow_up = "test.recovers.follow-up"
    clock = FrozenClock(T0)
    failures = ["first attempt fails"]

    async def flaky(connection: asyncpg.Connection, timer: Timer) -> None:
        await schedule_timer(
            connection, kind=follow_up, key=timer.key, due_at=T0 + timedelta(hours=1)
        )
        if failures:
            raise RuntimeError(failures.pop())

    timers = runner(database, settings, {kind: flaky}, clock)
    await schedule(database, kind, "y", T0)
    await schedule(database, kind, "z", T0)
    assert await timers.fire_due() == 2  # one failure does not hold back the other
    clock.advance(timedelta(seconds=settings.timer_retry_base_seconds))
    assert await timers.fire_due() == 1
    assert await count_fired(database, kind) == 2
    for key in ("y", "z"):
        row = await timer_row(database, follow_up, key)
        assert row is not None and row["due_at"] == T0 + timedelta(hours=1)


async def test_a_cancelled_timer_never_fires_and_a_rescheduled_one_moves(
    database: Database, settings: Settings
) -> None:
    kind = "test.cancel"
    clock = FrozenClock(T0)
    calls: list[Timer] = []
    timers = runner(database, settings, {kind: recording(calls)}, clock)
    await schedule(database, kind, "cancelled", T0 + timedelta(minutes=1))
    await schedule(database, kind, "moved", T0 + timedelta(days=1), version=1)
    async with database.transaction() as connection:
        assert await cancel_timer(connection, kind=kind, key="cancelled") is True
        assert await cancel_timer(connection, kind=kind, key="cancelled") is False
        assert await cancel_timer(connection, kind=kind, key="never-scheduled") is False
    await schedule(database, kind, "moved", T0 + timedelta(minutes=2), version=2)

    clock.advance(timedelta(minutes=5))
    assert await timers.fire_due() == 1
    assert [(timer.key, dict(timer.payload)) for timer in calls] == [("moved", {"version": 2})]
    assert await timer_row(database, kind, "cancelled") is None
    async with database.transaction() as connection:
        # Fired already: nothing left to cancel, and the record of the firing stays.
        assert await cancel_timer(connection, kind=kind, key="moved") is False
    clock.advance(timedelta(days=2))
    assert await timers.fire_due() == 0
    assert len(calls) == 1


async def test_a_naive_due_time_is_refused(database: Database) -> None:
    async with database.transaction() as connection:
        with pytest.raises(ValueError, match="timezone-aware"):
            await schedule_timer(
                connection, kind="test.naive", key="k", due_at=datetime(2026, 3, 2, 9, 0)
            )
    assert await timer_row(database, "test.naive", "k") is None
