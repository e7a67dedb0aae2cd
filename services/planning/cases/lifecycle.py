"""A case's states after opening: on hold and back, closed (with a reason, an HMIS destination
and, where the organisation asks for it, a supervisor's approval), reopened (logged).

open | active -> on_hold -> (back to what it was) ; open | active | on_hold -> closed -> open
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

import asyncpg

from services.planning.approvals.models import Approval
from services.planning.approvals.service import request_approval
from services.planning.cases.lookup import CASE_COLUMNS, Case
from services.planning.cases.models import ClosurePublic, ClosureRequest
from services.planning.refusals import Refusal
from services.planning.reviews.service import schedule_review, supersede_scheduled
from services.planning.timeline.service import record_timeline
from shared.auth.principal import Principal
from shared.events.planning import (
    ApprovalSubject,
    CaseClosed,
    CaseReopened,
    CaseStatus,
)
from shared.http.problems import ProblemError
from shared.messaging.outbox import UnitOfWork

CLOSURE_COLUMNS = (
    "id, case_id, reason, destination_code, note, status, requested_by, requested_at, "
    "approval_id, closed_at"
)


class CaseRefused(Refusal):
    """The change is not possible in the case's state; nothing was written."""

    def title(self) -> str:
        return "The case cannot change this way"

    def problem(self) -> ProblemError:
        problem = super().problem()
        problem.extra = {k: v for k, v in self.extra.items() if v is not None}
        return problem


def _closed() -> CaseRefused:
    return CaseRefused(409, "case-closed", "This case is closed: reopen it first.")


async def _update_status(
    connection: asyncpg.Connection, case: Case, status: CaseStatus, now: datetime, **columns: object
) -> Case:
    names = ["status", *columns]
    assignments = ", ".join(f"{name} = ${i + 2}" for i, name in enumerate(names))
    row = await connection.fetchrow(
        f"UPDATE cases SET {assignments}, version = version + 1, updated_at = ${len(names) + 2} "
        f"WHERE id = $1 RETURNING {CASE_COLUMNS}",
        case.id,
        status.value,
        *columns.values(),
        now,
    )
    return Case.of(row)


async def hold(uow: UnitOfWork, case: Case, *, now: datetime) -> Case:
    if case.status == CaseStatus.CLOSED:
        raise _closed()
    if case.status == CaseStatus.ON_HOLD:
        raise CaseRefused(409, "case-on-hold", "This case is on hold already.")
    held = await _update_status(
        uow.connection, case, CaseStatus.ON_HOLD, now, status_before_hold=case.status
    )
    await _timeline(uow, case, "case.held", now)
    return held


async def resume(uow: UnitOfWork, case: Case, *, now: datetime) -> Case:
    if case.status != CaseStatus.ON_HOLD:
        raise CaseRefused(409, "case-not-on-hold", "Only a case on hold can be resumed.")
    back = CaseStatus(case.status_before_hold or CaseStatus.OPEN)
    resumed = await _update_status(uow.connection, case, back, now, status_before_hold=None)
    await _timeline(uow, case, "case.resumed", now)
    return resumed


async def _timeline(
    uow: UnitOfWork, case: Case, kind: str, now: datetime, codes: dict[str, str] | None = None
) -> None:
    await record_timeline(
        uow.connection,
        case_id=case.id,
        client_id=case.client_id,
        kind=kind,
        occurred_at=now,
        subject_type="case",
        subject_id=case.id,
        codes=codes or {},
    )


async def request_closure(
    uow: UnitOfWork,
    case: Case,
    request: ClosureRequest,
    *,
    by: Principal,
    needs_approval: bool,
    now: datetime,
) -> tuple[Case, ClosurePublic, Approval | None]:
    """Close the case now, or (when the organisation asks for approval) record the closure as
    requested and ask the case's team's supervisors. `case` was read locked."""
    if case.status == CaseStatus.CLOSED:
        raise _closed()
    closure = ClosurePublic(
        id=uuid4(),
        case_id=case.id,
        reason=request.reason,
        destination_code=request.destination_code,
        note=request.note,
        status="requested",
        requested_by=by.subject,
        requested_at=now,
        approval_id=None,
        closed_at=None,
    )
    inserted = await uow.connection.fetchval(
        "INSERT INTO case_closures (id, case_id, client_id, reason, destination_code, note, "
        "status, requested_by, requested_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, 'requested', $7, $8) "
        "ON CONFLICT (case_id) WHERE status = 'requested' DO NOTHING RETURNING id",
        closure.id,
        case.id,
        case.client_id,
        closure.reason.value,
        closure.destination_code,
        closure.note,
        closure.requested_by,
        now,
    )
    if inserted is None:
        pending = await uow.connection.fetchval(
            "SELECT approval_id FROM case_closures WHERE case_id = $1 AND status = 'requested'",
            case.id,
        )
        raise CaseRefused(
            409,
            "closure-pending",
            "A closure of this case already awaits a supervisor's decision.",
            approval_id=str(pending) if pending else None,
        )
    if not needs_approval:
        closed, done = await apply_closure(uow, case, closure, now=now)
        return closed, done, None
    approval = await request_approval(
        uow,
        case=case,
        subject=ApprovalSubject.CLOSURE,
        subject_id=closure.id,
        requested_by=by,
        now=now,
    )
    await uow.connection.execute(
        "UPDATE case_closures SET approval_id = $2 WHERE id = $1", closure.id, approval.id
    )
    return case, closure.model_copy(update={"approval_id": approval.id}), approval


