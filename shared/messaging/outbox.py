"""Writing events: in the same transaction as the business rows they describe."""

from __future__ import annotations

import asyncpg

from shared.events.envelope import OutgoingEvent
from shared.tracing import current_traceparent

_INSERT = """
INSERT INTO outbox (id, aggregatetype, aggregateid, type, topic, payload, headers, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""


async def enqueue(connection: asyncpg.Connection, *events: OutgoingEvent) -> None:
    """Add events to the outbox. Call inside the transaction that writes the business rows."""
    rows = [
        (
            event.id,
            event.data.aggregate_type,
            event.data.aggregate_id(),
            event.data.event_type,
            event.data.topic,
            event.data.model_dump(mode="json"),
            {"traceparent": event.traceparent or current_traceparent()},
            event.time,
        )
        for event in events
    ]
    # executemany costs a prepare-and-batch round of its own; one row needs one execute.
    if len(rows) == 1:
        await connection.execute(_INSERT, *rows[0])
    else:
        await connection.executemany(_INSERT, rows)
