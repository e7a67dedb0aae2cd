"""Referral events: a closed-loop referral from a sending to a receiving organisation.

Statuses follow the HL7 FHIR SDOH referral Task (plus `expired`). Ids and codes only: the client's
details cross only through the API, where consent and scope are checked. `ReferralMade` names the
consent it relies on (intake, which owns consents, knows what that consent covers), never the
data classes shared: naming a protected class would reveal that such data exists.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal
from uuid import UUID

from pydantic import Field

from shared.events.contracts import EventData, Topic


class ReferralStatus(StrEnum):
    DRAFT = "draft"
    REQUESTED = "requested"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    IN_PROGRESS = "in-progress"
    ON_HOLD = "on-hold"
    FAILED = "failed"
    COMPLETED = "completed"
    ENTERED_IN_ERROR = "entered-in-error"
    EXPIRED = "expired"


class ReferralReason(StrEnum):
    """Why a referral was rejected, cancelled, put on hold or failed."""

    PROVIDER_DENIED = "provider-denied"
    CLIENT_DECLINED = "client-declined"
    NO_CAPACITY = "no-capacity"
    NOT_ELIGIBLE = "not-eligible"
    COULD_NOT_CONTACT = "could-not-contact"
    CONSENT_REVOKED = "consent-revoked"
    DUPLICATE = "duplicate"
    CLIENT_NEEDS_CHANGED = "client-needs-changed"
    NO_SHOW = "no-show"
    OTHER = "other"


class ReferralOutcome(StrEnum):
    GOT_HELP = "got-help"
    DID_NOT_GET_HELP = "did-not-get-help"
    UNKNOWN = "unknown"


class _ReferralEvent(EventData):
    topic = Topic.REFERRALS
    aggregate_type = "referral"
    source_service = "referrals"
    key_description = "The client's id: every event about a client stays in order."

    referral_id: UUID = Field(description="The referral's id in referrals.")
    client_id: UUID = Field(description="The client's id in intake.")
    sending_organization_id: str = Field(description="The organisation that referred.")
    receiving_organization_id: str | None = Field(
        description="The Casework organisation that receives it; null for a referral logged "
        "to a service outside the network."
    )


class ReferralMade(_ReferralEvent):
    """A referral was sent to a service of the network, or logged for one outside it."""

    event_type = "org.casework.referrals.referral.made.v1"
    summary = (
        "A referral was made: sent to a service of the network (with the consent it relies on), "
        "or logged for a service outside it (nothing shared). Ids and codes only."
    )

    service_id: str = Field(description="The HSDS service's id in the directory.")
    mode: Literal["sent", "logged"]
    consent_id: UUID | None = Field(
        description="The consent that lets the client's details reach the receiving "
        "organisation; null when nothing is shared."
    )
    status: ReferralStatus = Field(description="The status it was made in.")
    made_by: str = Field(description="User id of the worker who made it.")
    made_at: datetime
    expires_at: datetime | None = Field(description="When it expires unless accepted.")


class ReferralStatusChanged(_ReferralEvent):
    """A referral moved from one status to another."""

    event_type = "org.casework.referrals.referral.status.changed.v1"
    summary = (
        "A referral changed status: from, to, the reason code, and which side (organisation) "
        "set it. `consent-revoked` tells the receiving organisation its access ended."
    )

    from_status: ReferralStatus
    to_status: ReferralStatus
    reason_code: ReferralReason | None
    set_by_organization_id: str | None = Field(
        description="The organisation whose user set it; null when the system did (expiry, "
        "consent revocation)."
    )
    changed_at: datetime


class ReferralClosed(_ReferralEvent):
    """A referral reached a final status; completion records whether the client got help."""

    event_type = "org.casework.referrals.referral.closed.v1"
    summary = "A referral was closed (a final status), with its outcome as a code."

    final_status: ReferralStatus
    outcome: ReferralOutcome
    closed_at: datetime
    follow_up_due_at: datetime | None = Field(description="When to follow up with the client.")


EVENTS: tuple[type[EventData], ...] = (ReferralMade, ReferralStatusChanged, ReferralClosed)