async def apply_closure(
    uow: UnitOfWork, case: Case, closure: ClosurePublic, *, now: datetime
) -> tuple[Case, ClosurePublic]:
    """Close the case as `closure` says: its scheduled review is superseded, CaseClosed."""
    if case.status == CaseStatus.CLOSED:
        raise _closed()
    await uow.connection.execute(
        "UPDATE case_closures SET status = 'closed', closed_at = $2 WHERE id = $1",
        closure.id,
        now,
    )
    await supersede_scheduled(uow.connection, case.id)
    closed = await _update_status(
        uow.connection,
        case,
        CaseStatus.CLOSED,
        now,
        status_before_hold=None,
        closed_at=now,
        closed_by=closure.requested_by,
        closure_reason=closure.reason.value,
        destination_code=closure.destination_code,
        next_review_due_at=None,
    )
    uow.publish(
        CaseClosed(
            case_id=case.id,
            client_id=case.client_id,
            organization_id=case.organization_id,
            reason=closure.reason,
            destination_code=closure.destination_code,
            closed_by=closure.requested_by,
            closed_at=now,
        )
    )
    await _timeline(
        uow,
        case,
        "case.closed",
        now,
        {"reason": closure.reason.value, "destination_code": closure.destination_code},
    )
    return closed, closure.model_copy(update={"status": "closed", "closed_at": now})


async def load_closure(connection: asyncpg.Connection, closure_id: UUID) -> ClosurePublic | None:
    row = await connection.fetchrow(
        f"SELECT {CLOSURE_COLUMNS} FROM case_closures WHERE id = $1 FOR UPDATE", closure_id
    )
    return ClosurePublic.model_validate(dict(row)) if row else None


async def end_closure_request(
    connection: asyncpg.Connection, closure_id: UUID, status: str
) -> None:
    await connection.execute(
        "UPDATE case_closures SET status = $2 WHERE id = $1 AND status = 'requested'",
        closure_id,
        status,
    )


async def reopen(uow: UnitOfWork, case: Case, *, reason: str, by: str, now: datetime) -> Case:
    """Reopen a closed case (logged with its reason; CaseReopened; a review by the cadence).
    Refused when the client has another open case in the organisation."""
    if case.status != CaseStatus.CLOSED:
        raise CaseRefused(409, "case-not-closed", "Only a closed case can be reopened.")
    other = await uow.connection.fetchval(
        "SELECT id FROM cases WHERE client_id = $1 AND organization_id = $2 AND status <> 'closed'",
        case.client_id,
        case.organization_id,
    )
    if other is not None:
        raise CaseRefused(
            409,
            "case-already-open",
            "The client has another open case in your organisation.",
            case_id=str(other),
        )
    reopened = await _update_status(
        uow.connection,
        case,
        CaseStatus.OPEN,
        now,
        closed_at=None,
        closed_by=None,
        closure_reason=None,
        destination_code=None,
    )
    await uow.connection.execute(
        "INSERT INTO case_reopenings (id, case_id, client_id, reason, reopened_by, reopened_at) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        uuid4(),
        case.id,
        case.client_id,
        reason,
        by,
        now,
    )
    uow.publish(
        CaseReopened(
            case_id=case.id,
            client_id=case.client_id,
            organization_id=case.organization_id,
            reopened_by=by,
            reopened_at=now,
        )
    )
    await _timeline(uow, case, "case.reopened", now)
    await schedule_review(uow, reopened, reason="cadence", now=now)
    return reopened
