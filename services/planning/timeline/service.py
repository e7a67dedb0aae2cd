"""Writing a case's timeline: planning's own records, and entries from other services' events
(deduplicated by the event's id)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg

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
