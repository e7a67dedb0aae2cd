"""Progress notes: the table and the API models, with each kind's own fields."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.dates import PlausibleDatetime
from shared.events.planning import NoteKind
from shared.text import FreeText, ShortText

MAX_GOALS = 30
MAX_PARTICIPANTS = 30

NoteText = Annotated[str, FreeText(max_length=20_000, multiline=True)]


class NoteStatus(StrEnum):
    DRAFT = "draft"
    SIGNED = "signed"


class Visibility(StrEnum):
    STANDARD = "standard"
    RESTRICTED = "restricted"  # its author and the case's team supervisor only


class ContactMode(StrEnum):
    IN_PERSON = "in_person"
    PHONE = "phone"
    VIDEO = "video"
    HOME_VISIT = "home_visit"
    COLLATERAL = "collateral"  # with someone about the client, not the client


class _Details(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlainDetails(_Details):
    kind: Literal["note"]


class ContactDetails(_Details):
    kind: Literal["contact"]
    mode: ContactMode


class ServiceDetails(_Details):
    kind: Literal["service_provided"]
    minutes: int | None = Field(default=None, ge=1, le=1440)
    units: float | None = Field(default=None, gt=0, le=10_000, allow_inf_nan=False)

    @model_validator(mode="after")
    def _minutes_or_units(self) -> Self:
        if (self.minutes is None) == (self.units is None):
            raise ValueError("give either minutes or units")
        return self


class AdvocacyDetails(_Details):
    kind: Literal["advocacy"]
    with_organization: ShortText = Field(description="With whom: their organisation.")
    with_role: ShortText = Field(description="With whom: their role, e.g. landlord, officer.")
    on_what: ShortText = Field(description="What it was about, e.g. eviction notice.")


class CrisisDetails(_Details):
    kind: Literal["crisis_intervention"]


class Participant(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: ShortText = Field(examples=["psychiatrist"])
    organization_id: ShortText


class ConsultationDetails(_Details):
    kind: Literal["consultation"]
    participants: list[Participant] = Field(min_length=1, max_length=MAX_PARTICIPANTS)


NoteDetails = Annotated[
    PlainDetails
    | ContactDetails
    | ServiceDetails
    | AdvocacyDetails
    | CrisisDetails
    | ConsultationDetails,
    Field(discriminator="kind", description="The note's kind and its kind's own fields."),
]


def _distinct(values: list[UUID]) -> list[UUID]:
    if len(set(values)) != len(values):
        raise ValueError("must not repeat a goal")
    return values


GoalIds = Annotated[list[UUID], Field(max_length=MAX_GOALS), AfterValidator(_distinct)]


class NoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    details: NoteDetails
    text: NoteText
    occurred_at: PlausibleDatetime | None = Field(
        default=None, description="When what it records happened (not in the future); now."
    )
    visibility: Visibility = Visibility.STANDARD
    goal_ids: GoalIds = Field(
        default_factory=list, description="Goals of the case's plan the note is about."
    )


class NoteUpdate(BaseModel):
    """A draft's changes: fields present replace the draft's."""

    model_config = ConfigDict(extra="forbid")

    details: NoteDetails | None = None
    text: NoteText | None = None
    occurred_at: PlausibleDatetime | None = None
    visibility: Visibility | None = None
    goal_ids: GoalIds | None = None


class AddendumCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: NoteText = Field(description="The correction or addition, signed on its own.")


class NotePublic(BaseModel):
    id: UUID
    case_id: UUID
    client_id: UUID
    kind: NoteKind
    details: NoteDetails
    text: str
    visibility: Visibility
    goal_ids: list[UUID]
    occurred_at: datetime
    status: NoteStatus
    addendum_to: UUID | None = Field(description="The signed note this addendum corrects.")
    author_id: str
    created_at: datetime
    updated_at: datetime
    row_version: int = Field(description="Increases with every change; the ETag carries it.")
    signed_by: str | None
    signed_at: datetime | None
    needs_cosignature: bool = Field(description="A supervisor of the case's team must co-sign.")
    cosigned_by: str | None
    cosigned_at: datetime | None


def notes_table(metadata: MetaData) -> Table:
    return Table(
        "notes",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("kind", Text, nullable=False),
        Column("details", JSONB, nullable=False),
        Column("text", Text, nullable=False),
        Column("visibility", Text, nullable=False),
        Column("goal_ids", ARRAY(PgUUID(as_uuid=True)), nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("status", Text, nullable=False),
        Column("addendum_to", PgUUID(as_uuid=True)),
        Column("author_id", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("row_version", Integer, nullable=False),
        Column("signed_by", Text),
        Column("signed_at", DateTime(timezone=True)),
        Column("needs_cosignature", Boolean, nullable=False),
        Column("cosigned_by", Text),
        Column("cosigned_at", DateTime(timezone=True)),
        CheckConstraint(f"kind IN ({', '.join(repr(str(k)) for k in NoteKind)})", name="kind"),
        CheckConstraint("status IN ('draft', 'signed')", name="status"),
        CheckConstraint("visibility IN ('standard', 'restricted')", name="visibility"),
        # A signed note names who signed and when; a draft neither.
        CheckConstraint(
            "(status = 'signed') = (signed_by IS NOT NULL AND signed_at IS NOT NULL)",
            name="signed",
        ),
        Index("ix_notes_case_id_created_at_id", "case_id", "created_at", "id"),
        Index("ix_notes_addendum_to", "addendum_to"),
        Index(
            "ix_notes_drafts",
            "created_at",
            postgresql_where=text("status = 'draft'"),
        ),
        Index(
            "ix_notes_awaiting_cosignature",
            "signed_at",
            postgresql_where=text("needs_cosignature AND cosigned_at IS NULL"),
        ),
    )
