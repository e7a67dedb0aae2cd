"""HTTP for case reviews: thin; rules in service.py, permissions in access.py."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path

from services.planning.cases.lookup import authorize_case
from services.planning.refusals import refusals_audited
from services.planning.reviews import service
from services.planning.reviews.models import CompletionRequest, ReviewPublic
from shared.audit.log import Outcome
from shared.auth.guard import GuardDep
from shared.http.app import ClockDep, DatabaseDep
from shared.http.problems import not_found, problem_responses
from shared.messaging.outbox import unit_of_work

router = APIRouter(prefix="/v1/cases", tags=["reviews"])


@router.get(
    "/{case_id}/reviews",
    response_model=list[ReviewPublic],
    responses=problem_responses(401, 403, 404, 422),
    summary="A case's reviews: scheduled, completed and superseded, in the order scheduled",
)
async def list_reviews(
    case_id: Annotated[UUID, Path()], guard: GuardDep, database: DatabaseDep
) -> list[ReviewPublic]:
    async with unit_of_work(database) as uow:
        grant, case = await authorize_case(guard, uow.connection, "case.read", case_id)
        reviews = await service.list_reviews(uow.connection, case.id)
        await guard.audit(uow, grant)
    return reviews


@router.post(
    "/{case_id}/reviews/{review_id}/completion",
    response_model=ReviewPublic,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
    summary="Record a review as held: outcome and attendees",
    description="Only the case's scheduled review can be completed (409 "
    "`review-not-scheduled` otherwise; a closed case is 409 `case-closed`). Publishes "
    "`ReviewCompleted`, ends a crisis raised before it, and schedules the next review by the "
    "risk cadence (`ReviewScheduled`).",
)
async def complete_review(
    case_id: Annotated[UUID, Path()],
    review_id: Annotated[UUID, Path()],
    body: CompletionRequest,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
) -> ReviewPublic:
    async with unit_of_work(database) as uow:
        grant, case = await authorize_case(
            guard, uow.connection, "review.complete", case_id, lock=True
        )
        review = await service.load_review(uow.connection, case.id, review_id, lock=True)
        if review is None:
            raise await guard.refuse(grant, not_found("review"), Outcome.NOT_FOUND)
        async with refusals_audited(guard, grant):
            completed = await service.complete_review(
                uow,
                case,
                review,
                outcome=body.outcome,
                attendees=body.attendees,
                by=guard.principal.subject,
                now=clock.now(),
            )
        await guard.audit(uow, grant)
    return completed
