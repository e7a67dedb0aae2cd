"""HTTP for a client's field-level history: thin; reading it is reading the client."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path

from services.intake.clients.history import ClientChange, list_changes
from shared.auth.guard import GuardDep
from shared.http.app import DatabaseDep
from shared.http.pagination import Cursor, Limit, Page, decode_keyset, keyset_page
from shared.http.problems import problem_responses
from shared.messaging.outbox import unit_of_work

router = APIRouter(prefix="/v1/clients", tags=["clients"])


@router.get(
    "/{client_id}/history",
    response_model=Page[ClientChange],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="A client's change history, newest first: who changed which field from what to what",
    description="Every accepted change of the record (`PATCH /v1/clients/{id}`), one entry per "
    "version. Shows the record's values, so it needs the same access as reading the client; "
    "the read is audited.",
)
async def get_client_history(
    client_id: Annotated[UUID, Path()],
    guard: GuardDep,
    database: DatabaseDep,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[ClientChange]:
    after = decode_keyset(cursor) if cursor else None
    async with unit_of_work(database) as uow:
        grant = await guard.authorize_client(
            uow.connection, "client.read", client_id, resource_type="client_history"
        )
        found = await list_changes(
            uow.connection, client_id=client_id, after=after, limit=limit + 1
        )
        await guard.audit(uow, grant)
    return keyset_page(found, limit, lambda change: (change.changed_at, change.id))
