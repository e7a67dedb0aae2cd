"""HTTP for assessment drafts: thin; rules in service.py, permissions those of assessments."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse

from services.intake.assessment_drafts import service
from services.intake.assessment_drafts.models import DraftCreate, DraftPublic, DraftUpdate
from services.intake.assessments import scoring
from services.intake.assessments.models import AssessmentPublic
from services.intake.assessments.problems import instrument_or_422, invalid
from shared.audit.log import Outcome
from shared.auth.guard import Grant, Guard, GuardDep
from shared.http import idempotency
from shared.http.app import DatabaseDep
from shared.http.preconditions import IfMatch, matches, precondition_required, stale
from shared.http.problems import problem_responses
from shared.messaging.outbox import UnitOfWork, unit_of_work

router = APIRouter(prefix="/v1/clients/{client_id}/assessment-drafts", tags=["assessments"])

ClientId = Annotated[UUID, Path()]
DraftId = Annotated[UUID, Path()]


def etag(draft: DraftPublic) -> str:
    return f'"{draft.id}.{draft.version}"'


def _location(draft: DraftPublic) -> str:
    return f"/v1/clients/{draft.client_id}/assessment-drafts/{draft.id}"


def _flag_grants(grant: Grant, flag_ids: set[UUID]) -> list[Grant]:
    """The crisis flags a request raised are writes of their own, on the record."""
    return [
        replace(grant, action="flag.write", resource_type="flag", resource_id=str(flag_id))
        for flag_id in sorted(flag_ids)
    ]


@router.post(
    "",
    status_code=201,
    response_model=DraftPublic,
    responses=problem_responses(400, 401, 403, 404, 413, 422),
    summary="Start an assessment as a draft: answers so far; crisis answers act at once",
    description="Saves the answers given so far (any subset). A crisis answer raises its "
    "crisis flag and publishes `FlagRaised` in the same transaction, before the form is "
    "complete. Complete the draft to score it (`.../completion`).",
)
async def create_draft(
    client_id: ClientId,
    body: DraftCreate,
    guard: GuardDep,
    database: DatabaseDep,
    response: Response,
    idempotency_key: idempotency.IdempotencyKey = None,
) -> DraftPublic | JSONResponse:
    instrument = instrument_or_422(body.instrument_id, body.version)
    errors = scoring.check_answers(instrument, body.answers, complete=False)
    if errors:
        raise invalid(errors)
    idempotent = idempotency.IdempotentCreate(
        idempotency_key, "create_draft", guard.principal, body, target=client_id
    )
    async with unit_of_work(database) as uow:
        grant = await guard.authorize_client(
            uow.connection, "assessment.write", client_id, resource_type="assessment_draft"
        )
        stored = await idempotent.previous(uow.connection)
        if stored is not None:
            replayed = DraftPublic.model_validate(stored.body)
            await guard.audit(uow, grant.about(resource_id=str(replayed.id), client_id=client_id))
            return stored.replay({"Location": _location(replayed), "ETag": etag(replayed)})
        draft = await service.create_draft(
            uow,
            client_id=client_id,
            instrument=instrument,
            answers=body.answers,
            created_by=guard.principal.subject,
        )
        await idempotent.remember(uow.connection, draft)
        await guard.audit(
            uow,
            grant.about(resource_id=str(draft.id), client_id=client_id),
            *_flag_grants(grant, set(draft.raised_flag_ids)),
        )
    response.headers["Location"] = _location(draft)
    response.headers["ETag"] = etag(draft)
    return draft


@router.get(
    "/{draft_id}",
    response_model=DraftPublic,
    responses=problem_responses(401, 403, 404, 422),
    summary="Read a draft: its answers, what is still unanswered, the flags it raised",
)
async def get_draft(
    client_id: ClientId,
    draft_id: DraftId,
    guard: GuardDep,
    database: DatabaseDep,
    response: Response,
) -> DraftPublic:
    async with unit_of_work(database) as uow:
        grant = await guard.authorize_client(
            uow.connection,
            "assessment.read",
            client_id,
            resource_type="assessment_draft",
            resource_id=str(draft_id),
        )
        draft = await guard.found(
            grant, await service.get_draft(uow.connection, client_id=client_id, draft_id=draft_id)
        )
        await guard.audit(uow, grant)
    response.headers["ETag"] = etag(draft)
    return draft


async def _locked_draft(
    guard: Guard, uow: UnitOfWork, client_id: UUID, draft_id: UUID, if_match: str | None
) -> tuple[Grant, DraftPublic]:
    """The draft, locked until the transaction ends, if the caller may write it and read the
    version it is changing."""
    grant = await guard.authorize_client(
        uow.connection,
        "assessment.write",
        client_id,
        resource_type="assessment_draft",
        resource_id=str(draft_id),
    )
    draft = await guard.found(
        grant,
        await service.get_draft(
            uow.connection, client_id=client_id, draft_id=draft_id, for_update=True
        ),
    )
    if if_match is None:
        raise await guard.refuse(grant, precondition_required("draft"), Outcome.PRECONDITION_FAILED)
    if not matches(if_match, etag(draft)):
        raise await guard.refuse(grant, stale("draft"), Outcome.PRECONDITION_FAILED)
    return grant, draft


@router.patch(
    "/{draft_id}",
    response_model=DraftPublic,
    responses=problem_responses(400, 401, 403, 404, 412, 413, 422, 428),
    summary="Add or change a draft's answers (If-Match required); crisis answers act at once",
    description="Answers present are set, `null` takes one back. A new crisis answer raises "
    "its flag at once; taking a crisis answer back leaves the flag for someone to resolve.",
)
async def update_draft(
    client_id: ClientId,
    draft_id: DraftId,
    body: DraftUpdate,
    guard: GuardDep,
    database: DatabaseDep,
    response: Response,
    if_match: IfMatch = None,
) -> DraftPublic:
    async with unit_of_work(database) as uow:
        grant, draft = await _locked_draft(guard, uow, client_id, draft_id, if_match)
        answers = service.changed_answers(draft.answers, body.answers)
        errors = scoring.check_answers(service.instrument_of(draft), answers, complete=False)
        if errors:
            raise await guard.refuse(grant, invalid(errors))
        updated = await service.update_draft(
            uow, draft=draft, answers=answers, updated_by=guard.principal.subject
        )
        raised = set(updated.raised_flag_ids) - set(draft.raised_flag_ids)
        await guard.audit(uow, grant, *_flag_grants(grant, raised))
    response.headers["ETag"] = etag(updated)
    return updated


@router.post(
    "/{draft_id}/completion",
    status_code=201,
    response_model=AssessmentPublic,
    responses=problem_responses(401, 403, 404, 412, 422, 428),
    summary="Complete a draft: score it as an assessment (same id) and publish it",
    description="Every required question must be answered (422 lists the missing ones). The "
    "assessment is stored and `ClientAssessed` published as for a direct assessment; the "
    "crisis flags the draft raised belong to it and are not raised again. The draft is gone.",
)
async def complete_draft(
    client_id: ClientId,
    draft_id: DraftId,
    guard: GuardDep,
    database: DatabaseDep,
    response: Response,
    if_match: IfMatch = None,
) -> AssessmentPublic:
    async with unit_of_work(database) as uow:
        grant, draft = await _locked_draft(guard, uow, client_id, draft_id, if_match)
        try:
            assessment = await service.complete_draft(
                uow, draft=draft, completed_by=guard.principal.subject
            )
        except service.IncompleteDraft as incomplete:
            raise await guard.refuse(grant, invalid(incomplete.errors)) from incomplete
        raised = set(assessment.raised_flag_ids) - set(draft.raised_flag_ids)
        completed = replace(grant, action="assessment.write", resource_type="assessment")
        await guard.audit(uow, grant, completed, *_flag_grants(grant, raised))
    response.headers["Location"] = f"/v1/clients/{client_id}/assessments/{assessment.id}"
    return assessment
