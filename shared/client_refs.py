"""The local client reference each downstream service keeps, fed by intake's events.

Ids and the minimum facts a service needs to do its work, never names or birth dates. It is
the one way a service learns about clients: no service reads another's tables or calls it.

Identity links: each reference carries `canonical_client_id`, the canonical record of the
person's linked group (NULL: the client itself), set from intake's `ClientLinked` and
`ClientUnlinked`. A link never changes who may see a reference: access facts stay per record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Path
from pydantic import BaseModel, Field
from sqlalchemy import Column, Connection, DateTime, Index, MetaData, Table, Text, inspect, text
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.audit.log import Outcome
from shared.auth import facts
from shared.auth.guard import GuardDep
from shared.auth.policy import ActionKind, ActionKinds, Permissions, Scope
from shared.auth.principal import Role
from shared.events.contracts import CaseAssigned, ClientRegistered, ClientUpdated
from shared.events.envelope import Event
from shared.events.identity import ClientLinked, ClientUnlinked
from shared.http.app import DatabaseDep
from shared.http.problems import not_found, problem_responses
from shared.messaging.consumer import Handler
from shared.messaging.outbox import unit_of_work

READ = "client_ref.read"

# Who may read a service's client references; services add their own actions to this.
CLIENT_REF_PERMISSIONS: Permissions = {
    Role.CASEWORKER: {READ: Scope.CASELOAD},
    Role.SUPERVISOR: {READ: Scope.TEAM, "audit.read": Scope.TEAM},
    Role.INTEGRATION: {READ: Scope.ORGANISATION},
    Role.AUDITOR: {"audit.read": Scope.ORGANISATION},
    Role.PLATFORM_AUDITOR: {"audit.read": Scope.ALL_ORGANISATIONS},
}
CLIENT_REF_KINDS: ActionKinds = {READ: ActionKind.READ, "audit.read": ActionKind.READ}


def client_refs_table(metadata: MetaData) -> Table:
    """The references, and (in the same metadata) the canonical ids that arrived before them."""
    client_ref_links_pending_table(metadata)
    return Table(
        "client_refs",
        metadata,
        Column("client_id", PgUUID(as_uuid=True), primary_key=True),
        Column("preferred_language", Text, nullable=False),
        Column("registered_at", DateTime(timezone=True), nullable=False),
        Column("source_event_id", Text, nullable=False),
        Column(
            "received_at", DateTime(timezone=True), nullable=False, server_default=text("now()")
        ),
        Column(
            "canonical_client_id",
            PgUUID(as_uuid=True),
            comment="the canonical record of the client's linked group; NULL: the client itself",
        ),
        Index("ix_client_refs_canonical_client_id", "canonical_client_id"),
    )


def client_ref_links_pending_table(metadata: MetaData) -> Table:
    """A link or unlink that arrived before the client's reference: applied when it comes."""
    return Table(
        "client_ref_links_pending",
        metadata,
        Column("client_id", PgUUID(as_uuid=True), primary_key=True),
        Column("canonical_client_id", PgUUID(as_uuid=True)),
        Column("source_event_id", Text, nullable=False),
        Column(
            "received_at", DateTime(timezone=True), nullable=False, server_default=text("now()")
        ),
    )


# Migrations call these, never the live factories above: what a revision creates must not
# change when the factories do. (Revision 0001 of the consuming services creates client_refs
# with `client_refs_table`, so on a fresh database it already has what v2 adds: v2 adds only
# what is missing.)
def add_client_ref_links_v2(connection: Connection, schema: str) -> None:
    """Revision "client links": the canonical id on client_refs and the pending table."""
    existing = inspect(connection)
    columns = {column["name"] for column in existing.get_columns("client_refs", schema=schema)}
    if "canonical_client_id" not in columns:
        connection.exec_driver_sql(
            f'ALTER TABLE "{schema}".client_refs ADD COLUMN canonical_client_id uuid'
        )
        connection.exec_driver_sql(
            f'COMMENT ON COLUMN "{schema}".client_refs.canonical_client_id IS '
            "'the canonical record of the client''s linked group; NULL: the client itself'"
        )
    indexes = {index["name"] for index in existing.get_indexes("client_refs", schema=schema)}
    if "ix_client_refs_canonical_client_id" not in indexes:
        connection.exec_driver_sql(
            "CREATE INDEX ix_client_refs_canonical_client_id "
            f'ON "{schema}".client_refs (canonical_client_id)'
        )
    if not existing.has_table("client_ref_links_pending", schema=schema):
        connection.exec_driver_sql(
            f'CREATE TABLE "{schema}".client_ref_links_pending ('
            "client_id uuid NOT NULL, canonical_client_id uuid, source_event_id text NOT NULL, "
            "received_at timestamptz NOT NULL DEFAULT now(), "
            "CONSTRAINT pk_client_ref_links_pending PRIMARY KEY (client_id))"
        )


