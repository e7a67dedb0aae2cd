"""Assessment drafts: the table and the API models."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Column, DateTime, Index, Integer, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from services.intake import tables
from services.intake.assessments.models import OptionValue, QuestionId


def assessment_drafts_table(metadata: MetaData) -> Table:
    """An assessment being filled in; it becomes an assessment (same id) when completed."""
    return Table(
        "assessment_drafts",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("instrument_id", Text, nullable=False),
        Column("instrument_version", Text, nullable=False),
        Column("answers", JSONB, nullable=False),
        Column("version", Integer, nullable=False),
        Column("created_by", Text, nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_by", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Index("ix_assessment_drafts_client_id", "client_id"),
    )


assessment_drafts_table(tables.metadata)


class DraftCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instrument_id: str = Field(max_length=63, examples=["needs-risk-screening"])
    version: str = Field(max_length=20, examples=["1.0"])
    answers: dict[QuestionId, OptionValue] = Field(
        default_factory=dict,
        max_length=200,
        description="The answers given so far: question id -> option value. A crisis answer "
        "raises its flag at once.",
        examples=[{"safe_place_tonight": "no"}],
    )


class DraftUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    answers: dict[QuestionId, OptionValue | None] = Field(
        max_length=200,
        description="Answers to add or change; `null` takes an answer back. A new crisis "
        "answer raises its flag at once.",
        examples=[{"living_situation": "worried"}],
    )


class DraftPublic(BaseModel):
    id: UUID = Field(description="Also the id of the assessment it becomes.")
    client_id: UUID
    instrument_id: str
    instrument_version: str
    answers: dict[str, str]
    unanswered: list[str] = Field(description="Required questions still without an answer.")
    raised_flag_ids: list[UUID] = Field(description="Crisis flags its answers raised already.")
    version: int = Field(description="Increases with every change; the ETag carries it.")
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime
