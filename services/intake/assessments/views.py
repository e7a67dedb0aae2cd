"""HTTP for instruments, assessments, safety flags and the equity report: thin; scoring lives in
scoring.py, rows and events in service.py, permissions in access.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse

from services.intake.assessments import scoring, service
from services.intake.assessments.definitions import (
    INSTRUMENTS,
    Instrument,
    InstrumentSummary,
)
from services.intake.assessments.models import AssessmentCreate, AssessmentPublic, OverrideCreate
from services.intake.assessments.problems import (
    conflict,
    instrument_or_422,
    invalid,
    not_found,
)
from shared.auth.guard import CurrentPrincipal, GuardDep
from shared.http import idempotency
from shared.http.app import DatabaseDep
from shared.http.pagination import Cursor, Limit, Page, decode_keyset, keyset_page
from shared.http.problems import ProblemError, problem_responses
from shared.messaging.outbox import unit_of_work

router = APIRouter(tags=["assessments"])
instruments_router = APIRouter(tags=["instruments"])

ClientId = Annotated[UUID, Path()]
AssessmentId = Annotated[UUID, Path()]
InstrumentIdPath = Annotated[str, Path(max_length=63)]
VersionPath = Annotated[str, Path(max_length=20)]


def _location(assessment: AssessmentPublic) -> str:
    return f"/v1/clients/{assessment.client_id}/assessments/{assessment.id}"


# --- instruments: reference data, the same for everyone; not client data ---------------------


@instruments_router.get(
    "/v1/instruments",
    response_model=Page[InstrumentSummary],
    responses=problem_responses(401),
    summary="List the assessment instruments and their versions",
)
async def list_instruments(principal: CurrentPrincipal) -> Page[InstrumentSummary]:
    # Every list has the same envelope; the instruments fit on one page.
    return Page[InstrumentSummary](
        items=[
            InstrumentSummary(id=i.id, version=i.version, title=i.title)
            for i in INSTRUMENTS.values()
        ],
        next_cursor=None,
    )


@instruments_router.get(
    "/v1/instruments/{instrument_id}/versions/{version}",
    response_model=Instrument,
    responses=problem_responses(401, 404, 422),
    summary="Read one version of an instrument: questions, answer options and scoring rules",
)
async def get_instrument(
    instrument_id: InstrumentIdPath, version: VersionPath, principal: CurrentPrincipal
) -> Instrument:
    instrument = INSTRUMENTS.get((instrument_id, version))
    if instrument is None:
        raise not_found("instrument version")
    return instrument


# --- assessments ------------------------------------------------------------------------------


@router.post(
    "/v1/clients/{client_id}/assessments",
    status_code=201,
    response_model=AssessmentPublic,
    responses=problem_responses(400, 401, 403, 404, 413, 422),
    summary="Assess a client with an instrument",
    description="Checks the answers against the instrument version (422 naming the field: an "
    "unknown question, an answer that is not one of the options, a required question left out; "
    "nothing is stored), scores them and stores answers, result and explanation. Publishes "
    "`ClientAssessed` (general needs) and `ProtectedNeedsAssessed` (protected ones, if any); a "
    "crisis answer also raises a crisis flag and publishes `ProtectedFlagRaised`, in the same "
    "transaction.",
)
async def create_assessment(
    client_id: ClientId,
    body: AssessmentCreate,
    guard: GuardDep,
    database: DatabaseDep,
    response: Response,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> AssessmentPublic | JSONResponse:
    instrument = instrument_or_422(body.instrument_id, body.version)
    errors = scoring.check_answers(instrument, body.answers)
    if errors:
        raise invalid(errors)
    result = scoring.score(instrument, body.answers)
    idempotent = idempotency.IdempotentCreate(
        idempotency_key, "create_assessment", guard.principal, body, target=client_id
    )
    async with unit_of_work(database) as uow:
        connection = uow.connection
        grant = await guard.authorize_client(
            connection, "assessment.write", client_id, resource_type="assessment"
        )
        stored = await idempotent.previous(connection)
        if stored is not None:
            replayed = AssessmentPublic.model_validate(stored.body)
            await guard.audit(uow, grant.about(resource_id=str(replayed.id), client_id=client_id))
            return stored.replay({"Location": _location(replayed)})
        assessment = await service.create_assessment(
            uow,
            client_id=client_id,
            instrument=instrument,
            answers=body.answers,
            result=result,
            assessed_by=guard.principal.subject,
        )
        await idempotent.remember(connection, assessment)
        # The crisis flags are writes of their own, made by the same caller in the same request.
        flags = [
            replace(grant, action="flag.write", resource_type="flag", resource_id=str(flag_id))
            for flag_id in assessment.raised_flag_ids
        ]
        await guard.audit(
            uow, grant.about(resource_id=str(assessment.id), client_id=client_id), *flags
        )
    response.headers["Location"] = _location(assessment)
    return assessment


@router.get(
    "/v1/clients/{client_id}/assessments",
    response_model=Page[AssessmentPublic],
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="List a client's assessments, newest first",
)
async def list_assessments(
    client_id: ClientId,
    guard: GuardDep,
    database: DatabaseDep,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Page[AssessmentPublic]:
    keyset = decode_keyset(cursor) if cursor else None
    async with unit_of_work(database) as uow:
        grant = await guard.authorize_client(
            uow.connection, "assessment.read", client_id, resource_type="assessment"
        )
        found = await service.list_assessments(
            uow.connection, client_id=client_id, after=keyset, limit=limit + 1
        )
        page = keyset_page(found, limit, lambda a: (a.created_at, a.id))
        shown = [grant.about(resource_id=str(a.id), client_id=client_id) for a in page.items]
        await guard.audit(uow, *(shown or [grant]))
    return page


@router.get(
    "/v1/clients/{client_id}/assessments/{assessment_id}",
    response_model=AssessmentPublic,
    responses=problem_responses(401, 403, 404, 422),
    summary="Read an assessment: answers, result, explanation and overrides",
)
async def get_assessment(
    client_id: ClientId, assessment_id: AssessmentId, guard: GuardDep, database: DatabaseDep
) -> AssessmentPublic:
    async with unit_of_work(database) as uow:
        grant = await guard.authorize_client(
            uow.connection,
            "assessment.read",
            client_id,
            resource_type="assessment",
            resource_id=str(assessment_id),
        )
        assessment = await guard.found(
            grant,
            await service.get_assessment(
                uow.connection, client_id=client_id, assessment_id=assessment_id
            ),
        )
        await guard.audit(uow, grant)
    return assessment


@router.post(
    "/v1/clients/{client_id}/assessments/{assessment_id}/override",
    response_model=AssessmentPublic,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
    summary="Override an assessment's risk level, with a reason",
    description="The computed level stays beside the one in force; who, when and why are kept "
    "for every override. Publishes `ClientAssessed` again. 409 when the level asked for is "
    "already in force.",
)
async def override_risk(
    client_id: ClientId,
    assessment_id: AssessmentId,
    body: OverrideCreate,
    guard: GuardDep,
    database: DatabaseDep,
) -> AssessmentPublic:
    async with unit_of_work(database) as uow:
        grant = await guard.authorize_client(
            uow.connection,
            "assessment.override",
            client_id,
            resource_type="assessment",
            resource_id=str(assessment_id),
        )
        assessment = await guard.found(
            grant,
            await service.lock_assessment(
                uow.connection, client_id=client_id, assessment_id=assessment_id
            ),
        )
        unchanged = assessment.risk_level == body.risk_level
        if not unchanged:
            instrument = INSTRUMENTS[(assessment.instrument_id, assessment.instrument_version)]
            assessment = await service.override_risk(
                uow,
                assessment=assessment,
                instrument=instrument,
                data=body,
                overridden_by=guard.principal.subject,
            )
        # Allowed either way (the caller may see the level in force): audited as allowed.
        await guard.audit(uow, grant)
    if unchanged:
        raise _already(body.risk_level)
    return assessment


def _already(risk_level: str) -> ProblemError:
    return conflict(
        "risk-level-unchanged",
        "Risk level already in force",
        f"The risk level in force is already {risk_level}; nothing was changed.",
    )
