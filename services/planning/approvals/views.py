"""HTTP for approvals: thin; rules in service.py and decisions.py, permissions in access.py."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Path, Query

from services.planning.approvals import decisions
from services.planning.approvals.models import (
    APPROVAL_COLUMNS,
    Approval,
    ApprovalStatus,
    DecisionRequest,
    WithdrawalRequest,
)
from services.planning.approvals.service import load_approval
from services.planning.cases.lookup import Case, authorize_case
from services.planning.refusals import refusals_audited
from shared.audit.log import Outcome
from shared.auth.guard import Grant, Guard, GuardDep
from shared.auth.principal import Role
from shared.http.app import ClockDep, DatabaseDep
from shared.http.pagination import Cursor, Limit, Page, decode_keyset, keyset_page
from shared.http.problems import not_found, problem_responses
from shared.messaging.outbox import unit_of_work

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])

ApprovalId = Annotated[UUID, Path()]


async def _authorize(
    guard: Guard, connection: asyncpg.Connection, action: str, approval_id: UUID, *, lock: bool
) -> tuple[Grant, Approval, Case]:
    """The approval and its case, in the caller's scope (404 otherwise). With `lock`, the case's
    row then the approval's (always in that order) are held until commit."""
    approval = await load_approval(connection, approval_id)
    if approval is None:
        grant = await guard.require(action, resource_type="approval", resource_id=str(approval_id))
        raise await guard.refuse(grant, not_found("approval"), Outcome.NOT_FOUND)
    grant, case = await authorize_case(guard, connection, action, approval.case_id, lock=lock)
    grant = Grant(action, "approval", str(approval_id), case.client_id, grant.outcome,
                  grant.break_glass_reason)  # fmt: skip
    if lock:
        locked = await load_approval(connection, approval_id, lock=True)
        assert locked is not None  # approvals are never deleted
        approval = locked
    return grant, approval, case


@router.get(
    "",
    response_model=Page[Approval],
    responses=problem_responses(400, 401, 403, 422),
    summary="Approvals: a supervisor's team's, or a worker's own requests",
    description="Supervisors see their team's approvals (the case's team when requested); "
    "caseworkers the approvals they requested. Oldest first; filter by `status` (e.g. "
    "`requested`: what awaits a decision).",
)
async def list_approvals(
    guard: GuardDep,
    database: DatabaseDep,
    status: Annotated[ApprovalStatus | None, Query()] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[Approval]:
    grant = await guard.require("approval.read", resource_type="approval")
    principal = guard.principal
    after = decode_keyset(cursor) if cursor else None
    mine: list[str] = []
    parameters: list[object] = [principal.organization_id]
    if principal.has(Role.SUPERVISOR) and principal.team_id is not None:
        parameters.append(principal.team_id)
        mine.append(f"team_id = ${len(parameters)}")
    if principal.has(Role.CASEWORKER) or principal.has(Role.SUPERVISOR):
        parameters.append(principal.subject)
        mine.append(f"requested_by = ${len(parameters)}")
    conditions = ["organization_id = $1", "(" + (" OR ".join(mine) or "FALSE") + ")"]
    if status is not None:
        parameters.append(status.value)
        conditions.append(f"status = ${len(parameters)}")
    if after is not None:
        parameters += [after[0], after[1]]
        conditions.append(f"(requested_at, id) > (${len(parameters) - 1}, ${len(parameters)})")
    parameters.append(limit + 1)
    async with unit_of_work(database) as uow:
        rows = await uow.connection.fetch(
            f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE {' AND '.join(conditions)} "
            f"ORDER BY requested_at, id LIMIT ${len(parameters)}",
            *parameters,
        )
        page = keyset_page(
            [Approval.model_validate(dict(r)) for r in rows],
            limit,
            lambda a: (a.requested_at, a.id),
        )
        shown = [grant.about(resource_id=str(a.id), client_id=a.client_id) for a in page.items]
        await guard.audit(uow, *(shown or [grant]))
    return page


@router.get(
    "/{approval_id}",
    response_model=Approval,
    responses=problem_responses(401, 403, 404, 422),
    summary="One approval",
)
async def get_approval(approval_id: ApprovalId, guard: GuardDep, database: DatabaseDep) -> Approval:
    async with unit_of_work(database) as uow:
        grant, approval, _case = await _authorize(
            guard, uow.connection, "approval.read", approval_id, lock=False
        )
        await guard.audit(uow, grant)
    return approval


@router.post(
    "/{approval_id}/decision",
    response_model=Approval,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
    summary="Approve or reject (a supervisor of the case's team, never the requester)",
    description="Only a supervisor of the case's own organisation and team decides: another "
    "team's supervisor gets 404 (the case is outside their scope) or 403 "
    "`not-case-supervisor`; the requester gets 403 `self-approval`; an approval that is no "
    "longer `requested` is 409 `approval-not-pending`. What the approval does (close the "
    "case, approve the plan version, …) happens in the same transaction. Publishes "
    "`ApprovalDecided`.",
)
async def decide(
    approval_id: ApprovalId,
    body: DecisionRequest,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
) -> Approval:
    async with unit_of_work(database) as uow:
        grant, approval, case = await _authorize(
            guard, uow.connection, "approval.decide", approval_id, lock=True
        )
        async with refusals_audited(guard, grant):
            decided = await decisions.decide(
                uow,
                approval,
                case,
                approve=body.decision == "approved",
                by=guard.principal,
                comment=body.comment,
                now=clock.now(),
            )
        await guard.audit(uow, grant)
    return decided


@router.post(
    "/{approval_id}/withdrawal",
    response_model=Approval,
    responses=problem_responses(400, 401, 403, 404, 409, 413, 422),
    summary="Withdraw your own approval request",
    description="Only the requester withdraws (403 `not-requester` otherwise), and only while "
    "it is `requested` (409 `approval-not-pending`). Publishes `ApprovalDecided` "
    "(`withdrawn`).",
)
async def withdraw(
    approval_id: ApprovalId,
    body: WithdrawalRequest,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
) -> Approval:
    async with unit_of_work(database) as uow:
        grant, approval, case = await _authorize(
            guard, uow.connection, "approval.withdraw", approval_id, lock=True
        )
        async with refusals_audited(guard, grant):
            withdrawn = await decisions.withdraw(
                uow, approval, case, by=guard.principal, comment=body.comment, now=clock.now()
            )
        await guard.audit(uow, grant)
    return withdrawn
