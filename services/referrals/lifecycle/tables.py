"""The referral tables: one row per referral, and every status change it went through.

What a referral shares (`data_classes`) is kept here and never in events: naming a protected
class would reveal that such data exists. The checks hold the rules the API enforces first,
whatever writes; they are literal SQL, so changing one needs a migration of its own.
"""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import UUID as PgUUID


def referrals_table(metadata: MetaData) -> Table:
    return Table(
        "referrals",
        metadata,
        Column("id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("sending_organization_id", Text, nullable=False),
        Column("sent_by", Text, nullable=False, comment="user id of the worker who referred"),
        Column("service_id", Text, nullable=False, comment="the HSDS service in the directory"),
        Column(
            "receiving_organization_id",
            Text,
            comment="the Casework organisation receiving it; NULL: outside the network",
        ),
        Column("mode", Text, nullable=False),
        Column("status", Text, nullable=False),
        Column("reason_code", Text, comment="the reason of the latest status change"),
        Column(
            "data_classes",
            ARRAY(Text),
            nullable=False,
            server_default=text("'{}'::text[]"),
            comment="the classes of the client's data shared with the receiving organisation",
        ),
        Column("consent_id", PgUUID(as_uuid=True), comment="the consent the sharing relies on"),
        Column("note", Text, comment="the sending worker's note; shown to the sending side only"),
        Column("outcome", Text),
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        Column("requested_at", DateTime(timezone=True), comment="when it was first requested"),
        Column("expires_at", DateTime(timezone=True), comment="expires unless accepted by then"),
        Column("closed_at", DateTime(timezone=True)),
        Column("follow_up_due_at", DateTime(timezone=True)),
        Column("version", Integer, nullable=False, server_default=text("1")),
        CheckConstraint("mode IN ('sent', 'logged')", name="mode"),
        CheckConstraint(
            "mode = 'sent' OR (receiving_organization_id IS NULL AND consent_id IS NULL "
            "AND cardinality(data_classes) = 0)",
            name="logged_shares_nothing",
        ),
        CheckConstraint(
            "mode = 'logged' OR (receiving_organization_id IS NOT NULL "
            "AND cardinality(data_classes) > 0)",
            name="sent_is_addressed",
        ),
        Index("ix_referrals_client_id_created_at_id", "client_id", "created_at", "id"),
        Index(
            "ix_referrals_receiving_organization_id_created_at_id",
            "receiving_organization_id",
            "created_at",
            "id",
        ),
        Index(
            "ix_referrals_sending_organization_id_created_at_id",
            "sending_organization_id",
            "created_at",
            "id",
        ),
        Index("ix_referrals_consent_id", "consent_id"),
    )


def referral_history_table(metadata: MetaData) -> Table:
    """Every status a referral took, with who set it: append-only."""
    return Table(
        "referral_history",
        metadata,
        Column("seq", BigInteger, Identity(always=True), primary_key=True),
        Column("referral_id", PgUUID(as_uuid=True), ForeignKey("referrals.id"), nullable=False),
        Column("from_status", Text, comment="NULL: the status it was made in"),
        Column("to_status", Text, nullable=False),
        Column("reason_code", Text),
        Column("outcome", Text),
        Column("set_by_side", Text, nullable=False),
        Column("set_by_organization_id", Text, comment="NULL: set by the system"),
        Column("set_by_user", Text, comment="NULL: set by the system"),
        Column("via", Text, nullable=False, comment="api, fhir, expiry or consent"),
        Column("at", DateTime(timezone=True), nullable=False),
        CheckConstraint("set_by_side IN ('sending', 'receiving', 'system')", name="side"),
        Index("ix_referral_history_referral_id_seq", "referral_id", "seq"),
    )