def drop_client_ref_links_v2(connection: Connection, schema: str) -> None:
    connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{schema}".client_ref_links_pending')
    connection.exec_driver_sql(
        f'DROP INDEX IF EXISTS "{schema}".ix_client_refs_canonical_client_id'
    )
    connection.exec_driver_sql(
        f'ALTER TABLE "{schema}".client_refs DROP COLUMN IF EXISTS canonical_client_id'
    )


async def on_client_registered(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ClientRegistered)
    # A link (or unlink) of this client that came first is applied now, and forgotten.
    await connection.execute(
        """
        WITH pending AS (
            DELETE FROM client_ref_links_pending WHERE client_id = $1
            RETURNING canonical_client_id
        )
        INSERT INTO client_refs
            (client_id, preferred_language, registered_at, source_event_id, canonical_client_id)
        VALUES ($1, $2, $3, $4, (SELECT canonical_client_id FROM pending))
        ON CONFLICT (client_id) DO NOTHING
        """,
        data.client_id,
        data.preferred_language,
        data.registered_at,
        event.id,
    )
    await facts.on_client_registered(connection, event)


async def set_canonical(
    connection: asyncpg.Connection, *, client_id: UUID, canonical_client_id: UUID, event_id: str
) -> None:
    """Point the client's reference at its group's canonical record (NULL when it is the
    client itself). Intake publishes a client's link events in decision order on the client's
    partition, and the inbox drops repeats, so the last one applied is the current state;
    applying one twice changes nothing. Before the reference exists, it waits in the pending
    table. Access facts are not touched: a link widens nobody's access."""
    canonical = None if canonical_client_id == client_id else canonical_client_id
    updated = await connection.execute(
        "UPDATE client_refs SET canonical_client_id = $2 WHERE client_id = $1",
        client_id,
        canonical,
    )
    if updated == "UPDATE 0":
        await connection.execute(
            """
            INSERT INTO client_ref_links_pending (client_id, canonical_client_id, source_event_id)
            VALUES ($1, $2, $3)
            ON CONFLICT (client_id) DO UPDATE SET
                canonical_client_id = EXCLUDED.canonical_client_id,
                source_event_id = EXCLUDED.source_event_id,
                received_at = now()
            """,
            client_id,
            canonical,
            event_id,
        )


async def on_client_linked(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ClientLinked)
    await set_canonical(
        connection,
        client_id=data.client_id,
        canonical_client_id=data.canonical_client_id,
        event_id=event.id,
    )


async def on_client_unlinked(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ClientUnlinked)
    await set_canonical(
        connection,
        client_id=data.client_id,
        canonical_client_id=data.canonical_client_id,
        event_id=event.id,
    )


async def on_client_updated(connection: asyncpg.Connection, event: Event) -> None:
    """Keep the facts this service holds current. An update that arrives before the
    registration changes nothing: the registration carries the facts of its time, and a later
    update of the same client follows it on the same partition."""
    data = event.data
    assert isinstance(data, ClientUpdated)
    await connection.execute(
        "UPDATE client_refs SET preferred_language = $2 WHERE client_id = $1",
        data.client_id,
        data.preferred_language,
    )


CLIENT_REF_HANDLERS: dict[str, Handler] = {
    ClientRegistered.event_type: on_client_registered,
    ClientUpdated.event_type: on_client_updated,
    CaseAssigned.event_type: facts.on_case_assigned,
    ClientLinked.event_type: on_client_linked,
    ClientUnlinked.event_type: on_client_unlinked,
}


class ClientRefPublic(BaseModel):
    client_id: UUID
    preferred_language: str
    registered_at: datetime
    received_at: datetime
    canonical_client_id: UUID = Field(
        description="The canonical record of the person's linked records at intake (the "
        "oldest registration); the client itself when it is linked to none. Reading that "
        "record needs access to it."
    )


def client_refs_router() -> APIRouter:
    router = APIRouter(prefix="/v1/client-refs", tags=["client references"])

    @router.get(
        "/{client_id}",
        response_model=ClientRefPublic,
        responses=problem_responses(401, 403, 404, 422),
        summary="This service's reference to a client registered at intake",
    )
    async def get_client_ref(
        client_id: Annotated[UUID, Path()], guard: GuardDep, database: DatabaseDep
    ) -> ClientRefPublic:
        async with unit_of_work(database) as uow:
            connection = uow.connection
            grant = await guard.authorize_client(
                connection, READ, client_id, resource_type="client_ref"
            )
            row = await connection.fetchrow(
                "SELECT client_id, preferred_language, registered_at, received_at, "
                "coalesce(canonical_client_id, client_id) AS canonical_client_id "
                "FROM client_refs WHERE client_id = $1",
                client_id,
            )
            # Access facts can arrive (with CaseAssigned) before the reference itself.
            if row is None:
                raise await guard.refuse(
                    grant,
                    not_found("client_ref"),
                    Outcome.NOT_FOUND,
                )
            await guard.audit(uow, grant)
        return ClientRefPublic(**dict(row))

    return router
