"""HTTP for caseloads: a worker's cases, a team's load, suggestions of who could take a case.
Thin; figures in service.py, permissions in access.py."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path

from services.planning.caseloads import service
from services.planning.caseloads.models import (
    AssignmentSuggestions,
    Load,
    TeamCaseload,
    WorkerCaseload,
)
from services.planning.caseloads.weights import RISK_WEIGHTS
from services.planning.cases.lookup import authorize_case
from services.planning.workers.models import WORKER_ID_PATTERN
from services.planning.workers.service import get_worker, in_scope
from services.planning.workers.views import WorkerId
from shared.audit.log import Outcome
from shared.auth.facts import load_facts
from shared.auth.guard import GuardDep
from shared.auth.policy import Scope
from shared.http.app import ClockDep, DatabaseDep
from shared.http.problems import not_found, problem_responses
from shared.messaging.outbox import unit_of_work

router = APIRouter(tags=["caseloads"])

TeamId = Annotated[
    str,
    Path(min_length=1, max_length=200, pattern=WORKER_ID_PATTERN, description="A team's id."),
]


@router.get(
    "/v1/workers/{worker_id}/caseload",
    response_model=WorkerCaseload,
    responses=problem_responses(401, 403, 404, 422),
    summary="A worker's open cases, highest risk first, with their load against capacity",
    description="The worker themself, or a supervisor of the worker's team (in the staff "
    "directory); anyone else: 404. Each case: status, risk level, the next review due (and "
    "whether it is overdue), days since the last contact note (null when none). The load "
    "figures weigh every open case of the worker by risk (weights are data: "
    "`services/planning/caseloads/risk_weights.json`). Each case listed is audited.",
)
async def worker_caseload(
    worker_id: WorkerId, guard: GuardDep, database: DatabaseDep, clock: ClockDep
) -> WorkerCaseload:
    action = "caseload.read"
    grant = await guard.require(action, resource_type="caseload", resource_id=worker_id)
    principal = guard.principal
    now = clock.now()
    async with unit_of_work(database) as uow:
        connection = uow.connection
        worker = await get_worker(
            connection, organization_id=principal.organization_id, worker_id=worker_id
        )
        if worker is None:
            raise await guard.refuse(grant, not_found("worker"), Outcome.NOT_FOUND)
        scopes = guard.policy.scopes(principal, action)
        if not in_scope(scopes, principal, worker_id=worker.worker_id, team_id=worker.team_id):
            raise await guard.refuse(grant, not_found("worker"))
        load = await service.worker_load(
            connection,
            organization_id=principal.organization_id,
            worker_id=worker_id,
            now=now,
            weights=RISK_WEIGHTS,
        )
        assert load is not None  # the worker was just read, in this transaction
        cases = await service.worker_cases(
            connection,
            organization_id=principal.organization_id,
            worker_id=worker_id,
            visible=guard.policy.list_filter(principal, action, first_parameter=3),
            now=now,
        )
        shown = [
            grant.about(resource_id=str(entry.case_id), client_id=entry.client_id)
            for entry in cases
        ]
        await guard.audit(uow, *(shown or [grant]))
    return WorkerCaseload(
        worker_id=worker.worker_id,
        team_id=worker.team_id,
        as_of=now,
        cases=cases,
        **load.model_dump(include=set(Load.model_fields)),
    )


@router.get(
    "/v1/teams/{team_id}/caseload",
    response_model=TeamCaseload,
    responses=problem_responses(401, 403, 404, 422),
    summary="Your team's load: each active worker's weighted caseload against capacity",
    description="Supervisors of the team (of their own organisation; anyone else: 404). For "
    "each active worker of the team in the staff directory: open cases, weighted caseload "
    "(weights per risk level, echoed in `weights`), capacity points, remaining capacity, "
    "whether over capacity, reviews overdue. Figures only: no client is named.",
)
async def team_caseload(
    team_id: TeamId, guard: GuardDep, database: DatabaseDep, clock: ClockDep
) -> TeamCaseload:
    grant = await guard.require("team.read", resource_type="team", resource_id=team_id)
    principal = guard.principal
    scopes = guard.policy.scopes(principal, "team.read")
    whole_organisation = bool(scopes & {Scope.ORGANISATION, Scope.ALL})
    if not whole_organisation and not (Scope.TEAM in scopes and principal.team_id == team_id):
        raise await guard.refuse(grant, not_found("team"))
    now = clock.now()
    async with unit_of_work(database) as uow:
        workers = await service.team_load(
            uow.connection,
            organization_id=principal.organization_id,
            team_id=team_id,
            now=now,
            weights=RISK_WEIGHTS,
        )
        await guard.audit(uow, grant)
    return TeamCaseload(
        organization_id=principal.organization_id,
        team_id=team_id,
        as_of=now,
        weights={level: float(weight) for level, weight in RISK_WEIGHTS.items()},
        workers=workers,
    )


@router.get(
    "/v1/cases/{case_id}/assignment-suggestions",
    response_model=AssignmentSuggestions,
    responses=problem_responses(401, 403, 404, 422),
    summary="Who of the case's team could take it, ranked, with reasons",
    description="Supervisors of the case's team. The team's active workers but the case's "
    "own worker: those who speak the client's preferred language first, then by remaining "
    "capacity (capacity points minus the risk-weighted open cases). Each comes with its "
    "reasons: `speaks_client_language` (or `does_not_speak_client_language`), "
    "`remaining_capacity` (`remaining capacity 4.5 of 20`) or `over_capacity`.",
)
async def assignment_suggestions(
    case_id: Annotated[UUID, Path()], guard: GuardDep, database: DatabaseDep, clock: ClockDep
) -> AssignmentSuggestions:
    async with unit_of_work(database) as uow:
        connection = uow.connection
        grant, case = await authorize_case(guard, connection, "assignment.suggest", case_id)
        team_id = case.team_id
        if team_id is None:
            facts = await load_facts(connection, case.client_id)
            team_id = facts.team_id if facts else None
        loads = (
            await service.team_load(
                connection,
                organization_id=case.organization_id,
                team_id=team_id,
                now=clock.now(),
                weights=RISK_WEIGHTS,
            )
            if team_id is not None
            else []
        )
        await guard.audit(uow, grant)
    return AssignmentSuggestions(
        case_id=case.id,
        team_id=team_id,
        preferred_language=case.preferred_language,
        suggestions=service.suggest(
            loads, language=case.preferred_language, exclude=case.worker_id
        ),
    )
