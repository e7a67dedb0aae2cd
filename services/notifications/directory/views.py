"""HTTP for an organisation's on-call list: its admins keep it, supervisors may read it.

The on-call list hears crisis flags of clients with no assigned worker, the last level of a
crisis escalation, and referrals addressed to the organisation (rules decide)."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Response

from services.notifications.access import ON_CALL_READ, ON_CALL_WRITE
from services.notifications.directory import service
from services.notifications.directory.models import OnCallPublic, OnCallUpdate
from shared.audit.log import Outcome
from shared.auth.guard import GuardDep
from shared.http.app import ClockDep, DatabaseDep
from shared.http.preconditions import IfMatch, matches, precondition_required, stale
from shared.http.problems import problem_responses
from shared.messaging.outbox import unit_of_work

router = APIRouter(prefix="/v1/on-call", tags=["on-call"])


def etag(on_call: OnCallPublic) -> str:
    identity = hashlib.sha256(on_call.organization_id.encode()).hexdigest()[:16]
    return f'"{identity}.{on_call.version}"'


@router.get(
    "",
    response_model=OnCallPublic,
    responses=problem_responses(401, 403),
    summary="Who is on call in your organisation",
)
async def get_on_call(guard: GuardDep, database: DatabaseDep, response: Response) -> OnCallPublic:
    organization_id = guard.principal.organization_id
    grant = await guard.require(ON_CALL_READ, resource_type="on_call", resource_id=organization_id)
    async with unit_of_work(database) as uow:
        on_call = OnCallPublic(
            organization_id=organization_id,
            user_ids=await service.on_call(uow.connection, organization_id),
            version=await service.on_call_version(uow.connection, organization_id),
        )
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(on_call)
    return on_call


@router.put(
    "",
    response_model=OnCallPublic,
    responses=problem_responses(400, 401, 403, 412, 413, 422, 428),
    summary="Replace your organisation's on-call list",
    description="Send the ETag you read in `If-Match` (428 without, 412 when stale).",
)
async def put_on_call(
    body: OnCallUpdate,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
    if_match: IfMatch = None,
) -> OnCallPublic:
    organization_id = guard.principal.organization_id
    grant = await guard.require(ON_CALL_WRITE, resource_type="on_call", resource_id=organization_id)
    if if_match is None:
        raise await guard.refuse(
            grant, precondition_required("on-call list"), Outcome.PRECONDITION_FAILED
        )
    async with unit_of_work(database) as uow:
        connection = uow.connection
        await service.lock_on_call(connection, organization_id)
        current = OnCallPublic(
            organization_id=organization_id,
            user_ids=[],
            version=await service.on_call_version(connection, organization_id),
        )
        if not matches(if_match, etag(current)):
            raise await guard.refuse(grant, stale("on-call list"), Outcome.PRECONDITION_FAILED)
        version = await service.replace_on_call(
            connection,
            organization_id=organization_id,
            user_ids=list(body.user_ids),
            updated_by=guard.principal.subject,
            now=clock.now(),
        )
        on_call = OnCallPublic(
            organization_id=organization_id,
            user_ids=await service.on_call(connection, organization_id),
            version=version,
        )
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(on_call)
    return on_call
