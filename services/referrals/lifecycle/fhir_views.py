"""HTTP for the FHIR exchange of a referral: thin; the mapping lives in fhir.py, the rules in
service.py and transitions.json (the same as the JSON API's)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response

from services.referrals.lifecycle import fhir
from services.referrals.lifecycle.authorize import authorize_referral
from services.referrals.lifecycle.views import ReferralId, apply_change, etag, timing
from shared.audit.log import Outcome
from shared.auth.guard import GuardDep
from shared.http.app import ClockDep, DatabaseDep
from shared.http.preconditions import IfMatch, matches, precondition_required, stale
from shared.http.problems import (
    RESOURCE_HEADERS,
    ProblemError,
    problem_responses,
)
from shared.messaging.outbox import unit_of_work

router = APIRouter(prefix="/v1/referrals", tags=["fhir"])

FHIR_JSON = "application/fhir+json"
_FHIR_SCHEMA = {"type": "object", "description": "A FHIR R4 resource (JSON)."}


class FhirResponse(Response):
    media_type = FHIR_JSON


@router.get(
    "/{referral_id}/fhir",
    response_class=FhirResponse,
    responses={
        **problem_responses(401, 403, 404, 422),
        200: {
            "content": {FHIR_JSON: {"schema": _FHIR_SCHEMA}},
            "headers": {"ETag": RESOURCE_HEADERS["ETag"]},
            "description": "A FHIR R4 Bundle (type collection).",
        },
    },
    summary="The referral as FHIR: a Bundle with its ServiceRequest and Task (SDOH CC)",
    description="A `collection` Bundle: the ServiceRequest (SDOHCC-ServiceRequest: status, "
    "intent order, category, code (the directory's service id), subject Patient by the "
    "client's id, requester and performer Organization, supportingInfo the Consent) and the "
    "Task (SDOHCC-TaskForReferralManagement: status (expired: cancelled with statusReason "
    "`expired`), intent order, code fulfill, focus the ServiceRequest, for the Patient, owner "
    "the receiving Organization, requester, statusReason, restriction.period.end the expiry, "
    "output the outcome). Validated with the fhir.resources R4B models.",
)
async def referral_as_fhir(
    referral_id: ReferralId, guard: GuardDep, database: DatabaseDep
) -> Response:
    async with unit_of_work(database) as uow:
        grant, referral, _ = await authorize_referral(
            guard, uow.connection, "referral.read", referral_id
        )
        await guard.audit(uow, grant)
    return FhirResponse(
        fhir.bundle(referral).model_dump_json(by_alias=True, exclude_none=True),
        headers={"ETag": etag(referral)},
    )


@router.post(
    "/{referral_id}/fhir/task",
    response_class=FhirResponse,
    responses={
        **problem_responses(400, 401, 403, 404, 409, 412, 413, 422, 428),
        200: {
            "content": {FHIR_JSON: {"schema": _FHIR_SCHEMA}},
            "headers": {"ETag": RESOURCE_HEADERS["ETag"]},
            "description": "The referral's Task as it now stands.",
        },
    },
    summary="Report progress as a FHIR Task (receiving systems; If-Match required)",
    description="The Task's `status`, `statusReason` (a coding of "
    f"{fhir.REASON_SYSTEM}) and `output` (type `outcome` of {fhir.OUTPUT_TYPE_SYSTEM}, value "
    f"a coding of {fhir.OUTCOME_SYSTEM}) are mapped onto the same transition table, with the "
    "same rules, as `POST /v1/referrals/{referral_id}/status`. `received` and `ready` are not "
    "used. A Task that is not valid FHIR, or names another referral, is 422.",
)
async def report_task(
    referral_id: ReferralId,
    body: Annotated[dict[str, Any], Body(media_type=FHIR_JSON)],
    request: Request,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    if_match: IfMatch = None,
) -> Response:
    if if_match is None:
        raise precondition_required("referral")
    async with unit_of_work(database) as uow:
        grant, referral, sides = await authorize_referral(
            guard, uow.connection, "referral.status", referral_id, for_update=True
        )
        if not matches(if_match, etag(referral)):
            raise await guard.refuse(grant, stale("referral"), Outcome.PRECONDITION_FAILED)
        try:
            change = fhir.status_change(body, referral)
        except fhir.UnusableTask as unusable:
            raise await guard.refuse(
                grant,
                ProblemError(
                    422, "validation-error", "The Task cannot be applied",
                    detail=str(unusable), errors=unusable.errors,
                ),
                Outcome.INVALID,
            ) from None  # fmt: skip
        changed = await apply_change(
            guard, uow, grant, referral, change, sides=sides, via="fhir", now=clock.now(),
            timing=timing(request),
        )  # fmt: skip
        await guard.audit(uow, grant)
    return FhirResponse(
        fhir.task(changed).model_dump_json(by_alias=True, exclude_none=True),
        headers={"ETag": etag(changed)},
    )
