"""Assigning a case: the assignment, the access facts and `CaseAssigned`, in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg

from services.planning.cases.models import AssignmentPublic
from shared.auth.facts import ClientFacts, record_assignment
from shared.auth.principal import Principal
from shared.events.contracts import CaseAssigned
from shared.messaging.outbox import UnitOfWork


async def assign_case(
    uow: UnitOfWork, *, facts: ClientFacts, worker_id: str, assigned_by: Principal
) -> AssignmentPublic:
    assignment = AssignmentPublic(
        client_id=facts.client_id,
        worker_id=worker_id,
        team_id=assigned_by.team_id,
        assigned_by=assigned_by.subject,
        assigned_at=datetime.now(UTC),
    )
    connection = uow.connection
    await connection.execute(
        "INSERT INTO case_assignments (id, client_id, worker_id, team_id, assigned_by, assigned_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        uuid4(),
        assignment.client_id,
        assignment.worker_id,
        assignment.team_id,
        assignment.assigned_by,
        assignment.assigned_at,
    )
    await record_assignment(
        connection,
        client_id=assignment.client_id,
        organization_id=facts.organization_id,
        owner_id=assignment.worker_id,
        team_id=assignment.team_id,
        assigned_at=assignment.assigned_at,
    )
    uow.publish(
        CaseAssigned(
            client_id=assignment.client_id,
            worker_id=assignment.worker_id,
            team_id=assignment.team_id,
            organization_id=facts.organization_id,
            assigned_by=assignment.assigned_by,
            assigned_at=assignment.assigned_at,
        )
    )
    return assignment


async def current_assignment(
    connection: asyncpg.Connection, *, client_id: UUID
) -> AssignmentPublic | None:
    row = await connection.fetchrow(
        "SELECT client_id, worker_id, team_id, assigned_by, assigned_at FROM case_assignments "
        "WHERE client_id = $1 ORDER BY assigned_at DESC LIMIT 1",
        client_id,
    )
    return AssignmentPublic(**dict(row)) if row else None
