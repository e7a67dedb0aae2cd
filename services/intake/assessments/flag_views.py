"""HTTP for flags on a client: raised by hand or by a crisis answer, acknowledged, resolved."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse

from services.intake.assessments import service
from services.intake.assessments.models import FlagCreate, FlagPublic, ResolutionCreate
from services.intake.assessments.problems import conflict
from shared.auth.guard import Grant, Guard, GuardDep
from shared.http import idempotency
from shared.http.app import DatabaseDep
from shared.http.pagination import Cursor, Limit, Page, decode_keyset, keyset_page
from shared.http.problems import ProblemError, problem_responses
from shared.messaging.outbox import UnitOfWork, unit_of_work

router = APIRouter(prefix="/v1/clients/{client_id}/flags", tags=["flags"])

ClientId = Annotated[UUID, Path()]
FlagId = Annotated[UUID, Path()]
Include = Annotated[
    Literal["active", "all"],
    Query(description="`active` (default): neither resolved nor expired; `all`: every flag."),
]


def _location(flag: FlagPublic) -> str:
    return f"/v1/clients/{flag.client_id}/flags/{flag.id}"


@router.get(
    "",
    response_model=Page[FlagPublic],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="List a client's flags, newest first",
)
async def list_flags(
    client_id: ClientId,
    guard: GuardDep,
    database: DatabaseDep,
    include: Include = "active",
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[FlagPublic]:
    keyset = decode_keyset(cursor) if cursor else None
    async with unit_of_work(database) as uow:
        grant = await guard.authorize_client(
            uow.connection, "flag.read", client_id, resource_type="flag"
        )
        found = await service.list_flags(
            uow.connection,
            client_id=client_id,
            include_inactive=include == "all",
            after=keyset,
            limit=limit + 1,
        )
        page = keyset_page(found, limit, lambda f: (f.raised_at, f.id))
        shown = [grant.about(resource_id=str(f.id), client_id=client_id) for f in page.items]
        await guard.audit(uow, *(shown or [grant]))
    return page


@router.post(
    "",
    status_code=201,
    response_model=FlagPublic,
    responses=problem_responses(400, 401, 403, 404, 413, 422),
    summary="Raise a flag on a client",
    description="Publishes `FlagRaised` (type and severity; never the note), or "
    "`ProtectedFlagRaised` on the protected topic for a crisis or a protected type.",
)
async def raise_flag(
    client_id: ClientId,
    body: FlagCreate,
    guard: GuardDep,
    database: DatabaseDep,
    response: Response,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> FlagPublic | JSONResponse:
    idempotent = idempotency.IdempotentCreate(
        idempotency_key, "raise_flag", guard.principal, body, target=client_id
    )
    async with unit_of_work(database) as uow:
        connection = uow.connection
        grant = await guard.authorize_client(
            connection, "flag.write", client_id, resource_type="flag"
        )
        stored = await idempotent.previous(connection)
        if stored is not None:
            replayed = FlagPublic.model_validate(stored.body)
            await guard.audit(uow, grant.about(resource_id=str(replayed.id), client_id=client_id))
            return stored.replay({"Location": _location(replayed)})
        flag = await service.raise_flag(
            uow, client_id=client_id, data=body, raised_by=guard.principal.subject
        )
        await idempotent.remember(connection, flag)
        await guard.audit(uow, grant.about(resource_id=str(flag.id), client_id=client_id))
    response.headers["Location"] = _location(flag)
    return flag


@router.get(
    "/{flag_id}",
    response_model=FlagPublic,
    responses=problem_responses(401, 403, 404, 422),
    summary="Read a flag",
)
async def get_flag(
    client_id: ClientId, flag_id: FlagId, guard: GuardDep, database: DatabaseDep
) -> FlagPublic:
    async with unit_of_work(database) as uow:
        grant = await guard.authorize_client(
            uow.connection, "flag.read", client_id, resource_type="flag", resource_id=str(flag_id)
        )
        flag = await guard.found(
            grant, await service.get_flag(uow.connection, client_id=client_id, flag_id=flag_id)
        )
        await guard.audit(uow, grant)
    return flag


async def _locked_flag(
    guard: Guard, uow: UnitOfWork, client_id: UUID, flag_id: UUID
) -> tuple[Grant, FlagPublic]:
    grant = await guard.authorize_client(
        uow.connection, "flag.write", client_id, resource_type="flag", resource_id=str(flag_id)
    )
    flag = await guard.found(
        grant,
        await service.get_flag(
            uow.connection, client_id=client_id, flag_id=flag_id, for_update=True
        ),
    )
    return grant, flag


@router.post(
    "/{flag_id}/acknowledgement",
    response_model=FlagPublic,
    responses=problem_responses(401, 403, 404, 409, 422),
    summary="Acknowledge a flag: someone has seen it and is acting",
    description="Records who and when, and publishes `FlagAcknowledged` (protected topic; notifications stops escalating the flag). 409 when it is already acknowledged or resolved.",
)
async def acknowledge_flag(
    client_id: ClientId, flag_id: FlagId, guard: GuardDep, database: DatabaseDep
) -> FlagPublic:
    refusal: ProblemError | None = None
    async with unit_of_work(database) as uow:
        grant, flag = await _locked_flag(guard, uow, client_id, flag_id)
        try:
            flag = await service.acknowledge_flag(
                uow.connection, flag=flag, acknowledged_by=guard.principal.subject
            )
        except service.FlagStateConflict as state:
            refusal = conflict(state.slug, state.title, state.detail)
        else:
            # In the same transaction: notifications stops escalating the flag on it.
            uow.publish(service.acknowledged_event(flag))
        # Allowed either way (the caller may see the flag): audited as allowed.
        await guard.audit(uow, grant)
    if refusal is not None:
        raise refusal
    return flag


@router.post(
    "/{flag_id}/resolution",
    response_model=FlagPublic,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
    summary="Resolve a flag, with a note on how",
    description="Records who, when and the note (never published). 409 when already resolved.",
)
async def resolve_flag(
    client_id: ClientId,
    flag_id: FlagId,
    body: ResolutionCreate,
    guard: GuardDep,
    database: DatabaseDep,
) -> FlagPublic:
    refusal: ProblemError | None = None
    async with unit_of_work(database) as uow:
        grant, flag = await _locked_flag(guard, uow, client_id, flag_id)
        try:
            flag = await service.resolve_flag(
                uow.connection, flag=flag, note=body.note, resolved_by=guard.principal.subject
            )
        except service.FlagStateConflict as state:
            refusal = conflict(state.slug, state.title, state.detail)
        await guard.audit(uow, grant)
    if refusal is not None:
        raise refusal
    return flag
