"""Requesting an approval, deciding on it and withdrawing it: the rules, in one place.

Who may decide: a supervisor of the case's own organisation and team, never the requester.
Only a `requested` approval can be decided or withdrawn. What an approval *does* is the
subject's business: see `effects.py`.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

import asyncpg

from services.planning.approvals.models import APPROVAL_COLUMNS, Approval, ApprovalStatus
from services.planning.cases.lookup import Case
from services.planning.refusals import Refusal
from services.planning.timeline.service import record_timeline
from shared.auth.principal import Principal, Role
from shared.events.planning import ApprovalDecided, ApprovalRequested, ApprovalSubject
from shared.messaging.outbox import UnitOfWork


class ApprovalRefused(Refusal):
    """The approval cannot be requested, decided or withdrawn (nothing was written).
    `status` is the HTTP status the refusal answers with."""

    def title(self) -> str:
        return "The approval cannot be changed" if self.status == 409 else "Not allowed"


async def load_approval(
    connection: asyncpg.Connection, approval_id: UUID, *, lock: bool = False
) -> Approval | None:
    row = await connection.fetchrow(
        f"SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1" + (" FOR UPDATE" if lock else ""),
        approval_id,
    )
    return Approval.model_validate(dict(row)) if row else None


async def request_approval(
    uow: UnitOfWork,
    *,
    case: Case,
    subject: ApprovalSubject,
    subject_id: UUID,
    requested_by: Principal,
    now: datetime,
) -> Approval:
    """Ask the case's team's supervisors to decide on `subject_id`. Raises ApprovalRefused
    (409 `approval-pending`) when that subject already awaits a decision."""
    approval = Approval(
        id=uuid4(),
        case_id=case.id,
        client_id=case.client_id,
        subject=subject,
        subject_id=subject_id,
        status=ApprovalStatus.REQUESTED,
        requested_by=requested_by.subject,
        requested_at=now,
        decided_by=None,
        decided_at=None,
        comment=None,
        team_id=case.team_id,
        organization_id=case.organization_id,
    )
    inserted = await uow.connection.fetchval(
        "INSERT INTO approvals (id, case_id, client_id, subject, subject_id, status, "
        "requested_by, requested_at, team_id, organization_id) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
        "ON CONFLICT (subject, subject_id) WHERE status = 'requested' DO NOTHING RETURNING id",
        approval.id,
        approval.case_id,
        approval.client_id,
        approval.subject.value,
        approval.subject_id,
        approval.status.value,
        approval.requested_by,
        approval.requested_at,
        approval.team_id,
        approval.organization_id,
    )
    if inserted is None:
        raise ApprovalRefused(
            409, "approval-pending", "This already awaits a supervisor's decision."
        )
    uow.publish(
        ApprovalRequested(
            case_id=case.id,
            client_id=case.client_id,
            organization_id=case.organization_id,
            approval_id=approval.id,
            team_id=case.team_id,
            subject=subject,
            subject_id=subject_id,
            requested_by=approval.requested_by,
            requested_at=now,
        )
    )
    await record_timeline(
        uow.connection,
        case_id=case.id,
        client_id=case.client_id,
        kind="approval.requested",
        occurred_at=now,
        subject_type="approval",
        subject_id=approval.id,
        codes={"subject": subject.value},
    )
    return approval


def decision_refusal(approval: Approval, case: Case, decider: Principal) -> ApprovalRefused | None:
    """Why `decider` may not decide `approval` now, or None when they may."""
    if (
        not decider.has(Role.SUPERVISOR)
        or decider.organization_id != case.organization_id
        or decider.team_id is None
        or decider.team_id != case.team_id
    ):
        return ApprovalRefused(
            403, "not-case-supervisor", "Only a supervisor of the case's team decides on it."
        )
    if decider.subject == approval.requested_by:
        return ApprovalRefused(
            403, "self-approval", "You requested this approval: another supervisor decides."
        )
    if approval.status is not ApprovalStatus.REQUESTED:
        return ApprovalRefused(
            409, "approval-not-pending", f"This approval is already {approval.status.value}."
        )
    return None


def withdrawal_refusal(approval: Approval, requester: Principal) -> ApprovalRefused | None:
    if requester.subject != approval.requested_by:
        return ApprovalRefused(403, "not-requester", "Only who requested it can withdraw it.")
    if approval.status is not ApprovalStatus.REQUESTED:
        return ApprovalRefused(
            409, "approval-not-pending", f"This approval is already {approval.status.value}."
        )
    return None


async def record_decision(
    uow: UnitOfWork,
    approval: Approval,
    *,
    status: ApprovalStatus,
    by: Principal,
    comment: str | None,
    now: datetime,
) -> Approval:
    """Write the decision (or withdrawal), publish ApprovalDecided and add it to the timeline.
    The caller has checked the rules (`decision_refusal`, `withdrawal_refusal`)."""
    decided = approval.model_copy(
        update={"status": status, "decided_by": by.subject, "decided_at": now, "comment": comment}
    )
    await uow.connection.execute(
        "UPDATE approvals SET status = $2, decided_by = $3, decided_at = $4, comment = $5 "
        "WHERE id = $1",
        approval.id,
        status.value,
        by.subject,
        now,
        comment,
    )
    decision = {
        ApprovalStatus.APPROVED: "approved",
        ApprovalStatus.REJECTED: "rejected",
        ApprovalStatus.WITHDRAWN: "withdrawn",
    }[status]
    uow.publish(
        ApprovalDecided(
            case_id=approval.case_id,
            client_id=approval.client_id,
            organization_id=approval.organization_id,
            approval_id=approval.id,
            subject=approval.subject,
            subject_id=approval.subject_id,
            decision=decision,
            decided_by=by.subject,
            decided_at=now,
        )
    )
    await record_timeline(
        uow.connection,
        case_id=approval.case_id,
        client_id=approval.client_id,
        kind=f"approval.{decision}",
        occurred_at=now,
        subject_type="approval",
        subject_id=approval.id,
        codes={"subject": approval.subject.value},
    )
    return decided
