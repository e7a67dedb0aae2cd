"""What a partner organisation sees of a client referred to it: the shape of the shared record.

Demographics are the `general` class; needs carry their own class. Nothing else of intake's
record (identifiers, household, race and gender, notes, flags, answers) is shared this way.
"""

from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from pydantic import BaseModel, Field

from services.intake.clients.models import Address
from shared.events.assessment import NeedSeverity
from shared.events.consent import DataClass


class SharedDemographics(BaseModel):
    """What the receiving organisation needs to reach and identify the client."""

    given_name: str | None
    family_name: str | None
    birth_date: date | None
    preferred_language: str
    interpreter_needed: bool
    phone: str | None
    email: str | None
    address: Address | None


class SharedNeed(BaseModel):
    category: str = Field(examples=["housing"])
    severity: NeedSeverity
    data_class: DataClass = Field(description="The class of data the need belongs to.")


class SharedAssessment(BaseModel):
    """The client's latest assessment, reduced to the needs the consent lets through."""

    assessment_id: UUID
    instrument_id: str
    assessed_at: datetime
    needs: list[SharedNeed] = Field(description="Only needs of the classes shared.")


class SharedClientRecord(BaseModel):
    """A client as the consent behind an open referral lets the receiving organisation see it."""

    client_id: UUID
    referral_ids: list[UUID] = Field(description="The open referrals the access rests on.")
    consent_ids: list[UUID] = Field(description="The consents the access rests on.")
    data_classes: list[DataClass] = Field(description="The classes of data shared today.")
    demographics: SharedDemographics | None = Field(
        description="Null unless the consent covers the `general` class."
    )
    latest_assessment: SharedAssessment | None = Field(
        description="Null when the client has no assessment, or none of its needs is shared."
    )
