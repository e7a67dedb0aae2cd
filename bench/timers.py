"""Durable timers: a thousand timers due in the same second, fired by two timer loops.

The loops are `shared.timers.runner.TimerRunner`s, the code every service's worker runs, here
in the bench process on the stack's notifications schema (kinds of their own, which the stack's
notifications worker never claims), so the figure is the mechanism's: claim with SKIP LOCKED,
the handler (a no-op and, as a second target, an outbox row written per timer, what a real
handler does at least), mark fired, commit.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg

from bench.load import percentile, rounded
from services.notifications.main import SPEC as NOTIFICATIONS
from shared.clock import SYSTEM_CLOCK
from shared.db.database import Database
from shared.events.contracts import Topic
from shared.http.app import service_database
from shared.settings import Settings
from shared.timers import Timer, TimerHandler, schedule_timer
from shared.timers.runner import TimerRunner

if TYPE_CHECKING:
    from bench.cases import BenchContext

Figure = dict[str, Any]
TIMERS = 1000
LEAD_SECONDS = 2.0


async def _noop(_connection: asyncpg.Connection, _timer: Timer) -> None:
    return None


async def _outbox_row(connection: asyncpg.Connection, timer: Timer) -> None:
    # A row a relay would publish; on a topic nobody reads, and deleted by the case afterwards.
    await connection.execute(
        "INSERT INTO outbox (id, aggregatetype, aggregateid, type, topic, payload, published_at) "
        "VALUES (gen_random_uuid(), 'bench', $1, 'bench.timer.fired', $2, '{}'::jsonb, now())",
        timer.key,
        Topic.AUDIT,
    )


async def timers_due_together(context: BenchContext) -> None:
    settings = context.stack.settings
    assert settings is not None
    database = service_database(NOTIFICATIONS, settings)
    await database.connect()
    try:
        for target, handler in (("noop_handler", _noop), ("outbox_row_handler", _outbox_row)):
            context.emit(await _one_second(database, settings, f"bench.{target}", handler, target))
    finally:
        await database.close()


async def _one_second(
    database: Database, settings: Settings, kind: str, handler: TimerHandler, target: str
) -> Figure:
    due_at = datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS)
    async with database.transaction() as connection:
        await connection.execute("DELETE FROM timers WHERE kind = $1", kind)
        for n in range(TIMERS):
            # Spread over the same second, as a burst of reminders would be.
            moment = due_at + timedelta(microseconds=n * 1000)
            await schedule_timer(connection, kind=kind, key=f"t{n}", due_at=moment)
    runners = [
        TimerRunner(
            service="notifications",
            database=database,
            settings=settings,
            handlers={kind: handler},
            clock=SYSTEM_CLOCK,
        )
        for _ in range(2)
    ]
    tasks = [asyncio.create_task(runner.run()) for runner in runners]
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            async with database.connection() as connection:
                fired = await connection.fetchval(
                    "SELECT count(*) FROM timers WHERE kind = $1 AND fired_at IS NOT NULL", kind
                )
            if fired == TIMERS:
                break
            await asyncio.sleep(0.05)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    async with database.connection() as connection:
        rows = await connection.fetch(
            "SELECT extract(epoch FROM fired_at - due_at) * 1000 AS late_ms, fired_at "
            "FROM timers WHERE kind = $1 AND fired_at IS NOT NULL",
            kind,
        )
        await connection.execute("DELETE FROM timers WHERE kind = $1", kind)
        await connection.execute("DELETE FROM outbox WHERE type = 'bench.timer.fired'")
    late = [float(row["late_ms"]) for row in rows]
    last_fired = max((row["fired_at"] for row in rows), default=None)
    all_fired_ms = (last_fired - due_at).total_seconds() * 1000 if last_fired else None
    return {
        "case": "timers_due_together",
        "target": target,
        "timers": TIMERS,
        "loops": len(runners),
        "fired": len(rows),
        # From the start of the second they were due in to the last one fired (aim < 2000).
        "all_fired_within_ms": rounded(all_fired_ms) if all_fired_ms is not None else None,
        "late_p50_ms": rounded(percentile(late, 50)),
        "late_p99_ms": rounded(percentile(late, 99)),
        "late_max_ms": rounded(max(late)) if late else None,
        "errors": TIMERS - len(rows),
    }
