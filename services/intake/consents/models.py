"""The consent ledger: its table and the API models.

A consent row is written once; revocation fills in its revocation columns once. Status is never
stored: it follows from the dates and the revocation (see `service.consent_status`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, TypeVar
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from sqlalchemy import (
    ARRAY,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from services.intake import tables
from shared.dates import EARLIEST_YEAR, LATEST_YEAR, PlausibleDate
from shared.events.consent import (
    RECIPIENT_SPECIFIC_DATA_CLASSES,
    DataClass,
    GivenBy,
    Purpose,
    RevocationReason,
)
from shared.text import FreeText

__all__ = [
    "MAX_RECIPIENTS",
    "ConsentCreate",
    "ConsentPublic",
    "ConsentStatus",
    "DataClass",
    "GivenBy",
    "Purpose",
    "RevocationReason",
    "RevocationRequest",
    "consents_table",
    "today",
]

MAX_RECIPIENTS = 50
E = TypeVar("E", bound=StrEnum)


def today() -> date:
    """The date consent is judged on when none is given: the UTC calendar day."""
    return datetime.now(UTC).date()


class ConsentStatus(StrEnum):
    PENDING = "pending"  # starts in the future
    ACTIVE = "active"
    EXPIRED = "expired"  # expired consent counts as no consent
    REVOKED = "revoked"


def _canonical(values: Sequence[E], vocabulary: type[E]) -> list[E]:
    """Each value once, in the vocabulary's order: the same consent always reads the same."""
    return [member for member in vocabulary if member in values]


OrganizationId = Annotated[str, FreeText(max_length=200, pattern=r"^[A-Za-z0-9][\w.:@-]*$")]
RevocationNote = Annotated[str, FreeText(max_length=500, multiline=True)]


class ConsentCreate(BaseModel):
    """A consent as signed: its scope (recipients or the whole network, purposes, classes of
    data) and its dates."""

    model_config = ConfigDict(extra="forbid")

    given_by: GivenBy = Field(description="Who signed the consent.")
    recipients: list[OrganizationId] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_RECIPIENTS,
        description=f"Organisation ids the client consents to share with (1 to "
        f"{MAX_RECIPIENTS}). Give either this or `network: true`.",
        examples=[["org-food-bank", "org-shelter"]],
    )
    network: bool = Field(
        default=False,
        validate_default=True,
        description="True: every organisation of the network, instead of `recipients`. Never "
        "for domestic_violence (VAWA) or substance_use (42 CFR Part 2) data.",
    )
    purposes: list[Purpose] = Field(min_length=1, description="What the data may be used for.")
    data_classes: list[DataClass] = Field(
        min_length=1, description="Which classes of the client's data are covered."
    )
    starts_on: PlausibleDate | None = Field(
        default=None,
        description="First day the consent applies; today (UTC) when omitted. Years "
        f"{EARLIEST_YEAR} to {LATEST_YEAR}.",
    )
    expires_on: PlausibleDate = Field(
        description="First day the consent no longer applies; after `starts_on`. Expired "
        f"consent counts as no consent. Years {EARLIEST_YEAR} to {LATEST_YEAR}."
    )

    @field_validator("recipients")
    @classmethod
    def _unique_recipients(cls, value: list[str] | None) -> list[str] | None:
        return sorted(set(value)) if value is not None else None

    @field_validator("network")
    @classmethod
    def _recipients_or_network(cls, value: bool, info: ValidationInfo) -> bool:
        if "recipients" not in info.data:
            return value  # recipients are invalid themselves; that error says enough
        recipients = info.data["recipients"]
        if value and recipients is not None:
            raise ValueError("give either recipients or network: true, not both")
        if not value and recipients is None:
            raise ValueError("give recipients (organisation ids) or network: true")
        return value

    @field_validator("purposes")
    @classmethod
    def _canonical_purposes(cls, value: list[Purpose]) -> list[Purpose]:
        return _canonical(value, Purpose)

    @field_validator("data_classes")
    @classmethod
    def _network_excludes_recipient_specific_classes(
        cls, value: list[DataClass], info: ValidationInfo
    ) -> list[DataClass]:
        if info.data.get("network"):
            reasons = [
                f"{data_class}: {reason}"
                for data_class, reason in RECIPIENT_SPECIFIC_DATA_CLASSES.items()
                if data_class in value
            ]
            if reasons:
                raise ValueError("a network-wide consent cannot cover " + "; ".join(reasons) + ".")
        return _canonical(value, DataClass)

    @field_validator("expires_on")
    @classmethod
    def _after_start(cls, value: date, info: ValidationInfo) -> date:
        if "starts_on" not in info.data:
            return value
        starts_on = info.data["starts_on"] or today()
        if value <= starts_on:
            raise ValueError(f"must be after starts_on ({starts_on.isoformat()})")
        return value


class RevocationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: RevocationReason = Field(description="Why the consent is revoked.")
    note: RevocationNote | None = Field(
        default=None,
        description="Optional free text (at most 500 characters). Kept in intake only: it "
        "never travels in events.",
    )


class ConsentPublic(BaseModel):
    """A consent as recorded, with its status on the day it is read."""

    id: UUID
    client_id: UUID
    given_by: GivenBy
    recipients: list[str] = Field(description="Empty when `network` is true.")
    network: bool
    purposes: list[Purpose]
    data_classes: list[DataClass]
    starts_on: date
    expires_on: date = Field(description="First day the consent no longer applies.")
    status: ConsentStatus = Field(
        description="Derived on each read: pending (starts later), active, expired or revoked."
    )
    recorded_by: str = Field(description="User id of who recorded the consent.")
    recorded_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None = Field(description="User id of who recorded the revocation.")
    revocation_reason: RevocationReason | None
    revocation_note: str | None


def consents_table(metadata: MetaData) -> Table:
    """Every consent ever recorded for a client; revocation fills in the revoked_* columns.

    The checks hold the rules the API enforces first, whatever writes. Changing one (or any column)
    needs a migration of its own: migration 0004 keeps its own frozen copy of this table.
    Vocabularies (purposes, classes, reasons) are left to the API, so they can grow.
    """
    return Table(
        "consents",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), ForeignKey("clients.id"), nullable=False),
        Column("given_by", Text, nullable=False),
        Column("network", Boolean, nullable=False),
        Column("recipients", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
        Column("purposes", ARRAY(Text), nullable=False),
        Column("data_classes", ARRAY(Text), nullable=False),
        Column("starts_on", Date, nullable=False),
        Column("expires_on", Date, nullable=False),
        Column("recorded_by", Text, nullable=False),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
        Column("revoked_at", DateTime(timezone=True)),
        Column("revoked_by", Text),
        Column("revocation_reason", Text),
        Column("revocation_note", Text),
        CheckConstraint("expires_on > starts_on", name="dates"),
        CheckConstraint("network <> (cardinality(recipients) > 0)", name="recipients_or_network"),
        CheckConstraint(
            "cardinality(purposes) > 0 AND cardinality(data_classes) > 0", name="scope"
        ),
        # VAWA and 42 CFR Part 2: see RECIPIENT_SPECIFIC_DATA_CLASSES.
        CheckConstraint(
            "NOT (network AND data_classes && ARRAY['domestic_violence', 'substance_use'])",
            name="network_excludes_recipient_specific_classes",
        ),
        CheckConstraint(
            "(revoked_at IS NULL AND revoked_by IS NULL AND revocation_reason IS NULL "
            "AND revocation_note IS NULL) OR (revoked_at IS NOT NULL AND revoked_by IS NOT NULL "
            "AND revocation_reason IS NOT NULL)",
            name="revocation",
        ),
        Index("ix_consents_client_id_recorded_at_id", "client_id", "recorded_at", "id"),
    )


# Part of intake's declared tables (what its migrations must produce).
consents_table(tables.metadata)
