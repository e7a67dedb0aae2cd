"""HTTP for clients: thin, the rules live in service.py."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse

from services.intake.clients import service
from services.intake.clients.models import ClientCreate, ClientPublic
from shared.http import idempotency
from shared.http.app import DatabaseDep
from shared.http.problems import PROBLEM_RESPONSES, ProblemError

router = APIRouter(prefix="/v1/clients", tags=["clients"])


def etag(client: ClientPublic) -> str:
    return f'"{client.id}.{client.version}"'


@router.post(
    "",
    status_code=201,
    response_model=ClientPublic,
    responses={code: PROBLEM_RESPONSES[code] for code in (413, 422)},
    summary="Register a client",
    description="Stores the client and publishes `ClientRegistered` (no names or birth date).",
)
async def register_client(
    body: ClientCreate,
    database: DatabaseDep,
    response: Response,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> ClientPublic | JSONResponse:
    async with database.transaction() as connection:
        if idempotency_key:
            stored = await idempotency.claim(
                connection,
                key=idempotency_key,
                scope="register_client",
                request_fingerprint=idempotency.fingerprint(body),
            )
            if stored is not None:
                replayed = ClientPublic.model_validate(stored.body)
                return JSONResponse(
                    stored.body,
                    status_code=stored.status_code,
                    headers={"ETag": etag(replayed), "Location": f"/v1/clients/{replayed.id}"},
                )
        client = await service.register_client(connection, data=body)
        if idempotency_key:
            await idempotency.remember(
                connection,
                key=idempotency_key,
                scope="register_client",
                status_code=201,
                body=client.model_dump(mode="json"),
            )
    response.headers["ETag"] = etag(client)
    response.headers["Location"] = f"/v1/clients/{client.id}"
    return client


@router.get(
    "/{client_id}",
    response_model=ClientPublic,
    responses={404: PROBLEM_RESPONSES[404]},
    summary="Read a client",
)
async def get_client(
    client_id: Annotated[UUID, Path()], database: DatabaseDep, response: Response
) -> ClientPublic:
    async with database.pool.acquire() as connection:
        client = await service.get_client(connection, client_id=client_id)
    if client is None:
        raise ProblemError(404, "not-found", "Not found", detail="No client with this id.")
    response.headers["ETag"] = etag(client)
    return client
