"""Writing events: in the same transaction as the business rows they describe.

A command runs in a UnitOfWork: it writes its rows on `uow.connection` and raises events with
`uow.publish(...)`; when the block ends without error, the events go into the outbox in one
statement, and the transaction commits rows and events together (or neither).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache

import asyncpg

from shared.db.database import Database
from shared.events.contracts import EventData
from shared.events.envelope import OutgoingEvent
from shared.tracing import current_traceparent

_COLUMNS = 8


@lru_cache(maxsize=64)
def insert_statement(rows: int) -> str:
    """INSERT of `rows` outbox rows, eight parameters each: id, aggregatetype, aggregateid,
    type, topic, payload, headers, created_at."""
    values = ", ".join(
        "(" + ", ".join(f"${row * _COLUMNS + column + 1}" for column in range(_COLUMNS)) + ")"
        for row in range(rows)
    )
    return (
        "INSERT INTO outbox (id, aggregatetype, aggregateid, type, topic, payload, headers, "
        f"created_at) VALUES {values}"
    )


async def enqueue(connection: asyncpg.Connection, *events: OutgoingEvent) -> None:
    """Add events to the outbox, in one statement. Call inside the transaction that writes the
    business rows (a UnitOfWork does)."""
    if not events:
        return
    parameters: list[object] = []
    for event in events:
        parameters += [
            event.id,
            event.data.aggregate_type,
            event.data.aggregate_id(),
            event.data.event_type,
            event.data.topic,
            event.data.model_dump(mode="json"),
            {"traceparent": event.traceparent or current_traceparent()},
            event.time,
        ]
    await connection.execute(insert_statement(len(events)), *parameters)


class UnitOfWork:
    """One transaction: the rows a command writes and the events it raises."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self._pending: list[OutgoingEvent] = []

    def publish(self, *events: EventData) -> None:
        self._pending += [OutgoingEvent.of(data) for data in events]

    async def flush(self) -> None:
        pending, self._pending = self._pending, []
        await enqueue(self.connection, *pending)


@asynccontextmanager
async def unit_of_work(database: Database) -> AsyncIterator[UnitOfWork]:
    async with database.transaction() as connection:
        uow = UnitOfWork(connection)
        yield uow
        await uow.flush()
