"""Consent ledger events (intake): who may receive which classes of a client's data.

The vocabularies live here because they travel on the wire: intake's API and any consumer
(e.g. referrals, deciding whether a hand-over is covered) read the same words.

That a client consented to share protected data (domestic violence, substance use, ...) is
itself a protected fact, so one consent travels as up to two events: `ConsentGranted` on the
general topic with the general class only, published only when the consent covers it, and
`ProtectedConsentGranted` on `Topic.INTAKE_PROTECTED_CONSENTS` with the protected classes only,
published only when it covers any. A consumer keeps the union (shared/auth/consents.py). A
consent of protected classes only leaves no trace on the general topic: its revocation travels
as `ProtectedConsentRevoked`.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, Field, WithJsonSchema

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


def _general_class(data_class: DataClass) -> DataClass:
    if data_class is not DataClass.GENERAL:
        raise ValueError("a protected data class never travels on this topic")
    return data_class


def _protected_class(data_class: DataClass) -> DataClass:
    if data_class is DataClass.GENERAL:
        raise ValueError("the general class travels in ConsentGranted")
    return data_class


GeneralDataClass = Annotated[
    DataClass,
    AfterValidator(_general_class),
    WithJsonSchema({"type": "string", "enum": [DataClass.GENERAL.value]}),
]
PROTECTED_DATA_CLASSES: tuple[DataClass, ...] = tuple(
    c for c in DataClass if c is not DataClass.GENERAL
)
ProtectedDataClass = Annotated[
    DataClass,
    AfterValidator(_protected_class),
    WithJsonSchema({"type": "string", "enum": [c.value for c in PROTECTED_DATA_CLASSES]}),
]


class ConsentGrant(EventData):
    """A consent's terms, every class it covers: what intake records in its own consent facts.
    Never published as such; the events below split it by topic."""

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

    @property
    def covers_general(self) -> bool:
        return DataClass.GENERAL in self.data_classes

    @property
    def protected_classes(self) -> list[DataClass]:
        return [c for c in self.data_classes if c is not DataClass.GENERAL]

    def general_event(self) -> ConsentGranted | None:
        """The general topic's share of it: None when the consent covers no general data."""
        if not self.covers_general:
            return None
        return ConsentGranted.model_validate(
            {**self.model_dump(), "data_classes": [DataClass.GENERAL]}
        )

    def protected_event(self) -> ProtectedConsentGranted | None:
        """The protected topic's share of it: None when it covers no protected class."""
        if not self.protected_classes:
            return None
        return ProtectedConsentGranted.model_validate(
            {**self.model_dump(), "data_classes": self.protected_classes}
        )


class ConsentGranted(ConsentGrant):
    """A client's consent to share general data was recorded at intake."""

    event_type = "org.casework.intake.consent.granted.v1"
    topic = Topic.INTAKE_CLIENTS
    aggregate_type = "client"
    source_service = "intake"
    summary = (
        "A client's consent to share general data was recorded: its scope and dates (ids and "
        "codes only, no names or notes). Published only when the consent covers the general "
        "class, and it names only that class: the protected classes of the same consent travel "
        "as ProtectedConsentGranted."
    )

    data_classes: list[GeneralDataClass] = Field(
        min_length=1, description="Always `general`: protected classes never travel here."
    )


class ProtectedConsentGranted(ConsentGrant):
    """A client's consent to share protected classes of data was recorded at intake."""

    event_type = "org.casework.intake.protected.consent.granted.v1"
    topic = Topic.INTAKE_PROTECTED_CONSENTS
    aggregate_type = "client"
    source_service = "intake"
    summary = (
        "A client's consent to share protected classes of data (domestic violence, substance "
        "use, HIV, mental health, child safety) was recorded; published only when it covers "
        "any. Same consent id and terms as its ConsentGranted, if the consent also covers the "
        "general class. Protected topic: only its named readers."
    )

    data_classes: list[ProtectedDataClass] = Field(
        min_length=1, description="The protected classes the consent covers (never `general`)."
    )


class ConsentRevocation(EventData):
    """A consent's revocation, whichever topic it travels on."""

    consent_id: UUID = Field(description="The consent's id in intake.")
    client_id: UUID = Field(description="The client's id in intake.")
    revoked_at: datetime = Field(description="When the revocation was recorded.")
    reason: RevocationReason = Field(description="Why, as a code.")


class ConsentRevoked(ConsentRevocation):
    """A client's consent was revoked: it covers nothing from now on."""

    event_type = "org.casework.intake.consent.revoked.v1"
    topic = Topic.INTAKE_CLIENTS
    aggregate_type = "client"
    source_service = "intake"
    summary = (
        "A client's consent was revoked (ids and a reason code; no note). Only for a consent "
        "that covered the general class (its ConsentGranted travelled here)."
    )


class ProtectedConsentRevoked(ConsentRevocation):
    """A consent of protected classes only was revoked: it covers nothing from now on."""

    event_type = "org.casework.intake.protected.consent.revoked.v1"
    topic = Topic.INTAKE_PROTECTED_CONSENTS
    aggregate_type = "client"
    source_service = "intake"
    summary = (
        "A consent that covered only protected classes was revoked (ids and a reason code; no "
        "note): a revocation on the general topic would reveal it. Protected topic: only its "
        "named readers."
    )


def revocation_event(
    *,
    data_classes: list[DataClass],
    consent_id: UUID,
    client_id: UUID,
    revoked_at: datetime,
    reason: RevocationReason,
) -> ConsentRevocation:
    """The revocation travels where the grant's general event went, if it went anywhere general."""
    kind: type[ConsentRevocation] = (
        ConsentRevoked if DataClass.GENERAL in data_classes else ProtectedConsentRevoked
    )
    return kind(consent_id=consent_id, client_id=client_id, revoked_at=revoked_at, reason=reason)


EVENTS: tuple[type[EventData], ...] = (
    ConsentGranted,
    ConsentRevoked,
    ProtectedConsentGranted,
    ProtectedConsentRevoked,
)
