"""The API's shapes for referrals: what a worker sends, and what a caller is shown."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.referrals.lifecycle.transitions import Side
from shared.events.consent import DataClass
from shared.events.referrals import ReferralOutcome, ReferralReason, ReferralStatus
from shared.text import FreeText, Note

Mode = Literal["sent", "logged"]
ServiceId = Annotated[str, FreeText(max_length=200, pattern=r"^[A-Za-z0-9][\w.:-]*$")]


class ReferralCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: UUID = Field(description="The client (in your scope).")
    service_id: ServiceId = Field(description="The service's id in the resource directory.")
    mode: Mode = Field(
        description="`sent`: to a service of the network, shares `share` with its "
        "organisation under the client's consent. `logged`: records a referral to a service "
        "(of the network or outside it) and shares nothing."
    )
    share: list[DataClass] = Field(
        default_factory=list,
        max_length=len(DataClass),
        description="The classes of the client's data the receiving organisation may see; at "
        "least one for `sent` (a sent referral names the client), none for `logged`.",
    )
    note: Note | None = Field(
        default=None,
        description="For your side: shown to the sending organisation only, never sent.",
    )
    draft: bool = Field(
        default=False,
        description="True: keep it as a draft (nothing sent yet; consent is checked when it "
        "is requested).",
    )

    @field_validator("share")
    @classmethod
    def _canonical(cls, value: list[DataClass]) -> list[DataClass]:
        return [member for member in DataClass if member in value]

    @model_validator(mode="after")
    def _mode_decides_what_is_shared(self) -> ReferralCreate:
        if self.mode == "sent" and not self.share:
            raise ValueError("a sent referral shares at least one class of data (`share`)")
        if self.mode == "logged" and self.share:
            raise ValueError("a logged referral shares nothing: leave `share` empty")
        if self.mode == "logged" and self.draft:
            raise ValueError("a logged referral is recorded as made, never drafted")
        return self


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: ReferralStatus = Field(description="The status to move to.")
    reason_code: ReferralReason | None = Field(
        default=None,
        description="Required for rejected, cancelled, on-hold and failed. `consent-revoked` "
        "is set by the system only.",
    )
    outcome: ReferralOutcome | None = Field(
        default=None,
        description="Whether the client got help: required for completed, allowed on any "
        "final status.",
    )


class ReferralPublic(BaseModel):
    """A referral as the caller may see it: ids and codes; the client's details are read at
    intake, under the client's consent."""

    id: UUID
    client_id: UUID
    service_id: str
    mode: Mode
    status: ReferralStatus
    reason_code: ReferralReason | None = Field(description="Of the latest status change.")
    sending_organization_id: str
    sent_by: str = Field(description="User id of the worker who referred.")
    receiving_organization_id: str | None = Field(
        description="Null: a service outside the network (a logged referral)."
    )
    data_classes: list[DataClass] = Field(description="What the receiving side may see.")
    consent_id: UUID | None
    note: str | None = Field(description="The sending worker's note; null for the receiving side.")
    outcome: ReferralOutcome | None
    created_at: datetime
    updated_at: datetime
    requested_at: datetime | None
    expires_at: datetime | None = Field(description="Expires unless accepted by then.")
    closed_at: datetime | None
    follow_up_due_at: datetime | None = Field(
        description="When to follow up with the client after completion."
    )
    version: int
    your_sides: list[Side] = Field(description="Which side(s) of the referral you act for.")
    allowed_next: list[ReferralStatus] = Field(description="The statuses you may move it to.")


class HistoryEntry(BaseModel):
    from_status: ReferralStatus | None = Field(description="Null: the status it was made in.")
    to_status: ReferralStatus
    reason_code: ReferralReason | None
    outcome: ReferralOutcome | None
    set_by_side: Side
    set_by_organization_id: str | None = Field(description="Null: set by the system.")
    set_by_user: str | None = Field(description="Null: set by the system.")
    via: Literal["api", "fhir", "expiry", "consent"]
    at: datetime
