"""Planning events: cases, reviews, plans, goals, notes, approvals and transfers.

Ids, codes, levels and times only: never a note's text, a goal's wording or a plan's content.
Keyed by the client's id, like every event about a client, so one client's events stay in order
across aggregates (a case's opening before its review, its closing after its notes).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import Field

from shared.events.assessment import RiskLevel
from shared.events.contracts import EventData, Topic


class CaseStatus(StrEnum):
    OPEN = "open"
    ACTIVE = "active"  # a plan is approved
    ON_HOLD = "on_hold"
    CLOSED = "closed"


class ClosureReason(StrEnum):
    GOALS_MET = "goals_met"
    CLIENT_WITHDREW = "client_withdrew"
    MOVED = "moved"
    TRANSFERRED = "transferred"
    DECEASED = "deceased"
    LOST_CONTACT = "lost_contact"
    OTHER = "other"


class ReviewOutcome(StrEnum):
    CONTINUE = "continue"
    REVISE_PLAN = "revise_plan"
    CLOSE = "close"


class GoalStatus(StrEnum):
    PROPOSED = "proposed"
    ACTIVE = "active"
    ON_HOLD = "on_hold"
    ACHIEVED = "achieved"
    NOT_ACHIEVED = "not_achieved"
    CANCELLED = "cancelled"


class NoteKind(StrEnum):
    NOTE = "note"
    CONTACT = "contact"
    SERVICE_PROVIDED = "service_provided"
    ADVOCACY = "advocacy"
    CRISIS_INTERVENTION = "crisis_intervention"
    CONSULTATION = "consultation"


class ApprovalSubject(StrEnum):
    PLAN = "plan"
    CLOSURE = "closure"
    REFERRAL_DENIAL = "referral_denial"
    CONSENT_OVERRIDE = "consent_override"


class _CaseEvent(EventData):
    topic = Topic.PLANNING_CASES
    aggregate_type = "case"
    source_service = "planning"
    key_description = "The client's id: every event about a client stays in order."

    case_id: UUID = Field(description="The case's id in planning.")
    client_id: UUID = Field(description="The client's id in intake.")
    organization_id: str = Field(description="The case's organisation.")


class CaseOpened(_CaseEvent):
    """A client's case was opened in an organisation."""

    event_type = "org.casework.planning.case.opened.v1"
    summary = (
        "A case (a client's episode of service with an organisation) was opened by hand, from an "
        "assessment that found needs, or by a crisis. Ids and codes only."
    )

    team_id: str | None = Field(description="The team the case belongs to, if known.")
    worker_id: str | None = Field(description="User id of the assigned worker; null: unassigned.")
    opened_by: str = Field(description="User id of who opened it, or `system` for an event.")
    opened_at: datetime
    source: Literal["manual", "assessment", "crisis"] = Field(
        description="What opened it: a worker, an assessment's needs, a crisis flag."
    )
    assessment_id: UUID | None = Field(description="The assessment that opened it, if any.")


class CaseClosed(_CaseEvent):
    """A case was closed, with a reason and an HMIS destination code."""

    event_type = "org.casework.planning.case.closed.v1"
    summary = "A case was closed: reason and HMIS destination as codes; no note."

    reason: ClosureReason
    destination_code: str = Field(description="HMIS destination code (planning's code list).")
    closed_by: str = Field(description="User id of who closed it.")
    closed_at: datetime


class CaseReopened(_CaseEvent):
    """A closed case was reopened."""

    event_type = "org.casework.planning.case.reopened.v1"
    summary = "A closed case was reopened (ids only; the reason stays in planning)."

    reopened_by: str = Field(description="User id of who reopened it.")
    reopened_at: datetime


class ReviewScheduled(_CaseEvent):
    """A case review is due at a time."""

    event_type = "org.casework.planning.review.scheduled.v1"
    summary = (
        "A case review was scheduled (by the risk cadence, a new assessment or a crisis): when "
        "it is due and who should hold it. Notifications reminds and escalates from it."
    )

    review_id: UUID
    team_id: str | None = Field(description="The case's team.")
    worker_id: str | None = Field(description="The assigned worker, who should hold it.")
    due_at: datetime
    risk_level: RiskLevel | None = Field(description="The risk level the cadence followed.")
    reason: Literal["cadence", "assessment", "crisis", "manual"]


