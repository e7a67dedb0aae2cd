"""A case's timeline: what happened to it, in order. Kinds, times, ids and codes only: never a
name, a note's text or another service's personal data."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field
from sqlalchemy import Column, DateTime, Index, MetaData, Table, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID


class TimelineEntry(BaseModel):
    id: UUID
    case_id: UUID
    occurred_at: datetime
    kind: str = Field(examples=["case.opened", "client.assessed", "crisis"])
    subject_type: str | None = Field(description="What the entry is about, e.g. `review`.")
    subject_id: UUID | None
    codes: dict[str, str] = Field(
        description='Codes and levels only, e.g. `{"risk_level": "high"}`.'
    )
    source: str = Field(description="`planning`, or the service whose event it records.")


def case_timeline_table(metadata: MetaData) -> Table:
    return Table(
        "case_timeline",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("occurred_at", DateTime(timezone=True), nullable=False),
        Column("kind", Text, nullable=False),
        Column("subject_type", Text),
        Column("subject_id", PgUUID(as_uuid=True)),
        Column("codes", JSONB, nullable=False, server_default=text("'{}'::jsonb")),
        Column("source", Text, nullable=False),
        Column("event_id", PgUUID(as_uuid=True), unique=True, comment="dedupe of event entries"),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
        Index("ix_case_timeline_case_id_occurred_at_id", "case_id", "occurred_at", "id"),
    )
