"""Case assignment: who a client's case belongs to."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Column, DateTime, Index, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.text import FreeText

UserId = Annotated[str, FreeText(max_length=200)]


class AssignmentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    worker_id: UserId


class AssignmentPublic(BaseModel):
    client_id: UUID
    worker_id: str
    team_id: str | None
    assigned_by: str
    assigned_at: datetime


def case_assignments_table(metadata: MetaData) -> Table:
    """Every assignment ever made: the current one is the latest."""
    return Table(
        "case_assignments",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("worker_id", Text, nullable=False),
        Column("team_id", Text),
        Column("assigned_by", Text, nullable=False),
        Column("assigned_at", DateTime(timezone=True), nullable=False),
        Index("ix_case_assignments_client_id_assigned_at", "client_id", "assigned_at"),
    )
