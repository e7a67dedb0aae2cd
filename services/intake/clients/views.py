"""HTTP for clients: thin; rules live in service.py, permissions in access.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse

from services.intake.clients import service
from services.intake.clients.models import ClientCreate, ClientPublic
from shared.auth.guard import GuardDep
from shared.http import idempotency
from shared.http.app import DatabaseDep
from shared.http.pagination import (
    Cursor,
    Limit,
    Page,
    decode_cursor,
    encode_cursor,
    invalid_cursor,
)
from shared.http.problems import PROBLEM_RESPONSES
from shared.messaging.outbox import unit_of_work

router = APIRouter(prefix="/v1/clients", tags=["clients"])


def etag(client: ClientPublic) -> str:
    return f'"{client.id}.{client.version}"'


@router.post(
    "",
    status_code=201,
    response_model=ClientPublic,
    responses={code: PROBLEM_RESPONSES[code] for code in (400, 401, 403, 413, 422)},
    summary="Register a client",
    description="Stores the client and publishes `ClientRegistered` (no names or birth date). "
    "The client is on the registering worker's caseload until the case is assigned.",
)
async def register_client(
    body: ClientCreate,
    guard: GuardDep,
    database: DatabaseDep,
    response: Response,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> ClientPublic | JSONResponse:
    grant = await guard.require("client.create", resource_type="client")
    # Keys are per caller: one user's key can never replay another user's response.
    scope = f"register_client:{guard.principal.subject}"
    async with unit_of_work(database) as uow:
        connection = uow.connection
        if idempotency_key:
            stored = await idempotency.claim(
                connection,
                key=idempotency_key,
                scope=scope,
                request_fingerprint=idempotency.fingerprint(body),
            )
            if stored is not None:
                replayed = ClientPublic.model_validate(stored.body)
                return JSONResponse(
                    stored.body,
                    status_code=stored.status_code,
                    headers={"ETag": etag(replayed), "Location": f"/v1/clients/{replayed.id}"},
                )
        client = await service.register_client(uow, data=body, registered_by=guard.principal)
        if idempotency_key:
            await idempotency.remember(
                connection,
                key=idempotency_key,
                scope=scope,
                status_code=201,
                body=client.model_dump(mode="json"),
            )
        await guard.audit(uow, grant.about(resource_id=str(client.id), client_id=client.id))
    response.headers["ETag"] = etag(client)
    response.headers["Location"] = f"/v1/clients/{client.id}"
    return client


@router.get(
    "",
    response_model=Page[ClientPublic],
    responses={code: PROBLEM_RESPONSES[code] for code in (400, 401, 403, 422)},
    summary="List the clients you may see, newest first",
)
async def list_clients(
    guard: GuardDep, database: DatabaseDep, cursor: Cursor = None, limit: Limit = 50
) -> Page[ClientPublic]:
    grant = await guard.require("client.list", resource_type="client")
    after = None
    if cursor:
        created_at, client_id = decode_cursor(cursor, 2)
        try:
            after = (datetime.fromisoformat(created_at), UUID(client_id))
        except (TypeError, ValueError) as error:
            raise invalid_cursor() from error
    async with unit_of_work(database) as uow:
        connection = uow.connection
        clients = await service.list_clients(
            connection,
            visible=guard.policy.list_filter(guard.principal, "client.list", first_parameter=1),
            after=after,
            limit=limit + 1,
        )
        page = clients[:limit]
        # One record per client the caller was shown: each client's access log is complete.
        shown = [grant.about(resource_id=str(c.id), client_id=c.id) for c in page]
        await guard.audit(uow, *(shown or [grant]))
    next_cursor = (
        encode_cursor(page[-1].created_at.isoformat(), page[-1].id)
        if len(clients) > limit
        else None
    )
    return Page[ClientPublic](items=page, next_cursor=next_cursor)


@router.get(
    "/{client_id}",
    response_model=ClientPublic,
    responses={code: PROBLEM_RESPONSES[code] for code in (401, 403, 404, 422)},
    summary="Read a client",
)
async def get_client(
    client_id: Annotated[UUID, Path()], guard: GuardDep, database: DatabaseDep, response: Response
) -> ClientPublic:
    async with unit_of_work(database) as uow:
        connection = uow.connection
        grant = await guard.authorize_client(
            connection, "client.read", client_id, resource_type="client"
        )
        client = await service.get_client(connection, client_id=client_id)
        await guard.audit(uow, grant)
    assert client is not None, "access facts exist for every registered client"
    response.headers["ETag"] = etag(client)
    return client
