"""Client registration and lookup: rows and their events written in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg

from services.intake.clients.models import ClientCreate, ClientPublic
from shared.events.contracts import ClientRegistered
from shared.events.envelope import OutgoingEvent
from shared.messaging import outbox

_COLUMNS = (
    "id, given_name, family_name, birth_date, preferred_language, version, created_at, updated_at"
)

_INSERT = f"""
INSERT INTO clients (id, given_name, family_name, birth_date, preferred_language, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $6)
RETURNING {_COLUMNS}
"""


async def register_client(connection: asyncpg.Connection, *, data: ClientCreate) -> ClientPublic:
    now = datetime.now(UTC)
    row = await connection.fetchrow(
        _INSERT,
        uuid4(),
        data.given_name,
        data.family_name,
        data.birth_date,
        data.preferred_language,
        now,
    )
    client = ClientPublic.model_validate(dict(row))
    await outbox.enqueue(
        connection,
        OutgoingEvent.of(
            ClientRegistered(
                client_id=client.id,
                preferred_language=client.preferred_language,
                registered_at=client.created_at,
            )
        ),
    )
    return client


async def get_client(connection: asyncpg.Connection, *, client_id: UUID) -> ClientPublic | None:
    row = await connection.fetchrow(f"SELECT {_COLUMNS} FROM clients WHERE id = $1", client_id)
    return ClientPublic.model_validate(dict(row)) if row else None
