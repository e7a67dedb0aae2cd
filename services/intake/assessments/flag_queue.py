"""The flags waiting for someone: a supervisor's (or worker's) queue across every client in
their scope, oldest first, so nothing raised in a crisis waits unseen."""

from __future__ import annotations

from typing import Literal

import asyncpg

from services.intake.assessments.models import FlagPublic
from services.intake.assessments.service import FLAG_COLUMNS, IS_ACTIVE
from shared.http.pagination import Keyset

QueueState = Literal["unacknowledged", "active"]


async def list_queue(
    connection: asyncpg.Connection,
    *,
    visible: tuple[str, list[str]],
    state: QueueState,
    after: Keyset | None,
    limit: int,
) -> list[FlagPublic]:
    """Active flags (not resolved, not expired) of the visible clients, oldest first (the
    longest waiting on top); `unacknowledged` leaves out those someone already acknowledged."""
    clause, parameters = visible
    n = len(parameters)
    rows = await connection.fetch(
        f"SELECT {FLAG_COLUMNS} FROM flags f JOIN client_access a ON a.client_id = f.client_id "
        f"WHERE {clause} AND {IS_ACTIVE} "
        f"AND (${n + 1} = 'active' OR f.acknowledged_at IS NULL) "
        f"AND (${n + 2}::timestamptz IS NULL OR (f.raised_at, f.id) > (${n + 2}, ${n + 3})) "
        f"ORDER BY f.raised_at, f.id LIMIT ${n + 4}",
        *parameters,
        state,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [FlagPublic.model_validate(dict(row)) for row in rows]
