"""Writing a case's timeline: planning's own records, and entries from other services' events
(deduplicated by the event's id)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg

from services.planning.timeline.models import TimelineEntry

NO_CODES: Mapping[str, str] = {}


async def record_timeline(
    connection: asyncpg.Connection,
    *,
    case_id: UUID,
    client_id: UUID,
    kind: str,
    occurred_at: datetime,
    subject_type: str | None = None,
    subject_id: UUID | None = None,
    codes: Mapping[str, str] = NO_CODES,
    source: str = "planning",
    event_id: UUID | None = None,
) -> None:
    """Add one entry; an entry for an event already recorded (same `event_id`) is ignored."""
    await connection.execute(
        "INSERT INTO case_timeline (id, case_id, client_id, occurred_at, kind, subject_type, "
        "subject_id, codes, source, event_id, recorded_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
        "ON CONFLICT (event_id) DO NOTHING",
        uuid4(),
        case_id,
        client_id,
        occurred_at,
        kind,
        subject_type,
        subject_id,
        dict(codes),
        source,
        event_id,
        datetime.now(UTC),
    )


async def timeline_page(
    connection: asyncpg.Connection,
    case_id: UUID,
    *,
    after: tuple[datetime, UUID] | None,
    descending: bool,
    limit: int,
) -> list[TimelineEntry]:
    """Up to `limit` entries of the case after the keyset `after`, by (occurred_at, id)."""
    direction, beyond = ("DESC", "<") if descending else ("ASC", ">")
    values: list[object] = [case_id]
    condition = ""
    if after is not None:
        values += [after[0], after[1]]
        condition = f" AND (occurred_at, id) {beyond} ($2, $3)"
    values.append(limit)
    rows = await connection.fetch(
        "SELECT id, case_id, occurred_at, kind, subject_type, subject_id, codes, source "
        f"FROM case_timeline WHERE case_id = $1{condition} "
        f"ORDER BY occurred_at {direction}, id {direction} LIMIT ${len(values)}",
        *values,
    )
    return [TimelineEntry.model_validate(dict(row)) for row in rows]
