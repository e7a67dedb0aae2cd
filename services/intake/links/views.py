"""HTTP for identity links: thin; rules live in service.py, permissions in access.py.

Linking needs both records in the caller's scope (`link.write`; a record outside it is a 404,
as everywhere). Break-glass opens records to read them, never to link them. Every attempt is
audited under resource type `identity_link`, once per record it touched.
"""

from __future__ import annotations

import hashlib
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Body, Path, Query, Response
from fastapi.responses import JSONResponse

from services.intake.links import service
from services.intake.links.models import (
    ClientLinks,
    LinkCreate,
    LinkCreated,
    Unlinked,
    UnlinkReason,
    UnlinkRequest,
)
from shared.audit.log import Outcome
from shared.auth.guard import Grant, Guard, GuardDep
from shared.http import idempotency
from shared.http.app import DatabaseDep
from shared.http.problems import ProblemError, problem_responses
from shared.messaging.outbox import UnitOfWork, unit_of_work

router = APIRouter(prefix="/v1/clients", tags=["identity links"])

RESOURCE = "identity_link"
ClientId = Annotated[UUID, Path(description="The client's id.")]
OtherClientId = Annotated[UUID, Path(description="The other record of the link.")]


async def _authorize_pair(
    guard: Guard, uow: UnitOfWork, action: str, client_id: UUID, other_client_id: UUID
) -> list[Grant]:
    """Both records in the caller's own scope (404 otherwise; the Guard never lets break-glass
    write)."""
    grants = [
        await guard.authorize_client(uow.connection, action, client_id, resource_type=RESOURCE)
    ]
    if other_client_id != client_id:
        grants.append(
            await guard.authorize_client(
                uow.connection, action, other_client_id, resource_type=RESOURCE
            )
        )
    return grants


async def _refuse(guard: Guard, grants: list[Grant], refused: service.LinkRefused) -> ProblemError:
    """Audit a refusal by the rules (the action did not happen) on every record it named."""
    error = ProblemError(
        refused.status, refused.slug, refused.title, detail=refused.detail, **refused.extra
    )
    outcome = Outcome.NOT_FOUND if refused.status == 404 else Outcome.DENIED
    for grant in grants:
        await guard.refuse(grant, error, outcome)
    return error


@router.post(
    "/{client_id}/links",
    status_code=201,
    response_model=LinkCreated,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
    summary="Link another record of the same person to this client",
    description="Records are linked, never merged: each keeps its data and its access, and "
    "the link can be undone. The group's canonical record is its oldest registration; every "
    "member's new canonical id reaches the other services as `ClientLinked` (ids only). "
    "Refused with 409 when the records are already linked, or when someone split them before "
    "(send `override_split: true` to link them anyway). Both records must be in your scope.",
)
async def link_client(
    client_id: ClientId,
    body: LinkCreate,
    guard: GuardDep,
    database: DatabaseDep,
    response: Response,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> LinkCreated | JSONResponse:
    idempotent = idempotency.IdempotentCreate(
        idempotency_key, "link_client", guard.principal, body, target=client_id
    )
    location = f"/v1/clients/{client_id}/links"
    async with unit_of_work(database) as uow:
        grants = await _authorize_pair(guard, uow, "link.write", client_id, body.other_client_id)
        stored = await idempotent.previous(uow.connection)
        if stored is not None:
            link_id = str(stored.body["id"])
            await guard.audit(
                uow, *(g.about(resource_id=link_id, client_id=g.client_id) for g in grants)
            )
            return stored.replay({"Location": location})
        try:
            link = await service.link_clients(
                uow,
                client_id=client_id,
                other_client_id=body.other_client_id,
                reason=body.reason,
                override_split=body.override_split,
                linked_by=guard.principal.subject,
            )
        except service.LinkRefused as refused:
            raise await _refuse(guard, grants, refused) from refused
        await idempotent.remember(uow.connection, link)
        await guard.audit(
            uow, *(g.about(resource_id=str(link.id), client_id=g.client_id) for g in grants)
        )
    response.headers["Location"] = location
    return link


@router.delete(
    "/{client_id}/links/{other_client_id}",
    response_model=Unlinked,
    responses=problem_responses(400, 401, 403, 404, 413, 422),
    summary="Undo the link between two records (they are not the same person)",
    description="The link is kept as history (who undid it, when, why) and the pair is "
    "recorded as split: automatic linking never joins them again, and linking them by hand "
    "needs `override_split`. Give the reason in the body or as the `reason` query parameter. "
    "Each member's canonical id after the split reaches the other services as "
    "`ClientUnlinked`. Both records must be in your scope.",
)
async def unlink_client(
    client_id: ClientId,
    other_client_id: OtherClientId,
    guard: GuardDep,
    database: DatabaseDep,
    body: Annotated[UnlinkRequest | None, Body()] = None,
    reason: Annotated[
        UnlinkReason | None, Query(description="Why, when not given in the body.")
    ] = None,
) -> Unlinked:
    given = {r for r in (body.reason if body else None, reason) if r is not None}
    if len(given) != 1:
        raise ProblemError(
            422,
            "validation-error",
            "The request is not valid",
            detail="Give the reason once: in the body or as the query parameter.",
            errors=[
                {
                    "field": "query.reason",
                    "message": "required (here or in the body), and only one value",
                    "code": "missing" if not given else "conflicting",
                }
            ],
        )
    async with unit_of_work(database) as uow:
        grants = await _authorize_pair(guard, uow, "link.write", client_id, other_client_id)
        try:
            unlinked = await service.unlink_clients(
                uow,
                client_id=client_id,
                other_client_id=other_client_id,
                reason=given.pop(),
                unlinked_by=guard.principal.subject,
            )
        except service.LinkRefused as refused:
            raise await _refuse(guard, grants, refused) from refused
        link_id = str(unlinked.link.id)
        await guard.audit(
            uow, *(g.about(resource_id=link_id, client_id=g.client_id) for g in grants)
        )
    return unlinked


@router.get(
    "/{client_id}/links",
    response_model=ClientLinks,
    responses=problem_responses(401, 403, 404, 422),
    summary="A client's linked records, canonical id and link history",
    description="Ids only: reading a linked record needs access to that record.",
)
async def get_client_links(
    client_id: ClientId, guard: GuardDep, database: DatabaseDep, response: Response
) -> ClientLinks:
    async with unit_of_work(database) as uow:
        grant = await guard.authorize_client(
            uow.connection, "link.read", client_id, resource_type=RESOURCE
        )
        links = await service.client_links(uow.connection, client_id)
        await guard.audit(uow, grant)
    digest = hashlib.sha256(links.model_dump_json().encode()).hexdigest()[:32]
    response.headers["ETag"] = f'"{digest}"'
    return links
