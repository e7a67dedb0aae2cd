"""Identity links: the tables and the API models.

A link says two client records belong to the same person. Records are never merged: each keeps
its id, data and access facts, and a link can be undone. Links are kept forever (an undone link
has `unlinked_at`), and every manual unlink leaves a split marker for the pair, which automatic
linking must respect.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from services.intake.tables import metadata


class LinkReason(StrEnum):
    """Why two records were linked."""

    SAME_PERSON_CONFIRMED = "same_person_confirmed"
    DUPLICATE_REGISTRATION = "duplicate_registration"


class UnlinkReason(StrEnum):
    """Why a link was undone."""

    WRONG_PERSON = "wrong_person"
    ENTERED_IN_ERROR = "entered_in_error"


def identity_links_table(target: MetaData) -> Table:
    """Every link ever made; the current ones have no `unlinked_at`."""
    return Table(
        "identity_links",
        target,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), ForeignKey("intake.clients.id"), nullable=False),
        Column(
            "linked_client_id",
            PgUUID(as_uuid=True),
            ForeignKey("intake.clients.id"),
            nullable=False,
        ),
        Column("reason", Text, nullable=False),
        Column("split_overridden", Boolean, nullable=False, server_default=text("false")),
        Column("linked_by", Text, nullable=False),
        Column("linked_at", DateTime(timezone=True), nullable=False),
        Column("unlinked_at", DateTime(timezone=True)),
        Column("unlinked_by", Text),
        Column("unlink_reason", Text),
        CheckConstraint("client_id <> linked_client_id", name="not_self"),
        Index("ix_identity_links_client_id", "client_id"),
        Index("ix_identity_links_linked_client_id", "linked_client_id"),
    )


def identity_link_splits_table(target: MetaData) -> Table:
    """Pairs a person said are not the same: never linked again without an explicit override."""
    return Table(
        "identity_link_splits",
        target,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column(
            "link_id", PgUUID(as_uuid=True), ForeignKey("intake.identity_links.id"), nullable=False
        ),
        Column("client_id", PgUUID(as_uuid=True), ForeignKey("intake.clients.id"), nullable=False),
        Column(
            "linked_client_id",
            PgUUID(as_uuid=True),
            ForeignKey("intake.clients.id"),
            nullable=False,
        ),
        Column("reason", Text, nullable=False),
        Column("split_by", Text, nullable=False),
        Column("split_at", DateTime(timezone=True), nullable=False),
        Index("ix_identity_link_splits_client_id", "client_id"),
        Index("ix_identity_link_splits_linked_client_id", "linked_client_id"),
    )


identity_links_table(metadata)
identity_link_splits_table(metadata)


class LinkCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    other_client_id: UUID = Field(description="The other record of the same person.")
    reason: LinkReason = Field(description="Why the two records are the same person.")
    override_split: bool = Field(
        default=False,
        description="Link even though someone split these records (or their groups) before; "
        "without it such a link is refused with 409.",
    )


class UnlinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: UnlinkReason = Field(description="Why the link is undone.")


class LinkPublic(BaseModel):
    """One link, current or undone."""

    id: UUID
    client_id: UUID = Field(description="The record the link was made on.")
    linked_client_id: UUID = Field(description="The record it was linked to.")
    reason: LinkReason
    split_overridden: bool = Field(description="True when the link overrode an earlier split.")
    linked_by: str = Field(description="User id of who linked them.")
    linked_at: datetime
    unlinked_at: datetime | None = None
    unlinked_by: str | None = Field(default=None, description="User id of who undid the link.")
    unlink_reason: UnlinkReason | None = None


class LinkCreated(LinkPublic):
    canonical_client_id: UUID = Field(
        description="The canonical record of the group the link formed: its oldest registration."
    )


class SplitPublic(BaseModel):
    """A manual split: these two records are not to be linked again automatically."""

    id: UUID
    link_id: UUID = Field(description="The link whose undoing recorded the split.")
    client_id: UUID
    linked_client_id: UUID
    reason: UnlinkReason
    split_by: str
    split_at: datetime


class Unlinked(BaseModel):
    link: LinkPublic = Field(description="The link, now undone.")
    split: SplitPublic = Field(description="The split marker recorded for the pair.")
    canonical_client_id: UUID = Field(
        description="The canonical record of the path's client after the unlink."
    )
    other_canonical_client_id: UUID = Field(
        description="The canonical record of the other client after the unlink."
    )


class ClientLinks(BaseModel):
    """A client's identity group, its links and their history. Ids only: reading a linked
    record needs access to that record."""

    client_id: UUID
    canonical_client_id: UUID = Field(
        description="The group's oldest registration; the client itself when it has no links."
    )
    group: list[UUID] = Field(
        description="Every record of the group, the client included, oldest first."
    )
    links: list[LinkPublic] = Field(description="The group's current links.")
    history: list[LinkPublic] = Field(
        description="Undone links this client was part of, newest first."
    )
    splits: list[SplitPublic] = Field(
        description="Manual splits this client was part of, newest first."
    )
