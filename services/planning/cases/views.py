"""HTTP for case assignment: thin; rules in service.py, permissions in access.py."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path

from services.planning.cases import service
from services.planning.cases.models import AssignmentPublic, AssignmentRequest
from shared.audit.log import Outcome
from shared.auth.facts import load_facts
from shared.auth.guard import GuardDep
from shared.http.app import DatabaseDep
from shared.http.problems import PROBLEM_RESPONSES, ProblemError
from shared.messaging.outbox import unit_of_work

router = APIRouter(prefix="/v1/cases", tags=["cases"])


@router.put(
    "/{client_id}/assignment",
    response_model=AssignmentPublic,
    responses={code: PROBLEM_RESPONSES[code] for code in (400, 401, 403, 404, 413, 422)},
    summary="Assign a client's case to a worker of your team",
    description="Supervisors assign within their own team, to an active worker of the staff "
    "directory (`/v1/workers`) of their own organisation and team; otherwise 422 with the "
    "reason in `errors[0].code`: `unknown-worker`, `worker-inactive` or `worker-outside-team` "
    "(audited, nothing written). The worker's access (and the registering worker's loss of "
    "it) reaches every service through `CaseAssigned`, with the directory's team.",
)
async def assign_case(
    client_id: Annotated[UUID, Path()],
    body: AssignmentRequest,
    guard: GuardDep,
    database: DatabaseDep,
) -> AssignmentPublic:
    async with unit_of_work(database) as uow:
        connection = uow.connection
        grant = await guard.authorize_client(
            connection, "case.assign", client_id, resource_type="case"
        )
        facts = await load_facts(connection, client_id)
        assert facts is not None
        try:
            assignment = await service.assign_case(
                uow, facts=facts, worker_id=body.worker_id, assigned_by=guard.principal
            )
        except service.AssignmentRefused as refused:
            raise await guard.refuse(grant, _not_assignable(refused)) from None
        await guard.audit(uow, grant)
    return assignment


def _not_assignable(refused: service.AssignmentRefused) -> ProblemError:
    return ProblemError(
        422,
        refused.code,
        "This worker cannot be assigned the case",
        detail=f"{refused.message} Assign an active worker of your team from the staff "
        "directory; nothing was changed.",
        errors=[{"field": "body.worker_id", "message": refused.message, "code": refused.code}],
    )


@router.get(
    "/{client_id}/assignment",
    response_model=AssignmentPublic,
    responses={code: PROBLEM_RESPONSES[code] for code in (401, 403, 404, 422)},
    summary="Who a client's case is assigned to",
)
async def get_assignment(
    client_id: Annotated[UUID, Path()], guard: GuardDep, database: DatabaseDep
) -> AssignmentPublic:
    async with unit_of_work(database) as uow:
        connection = uow.connection
        grant = await guard.authorize_client(
            connection, "case.read", client_id, resource_type="case"
        )
        assignment = await service.current_assignment(connection, client_id=client_id)
        if assignment is None:
            raise await guard.refuse(
                grant,
                ProblemError(404, "not-found", "Not found", detail="This case is not assigned."),
                Outcome.NOT_FOUND,
            )
        await guard.audit(uow, grant)
    return assignment
