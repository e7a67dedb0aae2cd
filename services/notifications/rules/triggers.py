"""What a rule can react to: the events notifications consumes, and the moments its own timers
mark (a review due soon or overdue, a crisis flag nobody acknowledged). For each, the fields a
rule's condition may test, the parameters a message may show (ids, codes and times: never a
name, never a flag's type, which can reveal a protected answer) and what the notification is
about (its subject).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.events.assessment import FlagAcknowledged, ProtectedFlagRaised
from shared.events.contracts import CaseAssigned, EventData
from shared.events.planning import (
    ApprovalDecided,
    ApprovalRequested,
    ReviewScheduled,
    TransferAnswered,
    TransferRequested,
)
from shared.events.referrals import ReferralClosed, ReferralMade, ReferralStatusChanged

REVIEW_REMINDER = "notifications.review.reminder"
FLAG_UNACKNOWLEDGED = "notifications.flag.unacknowledged"

# Never shown in a message: they can reveal protected data (a crisis flag's type says which
# answer raised it) or say nothing the reader needs.
HIDDEN_PARAMETERS = frozenset({"flag_type", "consent_id", "source", "assessment_id"})


@dataclass(frozen=True)
class Trigger:
    name: str
    # Fields a rule's `when` may test.
    fields: frozenset[str]
    # Fields a message template may show.
    parameters: frozenset[str]
    subject_type: str
    subject_field: str
    description: str


def _of(model: type[EventData], subject_type: str, subject_field: str) -> Trigger:
    fields = frozenset(model.model_fields)
    return Trigger(
        name=model.event_type,
        fields=fields,
        parameters=fields - HIDDEN_PARAMETERS,
        subject_type=subject_type,
        subject_field=subject_field,
        description=model.summary,
    )


def _internal(name: str, fields: set[str], subject: tuple[str, str], text: str) -> Trigger:
    return Trigger(
        name=name,
        fields=frozenset(fields),
        parameters=frozenset(fields),
        subject_type=subject[0],
        subject_field=subject[1],
        description=text,
    )


TRIGGERS: dict[str, Trigger] = {
    trigger.name: trigger
    for trigger in (
        _of(CaseAssigned, "case", "client_id"),
        _of(TransferRequested, "case", "case_id"),
        _of(TransferAnswered, "case", "case_id"),
        _of(ProtectedFlagRaised, "flag", "flag_id"),
        _of(ApprovalRequested, "approval", "approval_id"),
        _of(ApprovalDecided, "approval", "approval_id"),
        _of(ReviewScheduled, "review", "review_id"),
        _of(ReferralMade, "referral", "referral_id"),
        _of(ReferralStatusChanged, "referral", "referral_id"),
        _of(ReferralClosed, "referral", "referral_id"),
        _internal(
            REVIEW_REMINDER,
            {"review_id", "case_id", "client_id", "due_at", "stage", "risk_level"},
            ("review", "review_id"),
            "A review is due soon (`stage` due_soon), due now (overdue) or overdue beyond "
            "the escalation setting (overdue_escalated), and was not completed.",
        ),
        _internal(
            FLAG_UNACKNOWLEDGED,
            {"flag_id", "client_id", "level", "severity"},
            ("flag", "flag_id"),
            "Nobody acknowledged a crisis flag within the escalation setting; `level` counts "
            "the escalations (1, 2, …).",
        ),
    )
}

# Acknowledgement ends an escalation; it notifies nobody by itself.
ACKNOWLEDGEMENT = FlagAcknowledged.event_type
