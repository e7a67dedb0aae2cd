"""The directory's tables: the HSDS 3.1 tables (from `hsds_tables.TABLES`) and Casework's own
(need categories, eligibility rules, capacity status).

Each HSDS table keeps the specification's fields as columns, its ids as text, and one column of
Casework's own: `changed_at`, when Casework last wrote the row (an import that changes nothing
leaves it alone). Two HSDS tables carry a Casework setting: `organization.casework_organization_id`
(the Casework tenant whose partner staff maintain the organisation's records and receive its
referrals; NULL: outside the network) and `service.referral_acceptance_days` (how long a referral
to the service may wait to be accepted; NULL: the setting's default).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    Table,
    Text,
    text,
)
from sqlalchemy.types import TypeEngine

from services.referrals.directory.hsds_tables import TABLES, FieldType, HsdsTable


class CapacityStatus(StrEnum):
    CAPACITY = "capacity"
    NO_CAPACITY = "no_capacity"
    WAITLIST = "waitlist"
    ADDITIONAL_ASSESSMENT_REQUIRED = "additional_assessment_required"


_COLUMN_TYPES: dict[FieldType, TypeEngine[Any]] = {
    FieldType.TEXT: Text(),
    FieldType.NUMBER: Numeric(),
    FieldType.DATE: Date(),
    FieldType.DATETIME: DateTime(timezone=True),
}

# Columns a search or a join reads besides the primary key and the references.
_INDEXED: dict[str, tuple[str, ...]] = {
    "address": ("postal_code",),
    "service": ("last_modified",),
    "attribute": ("link_id",),
    "taxonomy_term": ("parent_id",),
}


def hsds_table(metadata: MetaData, spec: HsdsTable) -> Table:
    columns: list[Column[Any]] = []
    for name, kind in spec.fields.items():
        reference = spec.references.get(name)
        if name == "id":
            columns.append(Column("id", Text, primary_key=True))
        elif reference is not None:
            columns.append(
                Column(
                    name,
                    Text,
                    ForeignKey(f"{reference.table}.id", ondelete="CASCADE"),
                    nullable=not reference.required,
                    index=True,
                )
            )
        else:
            columns.append(Column(name, _COLUMN_TYPES[kind]))
    if spec.name == "organization":
        columns.append(
            Column(
                "casework_organization_id",
                Text,
                index=True,
                comment="the Casework organisation whose partner staff maintain these records "
                "and receive referrals; NULL: outside the network",
            )
        )
    if spec.name == "service":
        columns.append(
            Column(
                "referral_acceptance_days",
                Integer,
                CheckConstraint("referral_acceptance_days > 0", name="acceptance_days_positive"),
                comment="days a referral may wait to be accepted; NULL: the default setting",
            )
        )
    columns.append(
        Column("changed_at", DateTime(timezone=True), nullable=False, server_default=text("now()"))
    )
    indexes = [Index(None, name) for name in _INDEXED.get(spec.name, ())]
    return Table(spec.name, metadata, *columns, *indexes)


def hsds_tables(metadata: MetaData) -> list[Table]:
    return [hsds_table(metadata, spec) for spec in TABLES]


def service_need_categories_table(metadata: MetaData) -> Table:
    """Which of intake's need categories (`shared/events/data_classes.json`) a service meets."""
    return Table(
        "service_need_categories",
        metadata,
        Column("service_id", Text, ForeignKey("service.id", ondelete="CASCADE"), nullable=False),
        Column("need_category", Text, nullable=False),
        PrimaryKeyConstraint("service_id", "need_category"),
        Index(None, "need_category", "service_id"),
    )


def eligibility_rules_table(metadata: MetaData) -> Table:
    """A service's eligibility rules, each a CEL expression over client facts."""
    return Table(
        "eligibility_rules",
        metadata,
        Column("service_id", Text, ForeignKey("service.id", ondelete="CASCADE"), nullable=False),
        Column("rule_id", Text, nullable=False),
        Column("description", Text, nullable=False),
        Column("expression", Text, nullable=False),
        Column(
            "compiled_ok",
            Boolean,
            nullable=False,
            comment="the expression compiled when it was saved (the API saves no other)",
        ),
        Column("position", Integer, nullable=False, server_default=text("0")),
        Column("changed_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
        PrimaryKeyConstraint("service_id", "rule_id"),
    )


def service_capacity_status_table(metadata: MetaData) -> Table:
    """Whether a service can take a client now, and when someone last said so."""
    statuses = ", ".join(f"'{status.value}'" for status in CapacityStatus)
    return Table(
        "service_capacity_status",
        metadata,
        Column(
            "service_id",
            Text,
            ForeignKey("service.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("status", Text, nullable=False),
        Column("last_confirmed_at", DateTime(timezone=True), nullable=False),
        Column("confirmed_by", Text, comment="the subject who confirmed it"),
        CheckConstraint(f"status IN ({statuses})", name="status"),
    )


# What matching keeps in memory (matching.py): a write to any of them moves the directory's
# version (statement-level triggers, migration 0010), which makes each process reload.
MATCHING_TABLES = (
    "organization",
    "service",
    "service_need_categories",
    "eligibility_rules",
    "language",
    "service_area",
    "schedule",
)


def directory_version_table(metadata: MetaData) -> Table:
    """One row: a number moved by every statement writing one of `MATCHING_TABLES`."""
    return Table(
        "directory_version",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("version", BigInteger, nullable=False),
        CheckConstraint("id = 1", name="one_row"),
    )


def directory_tables(metadata: MetaData) -> list[Table]:
    """Every directory table, HSDS's first (Casework's refer to `service`)."""
    return [
        *hsds_tables(metadata),
        service_need_categories_table(metadata),
        eligibility_rules_table(metadata),
        service_capacity_status_table(metadata),
        directory_version_table(metadata),
    ]
