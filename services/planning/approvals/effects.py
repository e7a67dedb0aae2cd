"""What an approval does, per subject: the registry the decision looks up.

Each subject that can be approved registers a `SubjectEffects` here: `on_approved` and
`on_rejected` (and optionally `on_withdrawn`) run in the decision's own unit of work, after the
rules were checked and before the decision is written, so the effect and the decision commit
together (or neither). A subject without an entry cannot be requested.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from services.planning.approvals.models import Approval
from services.planning.cases.closure_approval import (
    closure_approved,
    closure_rejected,
    closure_withdrawn,
)
from services.planning.cases.lookup import Case
from shared.auth.principal import Principal
from shared.events.planning import ApprovalSubject
from shared.messaging.outbox import UnitOfWork

ApprovalEffect = Callable[[UnitOfWork, Approval, Case, Principal, datetime], Awaitable[None]]


async def no_effect(
    _uow: UnitOfWork, _approval: Approval, _case: Case, _by: Principal, _now: datetime
) -> None:
    return None


@dataclass(frozen=True)
class SubjectEffects:
    on_approved: ApprovalEffect
    on_rejected: ApprovalEffect
    on_withdrawn: ApprovalEffect = no_effect


APPROVAL_EFFECTS: dict[ApprovalSubject, SubjectEffects] = {
    ApprovalSubject.CLOSURE: SubjectEffects(
        on_approved=closure_approved, on_rejected=closure_rejected, on_withdrawn=closure_withdrawn
    ),
}
