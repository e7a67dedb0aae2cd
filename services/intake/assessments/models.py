"""Assessments, risk overrides and flags: the tables and the API models."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
)
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    SmallInteger,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from services.intake import tables
from services.intake.assessments.scoring import Contribution
from shared.dates import EARLIEST_YEAR, LATEST_YEAR, PlausibleDatetime
from shared.events.assessment import FlagSeverity, FlagType, Need, RiskLevel
from shared.text import FreeText, Note


def _one_of(column: str, values: Iterable[str]) -> str:
    return f"{column} IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def assessments_table(metadata: MetaData) -> Table:
    """One row per assessment: the answers, the computed result and the level in force."""
    return Table(
        "assessments",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("instrument_id", Text, nullable=False),
        Column("instrument_version", Text, nullable=False),
        Column("answers", JSONB, nullable=False, comment="question id -> option value"),
        Column("needs", JSONB, nullable=False),
        Column("explanation", JSONB, nullable=False, comment="every answer that counted"),
        Column("total_points", SmallInteger, nullable=False),
        Column("crisis", Boolean, nullable=False),
        Column("computed_risk_level", Text, nullable=False),
        Column("computed_priority", SmallInteger, nullable=False),
        Column("risk_level", Text, nullable=False, comment="in force: the latest override's"),
        Column("priority", SmallInteger, nullable=False),
        Column("assessed_by", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        CheckConstraint(_one_of("computed_risk_level", RiskLevel), name="computed_risk_level"),
        CheckConstraint(_one_of("risk_level", RiskLevel), name="risk_level"),
        Index("ix_assessments_client_id_created_at", "client_id", "created_at"),
        Index("ix_assessments_instrument_id_client_id", "instrument_id", "client_id"),
    )


def assessment_overrides_table(metadata: MetaData) -> Table:
    """Every risk override, append-only: the reason stays beside the computed level."""
    return Table(
        "assessment_overrides",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column(
            "assessment_id",
            PgUUID(as_uuid=True),
            ForeignKey("assessments.id"),
            nullable=False,
        ),
        Column("risk_level", Text, nullable=False),
        Column("reason", Text, nullable=False),
        Column("overridden_by", Text, nullable=False),
        Column("overridden_at", DateTime(timezone=True), nullable=False),
        CheckConstraint(_one_of("risk_level", RiskLevel), name="risk_level"),
        Index("ix_assessment_overrides_assessment_id", "assessment_id"),
    )


def flags_table(metadata: MetaData) -> Table:
    return Table(
        "flags",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("flag_type", Text, nullable=False),
        Column("severity", Text, nullable=False),
        Column("source", Text, nullable=False),
        Column("assessment_id", PgUUID(as_uuid=True), ForeignKey("assessments.id")),
        Column("note", Text),
        Column("raised_by", Text, nullable=False),
        Column("raised_at", DateTime(timezone=True), nullable=False),
        Column("expires_at", DateTime(timezone=True)),
        Column("acknowledged_by", Text),
        Column("acknowledged_at", DateTime(timezone=True)),
        Column("resolved_by", Text),
        Column("resolved_at", DateTime(timezone=True)),
        Column("resolution_note", Text),
        CheckConstraint(_one_of("flag_type", FlagType), name="flag_type"),
        CheckConstraint(_one_of("severity", FlagSeverity), name="severity"),
        CheckConstraint(_one_of("source", ["assessment", "manual"]), name="source"),
        Index("ix_flags_client_id_raised_at", "client_id", "raised_at"),
        Index("ix_flags_assessment_id", "assessment_id"),
    )


def flags_table_v2(metadata: MetaData) -> Table:
    """Migration 0008: a flag raised by an assessment draft names it until it completes.
    (`flags_table` stays as migration 0005 created it.)"""
    table = flags_table(metadata)
    table.append_column(
        Column("draft_id", PgUUID(as_uuid=True), comment="raised by this draft before completion")
    )
    Index("ix_flags_draft_id", table.c.draft_id)
    return table


# Declared in intake's metadata: what the migration-drift test compares the migrations with.
for _declare in (assessments_table, assessment_overrides_table, flags_table_v2):
    _declare(tables.metadata)


# --- API models -------------------------------------------------------------------------------

QuestionId = Annotated[str, FreeText(max_length=63)]
OptionValue = Annotated[str, FreeText(max_length=63)]
Reason = Annotated[str, FreeText(min_length=10, max_length=500, multiline=True)]


def _in_the_future(value: datetime) -> datetime:
    if value <= datetime.now(UTC):
        raise ValueError("must be in the future")
    return value


class AssessmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instrument_id: Annotated[str, FreeText(max_length=63)] = Field(
        examples=["needs-risk-screening"]
    )
    version: Annotated[str, FreeText(max_length=20)] = Field(examples=["1.0"])
    answers: dict[QuestionId, OptionValue] = Field(
        max_length=200,
        description="Question id -> the value of the chosen option (see the instrument).",
        examples=[{"living_situation": "worried", "safe_place_tonight": "yes"}],
    )


class OverrideCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    risk_level: RiskLevel
    reason: Reason = Field(description="Why the computed level does not fit; kept beside it.")


class OverridePublic(BaseModel):
    risk_level: RiskLevel
    reason: str
    overridden_by: str
    overridden_at: datetime


class AssessmentPublic(BaseModel):
    id: UUID
    client_id: UUID
    instrument_id: str
    instrument_version: str
    answers: dict[str, str]
    needs: list[Need]
    explanation: list[Contribution] = Field(description="Every answer that counted, and how.")
    total_points: int
    crisis: bool
    computed_risk_level: RiskLevel = Field(description="What the instrument's rules gave.")
    computed_priority: int
    risk_level: RiskLevel = Field(description="In force: the latest override's, else computed.")
    priority: int
    risk_overridden: bool
    overrides: list[OverridePublic] = Field(description="Oldest first.")
    raised_flag_ids: list[UUID] = Field(description="Crisis flags this assessment raised.")
    assessed_by: str
    created_at: datetime


class FlagCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    flag_type: FlagType
    severity: FlagSeverity
    expires_at: Annotated[PlausibleDatetime, AfterValidator(_in_the_future)] | None = Field(
        default=None,
        description="When the flag stops being active; with a time zone; years "
        f"{EARLIEST_YEAR} to {LATEST_YEAR}.",
    )
    note: Note | None = Field(default=None, description="For workers only; never in events.")


class ResolutionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: Note = Field(description="How it was resolved.")


FlagStatus = Literal["active", "expired", "resolved"]


class FlagPublic(BaseModel):
    id: UUID
    client_id: UUID
    flag_type: FlagType
    severity: FlagSeverity
    source: Literal["assessment", "manual"]
    assessment_id: UUID | None
    note: str | None
    raised_by: str
    raised_at: datetime
    expires_at: datetime | None
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    resolution_note: str | None
    status: FlagStatus = Field(description="`resolved`, else `expired` after expires_at.")
