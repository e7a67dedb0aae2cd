"""Assigning a case: the assignment, the access facts and `CaseAssigned`, in one transaction.

An assignment names an active worker of the staff directory, of the assigning supervisor's own
organisation and team; the team and organisation that travel with `CaseAssigned` are the
directory's, never the request's.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

import asyncpg

from services.planning.cases.lookup import Case
from services.planning.cases.models import AssignmentPublic
from services.planning.refusals import Refusal
from services.planning.timeline.service import record_timeline
from services.planning.workers.models import WorkerPublic
from services.planning.workers.service import get_worker
from shared.auth.facts import ClientFacts, record_assignment
from shared.auth.principal import Principal
from shared.events.contracts import CaseAssigned
from shared.http.problems import ProblemError
from shared.messaging.outbox import UnitOfWork


class AssignmentRefused(Refusal):
    """The named worker cannot take the case; nothing was written."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(422, code, message)

    def problem(self) -> ProblemError:
        return ProblemError(
            422,
            self.code,
            "This worker cannot be assigned the case",
            detail=f"{self.message} Assign an active worker of your team from the staff "
            "directory; nothing was changed.",
            errors=[{"field": "body.worker_id", "message": self.message, "code": self.code}],
        )


def refusal(
    worker: WorkerPublic | None, *, facts: ClientFacts, assigned_by: Principal
) -> AssignmentRefused | None:
    """Why `worker` (as the supervisor's organisation's directory has it) cannot be assigned the
    case, or None when it can."""
    if worker is None:
        return AssignmentRefused(
            "unknown-worker", "No worker with this id in your organisation's staff directory."
        )
    if not worker.active:
        return AssignmentRefused("worker-inactive", "This worker is inactive in the directory.")
    if (
        assigned_by.team_id is None
        or worker.team_id != assigned_by.team_id
        or worker.organization_id != facts.organization_id
    ):
        return AssignmentRefused("worker-outside-team", "This worker is not in your team.")
    return None


async def assign_case(
    uow: UnitOfWork,
    *,
    case: Case,
    facts: ClientFacts,
    worker_id: str,
    assigned_by: Principal,
    now: datetime,
) -> AssignmentPublic:
    """Raises AssignmentRefused unless `worker_id` is an active worker of the supervisor's
    organisation and team (the row stays locked until commit: no deactivation slips between).
    The case (read locked) takes the worker and the directory's team; the client's access
    facts follow, as before cases existed."""
    connection = uow.connection
    worker = await get_worker(
        connection,
        organization_id=assigned_by.organization_id,
        worker_id=worker_id,
        lock="share",
    )
    refused = refusal(worker, facts=facts, assigned_by=assigned_by)
    if refused is not None:
        raise refused
    assert worker is not None
    return await record_case_assignment(
        uow, case, worker=worker, assigned_by=assigned_by.subject, now=now
    )


async def current_assignment(
    connection: asyncpg.Connection, *, case_id: UUID
) -> AssignmentPublic | None:
    row = await connection.fetchrow(
        "SELECT case_id, client_id, worker_id, team_id, assigned_by, assigned_at "
        "FROM case_assignments WHERE case_id = $1 ORDER BY assigned_at DESC LIMIT 1",
        case_id,
    )
    return AssignmentPublic(**dict(row)) if row else None


async def record_case_assignment(
    uow: UnitOfWork, case: Case, *, worker: WorkerPublic, assigned_by: str, now: datetime
) -> AssignmentPublic:
    """Make `case` (read locked) `worker`'s: a worker the directory has active, with a team, in
    the case's organisation; the caller decided they may take it (an assignment within the
    supervisor's team, an accepted transfer). The case takes the worker and the directory's
    team, the assignment history a row, the client's access facts follow, and `CaseAssigned`
    (with the case's id) moves access in every service."""
    connection = uow.connection
    assignment = AssignmentPublic(
        case_id=case.id,
        client_id=case.client_id,
        worker_id=worker.worker_id,
        team_id=worker.team_id,
        assigned_by=assigned_by,
        assigned_at=now,
    )
    await connection.execute(
        "INSERT INTO case_assignments (id, case_id, client_id, worker_id, team_id, assigned_by, "
        "assigned_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        uuid4(),
        case.id,
        assignment.client_id,
        assignment.worker_id,
        assignment.team_id,
        assignment.assigned_by,
        assignment.assigned_at,
    )
    await record_assignment(
        connection,
        client_id=assignment.client_id,
        organization_id=worker.organization_id,
        owner_id=assignment.worker_id,
        team_id=assignment.team_id,
        assigned_at=assignment.assigned_at,
    )
    await connection.execute(
        "UPDATE cases SET worker_id = $2, team_id = $3, version = version + 1, updated_at = $4 "
        "WHERE id = $1",
        case.id,
        worker.worker_id,
        worker.team_id,
        now,
    )
    await record_timeline(
        connection,
        case_id=case.id,
        client_id=case.client_id,
        kind="case.assigned",
        occurred_at=now,
        subject_type="case",
        subject_id=case.id,
    )
    uow.publish(
        CaseAssigned(
            case_id=case.id,
            client_id=assignment.client_id,
            worker_id=assignment.worker_id,
            team_id=worker.team_id,
            organization_id=worker.organization_id,
            assigned_by=assignment.assigned_by,
            assigned_at=assignment.assigned_at,
        )
    )
    return assignment
