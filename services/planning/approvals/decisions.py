"""Deciding on and withdrawing approvals, with the subject's effects (effects.py)."""

from __future__ import annotations

from datetime import datetime

from services.planning.approvals.effects import APPROVAL_EFFECTS, SubjectEffects, no_effect
from services.planning.approvals.models import Approval, ApprovalStatus
from services.planning.approvals.service import (
    decision_refusal,
    record_decision,
    withdrawal_refusal,
)
from services.planning.cases.lookup import Case
from shared.auth.principal import Principal
from shared.messaging.outbox import UnitOfWork

_NONE = SubjectEffects(on_approved=no_effect, on_rejected=no_effect)


async def decide(
    uow: UnitOfWork,
    approval: Approval,
    case: Case,
    *,
    approve: bool,
    by: Principal,
    comment: str | None,
    now: datetime,
) -> Approval:
    """Approve or reject (raises ApprovalRefused when `by` may not). `approval` and `case` were
    read with their rows locked."""
    refused = decision_refusal(approval, case, by)
    if refused is not None:
        raise refused
    effects = APPROVAL_EFFECTS.get(approval.subject, _NONE)
    effect = effects.on_approved if approve else effects.on_rejected
    await effect(uow, approval, case, by, now)
    status = ApprovalStatus.APPROVED if approve else ApprovalStatus.REJECTED
    return await record_decision(uow, approval, status=status, by=by, comment=comment, now=now)


async def withdraw(
    uow: UnitOfWork,
    approval: Approval,
    case: Case,
    *,
    by: Principal,
    comment: str | None,
    now: datetime,
) -> Approval:
    refused = withdrawal_refusal(approval, by)
    if refused is not None:
        raise refused
    await APPROVAL_EFFECTS.get(approval.subject, _NONE).on_withdrawn(uow, approval, case, by, now)
    return await record_decision(
        uow, approval, status=ApprovalStatus.WITHDRAWN, by=by, comment=comment, now=now
    )