class ReviewCompleted(_CaseEvent):
    """A case review was held."""

    event_type = "org.casework.planning.review.completed.v1"
    summary = "A case review was held, with its outcome as a code."

    review_id: UUID
    outcome: ReviewOutcome
    completed_by: str = Field(description="User id of who recorded it.")
    completed_at: datetime


class PlanApproved(_CaseEvent):
    """A version of a case's service plan was approved."""

    event_type = "org.casework.planning.plan.approved.v1"
    summary = "A service plan version was approved by a supervisor (ids and version only)."

    plan_id: UUID
    version: int = Field(ge=1)
    approved_by: str = Field(description="User id of the approving supervisor.")
    approved_at: datetime


class GoalStatusChanged(_CaseEvent):
    """A goal of a case's service plan changed status."""

    event_type = "org.casework.planning.goal.status.changed.v1"
    summary = "A plan goal changed status (ids and codes; never the goal's wording)."

    plan_id: UUID
    goal_id: UUID
    from_status: GoalStatus | None
    to_status: GoalStatus
    changed_by: str
    changed_at: datetime


class NoteSigned(_CaseEvent):
    """A progress note was signed (and so can never change)."""

    event_type = "org.casework.planning.note.signed.v1"
    summary = "A progress note (or an addendum) was signed: ids and kind, never its text."

    note_id: UUID
    kind: NoteKind
    addendum_to: UUID | None = Field(description="The note this addendum corrects, if any.")
    signed_by: str
    signed_at: datetime
    needs_cosignature: bool = Field(description="A supervisor must co-sign it.")


class ApprovalRequested(_CaseEvent):
    """Something of a case awaits a supervisor's approval."""

    event_type = "org.casework.planning.approval.requested.v1"
    summary = "A plan, a closure or another decision awaits a supervisor of the case's team."

    approval_id: UUID
    team_id: str | None
    subject: ApprovalSubject
    subject_id: UUID = Field(description="The plan version, closure request, … to decide on.")
    requested_by: str
    requested_at: datetime


class ApprovalDecided(_CaseEvent):
    """A supervisor decided on an approval request (or its requester withdrew it)."""

    event_type = "org.casework.planning.approval.decided.v1"
    summary = "An approval request was approved, rejected or withdrawn (codes; no comment)."

    approval_id: UUID
    subject: ApprovalSubject
    subject_id: UUID
    decision: Literal["approved", "rejected", "withdrawn"]
    decided_by: str
    decided_at: datetime


class TransferRequested(_CaseEvent):
    """A case's transfer to another worker was requested and awaits their answer."""

    event_type = "org.casework.planning.transfer.requested.v1"
    summary = "A case transfer to another worker was requested (ids only)."

    transfer_id: UUID
    from_worker_id: str | None
    to_worker_id: str
    to_team_id: str | None
    requested_by: str
    requested_at: datetime


class TransferAnswered(_CaseEvent):
    """A transfer was accepted, declined or revoked (accepted also publishes CaseAssigned)."""

    event_type = "org.casework.planning.transfer.answered.v1"
    summary = "A case transfer was accepted, declined or revoked (ids and a code)."

    transfer_id: UUID
    answer: Literal["accepted", "declined", "revoked"]
    answered_by: str
    answered_at: datetime


class WorkerUpdated(EventData):
    """A staff directory entry was created or changed (staff data, never client data)."""

    event_type = "org.casework.planning.worker.updated.v1"
    topic = Topic.PLANNING_WORKERS
    aggregate_type = "worker"
    source_service = "planning"
    summary = (
        "A worker of the staff directory was created or changed: organisation, team, role, "
        "languages and whether active, as notifications needs them to find recipients."
    )
    key_fields = ("worker_id",)
    key_description = "The worker's user id: one worker's changes stay in order."

    worker_id: str = Field(description="The identity provider's user id (the token's `sub`).")
    organization_id: str
    team_id: str | None
    role: Literal["caseworker", "supervisor"] = Field(
        description="Supervisors of a team approve its plans and receive its escalations."
    )
    languages: list[str] = Field(description="ISO 639 codes the worker speaks.")
    active: bool
    version: int = Field(ge=1, description="Increases with every change: apply only newer ones.")
    updated_at: datetime


EVENTS: tuple[type[EventData], ...] = (
    WorkerUpdated,
    CaseOpened,
    CaseClosed,
    CaseReopened,
    ReviewScheduled,
    ReviewCompleted,
    PlanApproved,
    GoalStatusChanged,
    NoteSigned,
    ApprovalRequested,
    ApprovalDecided,
    TransferRequested,
    TransferAnswered,
)
