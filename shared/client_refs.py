"""The local client reference each downstream service keeps, fed by intake's events.

Ids and the minimum facts a service needs to do its work, never names or birth dates. It is
the one way a service learns about clients: no service reads another's tables or calls it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Path
from pydantic import BaseModel
from sqlalchemy import Column, DateTime, MetaData, Table, Text, text
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.audit.log import Outcome
from shared.auth import facts
from shared.auth.guard import GuardDep
from shared.auth.policy import Permissions, Scope
from shared.auth.principal import Role
from shared.events.contracts import CaseAssigned, ClientRegistered
from shared.events.envelope import Event
from shared.http.app import DatabaseDep
from shared.http.problems import PROBLEM_RESPONSES, ProblemError
from shared.messaging.consumer import Handler
from shared.messaging.outbox import unit_of_work

READ = "client_ref.read"

# Who may read a service's client references; services add their own actions to this.
CLIENT_REF_PERMISSIONS: Permissions = {
    Role.CASEWORKER: {READ: Scope.CASELOAD},
    Role.SUPERVISOR: {READ: Scope.TEAM, "audit.read": Scope.TEAM},
    Role.INTEGRATION: {READ: Scope.ORGANISATION},
    Role.AUDITOR: {"audit.read": Scope.ALL},
}


def client_refs_table(metadata: MetaData) -> Table:
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
    )


async def on_client_registered(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ClientRegistered)
    await connection.execute(
        """
        INSERT INTO client_refs (client_id, preferred_language, registered_at, source_event_id)
        VALUES ($1, $2, $3, $4) ON CONFLICT (client_id) DO NOTHING
        """,
        data.client_id,
        data.preferred_language,
        data.registered_at,
        event.id,
    )
    await facts.on_client_registered(connection, event)


CLIENT_REF_HANDLERS: dict[str, Handler] = {
    ClientRegistered.event_type: on_client_registered,
    CaseAssigned.event_type: facts.on_case_assigned,
}


class ClientRefPublic(BaseModel):
    client_id: UUID
    preferred_language: str
    registered_at: datetime
    received_at: datetime


def client_refs_router() -> APIRouter:
    router = APIRouter(prefix="/v1/client-refs", tags=["client references"])

    @router.get(
        "/{client_id}",
        response_model=ClientRefPublic,
        responses={code: PROBLEM_RESPONSES[code] for code in (401, 403, 404, 422)},
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
                "SELECT client_id, preferred_language, registered_at, received_at "
                "FROM client_refs WHERE client_id = $1",
                client_id,
            )
            # Access facts can arrive (with CaseAssigned) before the reference itself.
            if row is None:
                raise await guard.refuse(
                    grant,
                    ProblemError(
                        404, "not-found", "Not found", detail="No client_ref with this id."
                    ),
                    Outcome.NOT_FOUND,
                )
            await guard.audit(uow, grant)
        return ClientRefPublic(**dict(row))

    return router
