"""HTTP for an organisation's notification rules: its admins read and replace them.

A rule set that names an unknown event type or channel, tests a field its event does not have,
or uses a message missing in one of the service's languages (or showing a parameter its event
does not offer) is refused with 422 and every problem listed; nothing is saved.
"""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Response

from services.notifications.access import RULES_READ, RULES_WRITE
from services.notifications.rules import service
from services.notifications.rules.models import RuleSet, RuleSetPublic, problems_of
from shared.audit.log import Outcome
from shared.auth.guard import GuardDep
from shared.http.app import ClockDep, DatabaseDep
from shared.http.preconditions import IfMatch, matches, precondition_required, stale
from shared.http.problems import ProblemError, problem_responses
from shared.messaging.outbox import unit_of_work

router = APIRouter(prefix="/v1/notification-rules", tags=["notification rules"])


def etag(rules: RuleSetPublic) -> str:
    identity = hashlib.sha256(rules.organization_id.encode()).hexdigest()[:16]
    return f'"{identity}.{rules.version}"'


@router.get(
    "",
    response_model=RuleSetPublic,
    responses=problem_responses(401, 403),
    summary="The notification rules in force for your organisation",
    description="`source` says whether they are the shipped defaults or your organisation's.",
)
async def get_rules(guard: GuardDep, database: DatabaseDep, response: Response) -> RuleSetPublic:
    principal = guard.principal
    grant = await guard.require(
        RULES_READ, resource_type="notification_rules", resource_id=principal.organization_id
    )
    async with unit_of_work(database) as uow:
        rules = await service.public_rules(uow.connection, principal.organization_id)
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(rules)
    return rules


@router.put(
    "",
    response_model=RuleSetPublic,
    responses=problem_responses(400, 401, 403, 412, 413, 422, 428),
    summary="Replace your organisation's notification rules",
    description="Send the ETag you read in `If-Match` (428 without, 412 when stale). The whole "
    "set is validated first: an unknown event type, channel or condition field, or a message "
    "missing a language, is a 422 listing every problem.",
)
async def put_rules(
    body: RuleSet,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    response: Response,
    if_match: IfMatch = None,
) -> RuleSetPublic:
    principal = guard.principal
    organization_id = principal.organization_id
    grant = await guard.require(
        RULES_WRITE, resource_type="notification_rules", resource_id=organization_id
    )
    problems = problems_of(body)
    if problems:
        raise await guard.refuse(
            grant,
            ProblemError(
                422,
                "invalid-rules",
                "The rules cannot be used",
                detail="Nothing was saved; every problem is listed in `errors`.",
                errors=[
                    {
                        "field": ".".join(str(part) for part in problem.location),
                        "message": problem.message,
                        "code": "invalid",
                    }
                    for problem in problems
                ],
            ),
        )
    if if_match is None:
        raise await guard.refuse(grant, precondition_required("rules"), Outcome.PRECONDITION_FAILED)
    async with unit_of_work(database) as uow:
        connection = uow.connection
        await service.lock_rules(connection, organization_id)
        current = await service.public_rules(connection, organization_id)
        if not matches(if_match, etag(current)):
            raise await guard.refuse(grant, stale("rules"), Outcome.PRECONDITION_FAILED)
        await service.save_rules(
            connection,
            organization_id=organization_id,
            rule_set=body,
            version=current.version + 1,
            updated_by=principal.subject,
            now=clock.now(),
        )
        saved = await service.public_rules(connection, organization_id)
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(saved)
    return saved
