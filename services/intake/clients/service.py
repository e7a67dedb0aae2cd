"""Client registration and lookup: rows, access facts and events in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg

from services.intake.clients.models import ClientCreate, ClientPublic
from shared.auth.facts import record_registration
from shared.auth.principal import Principal
from shared.events.contracts import ClientRegistered
from shared.messaging.outbox import UnitOfWork

_COLUMNS = (
    "c.id, c.given_name, c.family_name, c.birth_date, c.preferred_language, c.version, "
    "c.created_at, c.updated_at"
)

_INSERT = (
    """
INSERT INTO clients AS c
    (id, given_name, family_name, birth_date, preferred_language, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $6)
RETURNING """
    + _COLUMNS
)


async def register_client(
    uow: UnitOfWork, *, data: ClientCreate, registered_by: Principal
) -> ClientPublic:
    connection = uow.connection
    row = await connection.fetchrow(
        _INSERT,
        uuid4(),
        data.given_name,
        data.family_name,
        data.birth_date,
        data.preferred_language,
        datetime.now(UTC),
    )
    client = ClientPublic.model_validate(dict(row))
    await record_registration(
        connection,
        client_id=client.id,
        organization_id=registered_by.organization_id,
        team_id=registered_by.team_id,
        registered_by=registered_by.subject,
    )
    uow.publish(
        ClientRegistered(
            client_id=client.id,
            preferred_language=client.preferred_language,
            registered_at=client.created_at,
            organization_id=registered_by.organization_id,
            team_id=registered_by.team_id,
            registered_by=registered_by.subject,
        )
    )
    return client


async def get_client(connection: asyncpg.Connection, *, client_id: UUID) -> ClientPublic | None:
    row = await connection.fetchrow(f"SELECT {_COLUMNS} FROM clients c WHERE c.id = $1", client_id)
    return ClientPublic.model_validate(dict(row)) if row else None


async def list_clients(
    connection: asyncpg.Connection,
    *,
    visible: tuple[str, list[str]],
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[ClientPublic]:
    """Newest first, keyset-paginated on (created_at, id), filtered to what the caller may see."""
    clause, parameters = visible
    n = len(parameters)
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM clients c JOIN client_access a ON a.client_id = c.id "
        f"WHERE {clause} AND (${n + 1}::timestamptz IS NULL OR (c.created_at, c.id) < (${n + 1}, ${n + 2})) "
        f"ORDER BY c.created_at DESC, c.id DESC LIMIT ${n + 3}",
        *parameters,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [ClientPublic.model_validate(dict(row)) for row in rows]
