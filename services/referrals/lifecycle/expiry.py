"""A requested referral that nobody accepts expires by itself: a durable timer (shared/timers),
scheduled in the transaction that makes it `requested` and cancelled in the one that moves it on.
The timer fires once across workers and restarts; its handler re-reads the referral and expires
it only if it is still requested and due (a move that raced the timer wins)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg

from shared.timers import Timer, cancel_timer, schedule_timer

KIND = "referral-expiry"


async def schedule(connection: asyncpg.Connection, referral_id: UUID, due_at: datetime) -> None:
    await schedule_timer(
        connection,
        kind=KIND,
        key=str(referral_id),
        due_at=due_at,
        payload={"referral_id": str(referral_id)},
    )


async def cancel(connection: asyncpg.Connection, referral_id: UUID) -> None:
    await cancel_timer(connection, kind=KIND, key=str(referral_id))


def referral_of(timer: Timer) -> UUID:
    return UUID(str(timer.payload["referral_id"]))
