"""What notifications knows to find recipients, kept from events (ids and codes only):
the staff directory (planning's WorkerUpdated), cases (CaseOpened, CaseAssigned, CaseClosed),
referrals it has seen (who made them, between which organisations), reviews and crisis flags
it is timing, and each organisation's on-call list (managed here by its admins)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import UUID as PgUUID


def staff_table(metadata: MetaData) -> Table:
    return Table(
        "staff",
        metadata,
        Column("organization_id", Text, nullable=False),
        Column("worker_id", Text, nullable=False),
        Column("team_id", Text),
        Column("role", Text, nullable=False),
        Column("active", Boolean, nullable=False),
        Column("languages", ARRAY(Text), nullable=False),
        Column("version", BigInteger, nullable=False),
        PrimaryKeyConstraint("organization_id", "worker_id"),
        Index("ix_staff_organization_id_team_id", "organization_id", "team_id"),
    )


def cases_table(metadata: MetaData) -> Table:
    return Table(
        "cases",
        metadata,
        Column("case_id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False, index=True),
        Column("organization_id", Text, nullable=False),
        Column("team_id", Text),
        Column("worker_id", Text),
        Column("status", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )


def referral_refs_table(metadata: MetaData) -> Table:
    return Table(
        "referral_refs",
        metadata,
        Column("referral_id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("sending_organization_id", Text, nullable=False),
        Column("receiving_organization_id", Text),
        Column("made_by", Text, nullable=False),
    )


def reviews_table(metadata: MetaData) -> Table:
    return Table(
        "reviews",
        metadata,
        Column("review_id", PgUUID(as_uuid=True), primary_key=True),
        Column("case_id", PgUUID(as_uuid=True), nullable=False),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("organization_id", Text, nullable=False),
        Column("team_id", Text),
        Column("worker_id", Text),
        Column("due_at", DateTime(timezone=True), nullable=False),
        Column("completed_at", DateTime(timezone=True)),
    )


def crisis_flags_table(metadata: MetaData) -> Table:
    return Table(
        "crisis_flags",
        metadata,
        Column("flag_id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("raised_at", DateTime(timezone=True), nullable=False),
        Column("acknowledged_at", DateTime(timezone=True)),
        Column("acknowledged_by", Text),
        # The raising event's data and time; pending: raised before notifications knew the
        # client's organisation (events of two topics are not ordered), and notified when the
        # client's facts arrive.
        Column("event_data", JSONB, nullable=False),
        Column("event_time", DateTime(timezone=True), nullable=False),
        Column("pending", Boolean, nullable=False),
        Column("source_event_id", Text, nullable=False),
    )


def on_call_table(metadata: MetaData) -> Table:
    return Table(
        "on_call",
        metadata,
        Column("organization_id", Text, nullable=False),
        Column("position", Integer, nullable=False),
        Column("user_id", Text, nullable=False),
        PrimaryKeyConstraint("organization_id", "position"),
    )


def on_call_versions_table(metadata: MetaData) -> Table:
    return Table(
        "on_call_versions",
        metadata,
        Column("organization_id", Text, primary_key=True),
        Column("version", Integer, nullable=False),
        Column("updated_by", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )


DIRECTORY_TABLES = (
    staff_table,
    cases_table,
    referral_refs_table,
    reviews_table,
    crisis_flags_table,
    on_call_table,
    on_call_versions_table,
)


def add_directory_tables(metadata: MetaData) -> None:
    for factory in DIRECTORY_TABLES:
        factory(metadata)


# A user id as identity providers issue them (the token's `sub`).
UserId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._@|:+-]{1,200}$")]


class OnCallUpdate(BaseModel):
    user_ids: list[UserId] = Field(
        max_length=50,
        description="Who is on call, in the order they are told (user ids, the tokens' `sub`).",
    )


class OnCallPublic(BaseModel):
    organization_id: str
    user_ids: list[str]
    version: int
