"""Access facts: who a client belongs to, kept by every service in its own schema.

Intake writes them when it registers a client; the other services learn them from intake's
`ClientRegistered` and everyone learns assignments from planning's `CaseAssigned`. No service
asks another who may see a record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
from sqlalchemy import Column, DateTime, MetaData, Table, Text, text
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.events.contracts import CaseAssigned, ClientRegistered
from shared.events.envelope import Event


def client_access_table(metadata: MetaData) -> Table:
    return Table(
        "client_access",
        metadata,
        Column("client_id", PgUUID(as_uuid=True), primary_key=True),
        Column("organization_id", Text),
        Column("team_id", Text),
        Column("registered_by", Text),
        Column("owner_id", Text, comment="the worker the case is assigned to"),
        Column("assigned_at", DateTime(timezone=True)),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    )


@dataclass(frozen=True)
class ClientFacts:
    client_id: UUID
    organization_id: str | None
    team_id: str | None
    registered_by: str | None
    owner_id: str | None


async def load_facts(connection: asyncpg.Connection, client_id: UUID) -> ClientFacts | None:
    row = await connection.fetchrow(
        "SELECT client_id, organization_id, team_id, registered_by, owner_id "
        "FROM client_access WHERE client_id = $1",
        client_id,
    )
    return ClientFacts(**dict(row)) if row else None


async def record_registration(
    connection: asyncpg.Connection,
    *,
    client_id: UUID,
    organization_id: str | None,
    team_id: str | None,
    registered_by: str | None,
) -> None:
    """Keeps an assignment that arrived first (events of two topics are not ordered)."""
    await connection.execute(
        """
        INSERT INTO client_access (client_id, organization_id, team_id, registered_by)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (client_id) DO UPDATE SET
            organization_id = coalesce(client_access.organization_id, EXCLUDED.organization_id),
            team_id = CASE WHEN client_access.assigned_at IS NULL
                           THEN EXCLUDED.team_id ELSE client_access.team_id END,
            registered_by = EXCLUDED.registered_by,
            updated_at = now()
        """,
        client_id,
        organization_id,
        team_id,
        registered_by,
    )


async def record_assignment(
    connection: asyncpg.Connection,
    *,
    client_id: UUID,
    organization_id: str | None,
    owner_id: str,
    team_id: str | None,
    assigned_at: datetime,
) -> None:
    """Applies an assignment unless a later one is already known."""
    await connection.execute(
        """
        INSERT INTO client_access (client_id, organization_id, team_id, owner_id, assigned_at)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (client_id) DO UPDATE SET
            organization_id = coalesce(client_access.organization_id, EXCLUDED.organization_id),
            team_id = EXCLUDED.team_id,
            owner_id = EXCLUDED.owner_id,
            assigned_at = EXCLUDED.assigned_at,
            updated_at = now()
        WHERE client_access.assigned_at IS NULL OR client_access.assigned_at < EXCLUDED.assigned_at
        """,
        client_id,
        organization_id,
        team_id,
        owner_id,
        assigned_at,
    )


async def on_client_registered(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ClientRegistered)
    await record_registration(
        connection,
        client_id=data.client_id,
        organization_id=data.organization_id,
        team_id=data.team_id,
        registered_by=data.registered_by,
    )


async def on_case_assigned(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, CaseAssigned)
    await record_assignment(
        connection,
        client_id=data.client_id,
        organization_id=data.organization_id,
        owner_id=data.worker_id,
        team_id=data.team_id,
        assigned_at=data.assigned_at,
    )
