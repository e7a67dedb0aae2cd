"""Consent ledger events (intake): who may receive which classes of a client's data.

The vocabularies live here because they travel on the wire: intake's API and any consumer
(e.g. referrals, deciding whether a hand-over is covered) read the same words.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from uuid import UUID

from pydantic import Field

from shared.events.contracts import EventData, Topic


class GivenBy(StrEnum):
    """Who signed the consent."""

    CLIENT = "client"
    GUARDIAN = "guardian"
    LEGAL_REPRESENTATIVE = "legal_representative"


class Purpose(StrEnum):
    """What the shared data may be used for."""

    REFERRAL = "referral"
    CARE_COORDINATION = "care_coordination"
    REPORTING = "reporting"


class DataClass(StrEnum):
    """Classes of client data a consent may cover."""

    GENERAL = "general"
    DOMESTIC_VIOLENCE = "domestic_violence"
    SUBSTANCE_USE = "substance_use"
    HIV = "hiv"
    MENTAL_HEALTH = "mental_health"
    CHILD_SAFETY = "child_safety"


# Classes a network-wide consent can never cover, and why.
RECIPIENT_SPECIFIC_DATA_CLASSES: dict[DataClass, str] = {
    DataClass.DOMESTIC_VIOLENCE: (
        "domestic-violence data must stay out of shared systems (VAWA): name each recipient "
        "organisation"
    ),
    DataClass.SUBSTANCE_USE: (
        "substance-use records need the client's explicit consent for each recipient "
        "(42 CFR Part 2): name each recipient organisation"
    ),
}


class RevocationReason(StrEnum):
    """Why a consent was revoked."""

    CLIENT_REQUEST = "client_request"
    EXPIRED_DOCUMENTATION = "expired_documentation"
    ENTERED_IN_ERROR = "entered_in_error"
    OTHER = "other"


class ConsentGranted(EventData):
    """A client's consent to share data was recorded at intake."""

    event_type = "org.casework.intake.consent.granted.v1"
    topic = Topic.INTAKE_CLIENTS
    aggregate_type = "client"
    source_service = "intake"
    summary = (
        "A client's consent to share data was recorded: its scope and dates (ids and codes "
        "only, no names or notes)."
    )

    consent_id: UUID = Field(description="The consent's id in intake.")
    client_id: UUID = Field(description="The client's id in intake.")
    recipients: list[str] = Field(
        description="Organisation ids the consent names; empty when `network` is true."
    )
    network: bool = Field(
        description="True: every organisation of the network (never covers domestic_violence "
        "or substance_use)."
    )
    purposes: list[Purpose] = Field(description="What the data may be used for.")
    data_classes: list[DataClass] = Field(description="Which classes of data are covered.")
    starts_on: date = Field(description="First day the consent applies.")
    expires_on: date = Field(
        description="First day the consent no longer applies (it covers starts_on up to, "
        "not including, this day)."
    )
    given_by: GivenBy = Field(description="Who signed the consent.")


class ConsentRevoked(EventData):
    """A client's consent was revoked: it covers nothing from now on."""

    event_type = "org.casework.intake.consent.revoked.v1"
    topic = Topic.INTAKE_CLIENTS
    aggregate_type = "client"
    source_service = "intake"
    summary = "A client's consent was revoked (ids and a reason code; no note)."

    consent_id: UUID = Field(description="The consent's id in intake.")
    client_id: UUID = Field(description="The client's id in intake.")
    revoked_at: datetime = Field(description="When the revocation was recorded.")
    reason: RevocationReason = Field(description="Why, as a code.")


EVENTS: tuple[type[EventData], ...] = (ConsentGranted, ConsentRevoked)
