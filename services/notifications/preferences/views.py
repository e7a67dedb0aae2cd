"""HTTP for the caller's own notification preferences."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Response

from services.notifications.access import PREFERENCES_READ, PREFERENCES_WRITE
from services.notifications.channels import CHANNELS
from services.notifications.preferences import service
from services.notifications.preferences.models import PreferencesPublic, PreferencesUpdate
from shared.audit.log import Outcome
from shared.auth.guard import GuardDep
from shared.auth.principal import Principal
from shared.http.app import ClockDep, DatabaseDep
from shared.http.preconditions import IfMatch, matches, precondition_required, stale
from shared.http.problems import ProblemError, problem_responses
from shared.messaging.outbox import unit_of_work

router = APIRouter(prefix="/v1/preferences", tags=["preferences"])


def etag(principal: Principal, version: int) -> str:
    identity = hashlib.sha256(f"{principal.organization_id}\0{principal.subject}".encode())
    return f'"{identity.hexdigest()[:16]}.{version}"'


@router.get(
    "",
    response_model=PreferencesPublic,
    responses=problem_responses(401, 403),
    summary="Your notification preferences (defaults until you save yours)",
)
async def get_preferences(
    guard: GuardDep, database: DatabaseDep, response: Response
) -> PreferencesPublic:
    principal = guard.principal
    grant = await guard.require(
        PREFERENCES_READ, resource_type="preferences", resource_id=principal.subject
    )
    async with unit_of_work(database) as uow:
        found = await service.load(
            uow.connection, organization_id=principal.organization_id, user_id=principal.subject
        )
        await guard.audit(uow, grant)
    preferences = found or PreferencesPublic(version=0)
    response.headers["ETag"] = etag(principal, preferences.version)
    return preferences


@router.put(
    "",
    response_model=PreferencesPublic,
    responses=problem_responses(400, 401, 403, 412, 413, 422, 428),
    summary="Replace your notification preferences",
    description="Send the ETag you read in `If-Match` (428 without, 412 when stale). Quiet "
    "hours delay notifications that are neither `crisis` nor `high` until they end.",
)
async def put_preferences(
    body: PreferencesUpdate,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
    if_match: IfMatch = None,
) -> PreferencesPublic:
    principal = guard.principal
    grant = await guard.require(
        PREFERENCES_WRITE, resource_type="preferences", resource_id=principal.subject
    )
    unknown = sorted({c for chosen in body.channels.values() for c in chosen} - set(CHANNELS))
    if unknown:
        raise await guard.refuse(
            grant,
            ProblemError(
                422,
                "validation-error",
                "The request is not valid",
                detail="Nothing was changed.",
                errors=[
                    {
                        "field": "body.channels",
                        "message": f"unknown channel {name}; known: {', '.join(sorted(CHANNELS))}",
                        "code": "invalid",
                    }
                    for name in unknown
                ],
            ),
        )
    if if_match is None:
        raise await guard.refuse(
            grant, precondition_required("preferences"), Outcome.PRECONDITION_FAILED
        )
    async with unit_of_work(database) as uow:
        connection = uow.connection
        await connection.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('preferences:' || $1 || ':' || $2, 0))",
            principal.organization_id,
            principal.subject,
        )
        current = await service.load(
            connection, organization_id=principal.organization_id, user_id=principal.subject
        )
        version = current.version if current else 0
        if not matches(if_match, etag(principal, version)):
            raise await guard.refuse(grant, stale("preferences"), Outcome.PRECONDITION_FAILED)
        saved = await service.save(
            connection,
            organization_id=principal.organization_id,
            user_id=principal.subject,
            update=body,
            version=version + 1,
            now=clock.now(),
        )
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(principal, saved.version)
    return saved
