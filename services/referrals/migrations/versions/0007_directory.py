"""The resource directory: the HSDS 3.1 tables, need categories, eligibility rules and
capacity status.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence
from typing import Any

from alembic import op
from sqlalchemy import (
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

from shared.db.metadata import service_metadata

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "referrals"
CASEWORK_TABLES = ("service_capacity_status", "eligibility_rules", "service_need_categories")

# The HSDS 3.1 tables as this migration creates them, in dependency order: each table's
# fields (name -> type) and its references (field -> (table, required)).
HSDS_TABLES_V1: tuple[tuple[str, dict[str, str], dict[str, tuple[str, bool]]], ...] = (
    (
        "organization",
        {
            "id": "text",
            "name": "text",
            "alternate_name": "text",
            "description": "text",
            "email": "text",
            "website": "text",
            "tax_status": "text",
            "tax_id": "text",
            "year_incorporated": "number",
            "legal_status": "text",
            "logo": "text",
            "uri": "text",
            "parent_organization_id": "text",
        },
        {},
    ),
    (
        "program",
        {
            "id": "text",
            "organization_id": "text",
            "name": "text",
            "alternate_name": "text",
            "description": "text",
        },
        {"organization_id": ("organization", True)},
    ),
    (
        "service",
        {
            "id": "text",
            "organization_id": "text",
            "program_id": "text",
            "name": "text",
            "alternate_name": "text",
            "description": "text",
            "url": "text",
            "email": "text",
            "status": "text",
            "interpretation_services": "text",
            "application_process": "text",
            "fees_description": "text",
            "wait_time": "text",
            "fees": "text",
            "accreditations": "text",
            "eligibility_description": "text",
            "minimum_age": "number",
            "maximum_age": "number",
            "assured_date": "date",
            "assurer_email": "text",
            "licenses": "text",
            "alert": "text",
            "last_modified": "datetime",
        },
        {"organization_id": ("organization", True), "program_id": ("program", False)},
    ),
    (
        "location",
        {
            "id": "text",
            "location_type": "text",
            "url": "text",
            "organization_id": "text",
            "name": "text",
            "alternate_name": "text",
            "description": "text",
            "transportation": "text",
            "latitude": "number",
            "longitude": "number",
            "external_identifier": "text",
            "external_identifier_type": "text",
        },
        {"organization_id": ("organization", False)},
    ),
    (
        "service_at_location",
        {"id": "text", "service_id": "text", "location_id": "text", "description": "text"},
        {"service_id": ("service", True), "location_id": ("location", True)},
    ),
    (
        "address",
        {
            "id": "text",
            "location_id": "text",
            "attention": "text",
            "address_1": "text",
            "address_2": "text",
            "city": "text",
            "region": "text",
            "state_province": "text",
            "postal_code": "text",
            "country": "text",
            "address_type": "text",
        },
        {"location_id": ("location", True)},
    ),
    (
        "contact",
        {
            "id": "text",
            "organization_id": "text",
            "service_id": "text",
            "service_at_location_id": "text",
            "location_id": "text",
            "name": "text",
            "title": "text",
            "department": "text",
            "email": "text",
        },
        {
            "organization_id": ("organization", False),
            "service_id": ("service", False),
            "service_at_location_id": ("service_at_location", False),
            "location_id": ("location", False),
        },
    ),
    (
        "phone",
        {
            "id": "text",
            "location_id": "text",
            "service_id": "text",
            "organization_id": "text",
            "contact_id": "text",
            "service_at_location_id": "text",
            "number": "text",
            "extension": "number",
            "type": "text",
            "description": "text",
        },
        {
            "location_id": ("location", False),
            "service_id": ("service", False),
            "organization_id": ("organization", False),
            "contact_id": ("contact", False),
            "service_at_location_id": ("service_at_location", False),
        },
    ),
    (
        "schedule",
        {
            "id": "text",
            "service_id": "text",
            "location_id": "text",
            "service_at_location_id": "text",
            "valid_from": "date",
            "valid_to": "date",
            "dtstart": "date",
            "timezone": "number",
            "until": "date",
            "count": "number",
            "wkst": "text",
            "freq": "text",
            "interval": "number",
            "byday": "text",
            "byweekno": "text",
            "bymonthday": "text",
            "byyearday": "text",
            "description": "text",
            "opens_at": "text",
            "closes_at": "text",
            "schedule_link": "text",
            "attending_type": "text",
            "notes": "text",
        },
        {
            "service_id": ("service", False),
            "location_id": ("location", False),
            "service_at_location_id": ("service_at_location", False),
        },
    ),
    (
        "language",
        {
            "id": "text",
            "service_id": "text",
            "location_id": "text",
            "phone_id": "text",
            "name": "text",
            "code": "text",
            "note": "text",
        },
        {
            "service_id": ("service", False),
            "location_id": ("location", False),
            "phone_id": ("phone", False),
        },
    ),
    (
        "service_area",
        {
            "id": "text",
            "service_id": "text",
            "service_at_location_id": "text",
            "name": "text",
            "description": "text",
            "extent": "text",
            "extent_type": "text",
            "uri": "text",
        },
        {
            "service_id": ("service", False),
            "service_at_location_id": ("service_at_location", False),
        },
    ),
    (
        "required_document",
        {"id": "text", "service_id": "text", "document": "text", "uri": "text"},
        {"service_id": ("service", False)},
    ),
    (
        "cost_option",
        {
            "id": "text",
            "service_id": "text",
            "valid_from": "date",
            "valid_to": "date",
            "option": "text",
            "currency": "text",
            "amount": "number",
            "amount_description": "text",
        },
        {"service_id": ("service", True)},
    ),
    (
        "funding",
        {"id": "text", "organization_id": "text", "service_id": "text", "source": "text"},
        {"organization_id": ("organization", False), "service_id": ("service", False)},
    ),
    (
        "accessibility",
        {
            "id": "text",
            "location_id": "text",
            "description": "text",
            "details": "text",
            "url": "text",
        },
        {"location_id": ("location", False)},
    ),
    (
        "organization_identifier",
        {
            "id": "text",
            "organization_id": "text",
            "identifier_scheme": "text",
            "identifier_type": "text",
            "identifier": "text",
        },
        {"organization_id": ("organization", True)},
    ),
    (
        "url",
        {
            "id": "text",
            "label": "text",
            "url": "text",
            "organization_id": "text",
            "service_id": "text",
        },
        {"organization_id": ("organization", False), "service_id": ("service", False)},
    ),
    (
        "taxonomy",
        {"id": "text", "name": "text", "description": "text", "uri": "text", "version": "text"},
        {},
    ),
    (
        "taxonomy_term",
        {
            "id": "text",
            "code": "text",
            "name": "text",
            "description": "text",
            "parent_id": "text",
            "taxonomy": "text",
            "language": "text",
            "taxonomy_id": "text",
            "term_uri": "text",
        },
        {"taxonomy_id": ("taxonomy", False)},
    ),
    (
        "attribute",
        {
            "id": "text",
            "link_id": "text",
            "taxonomy_term_id": "text",
            "link_type": "text",
            "link_entity": "text",
            "value": "text",
            "label": "text",
        },
        {"taxonomy_term_id": ("taxonomy_term", True)},
    ),
    (
        "unit",
        {"id": "text", "name": "text", "scheme": "text", "identifier": "text", "uri": "text"},
        {},
    ),
    (
        "service_capacity",
        {
            "id": "text",
            "service_id": "text",
            "unit_id": "text",
            "available": "number",
            "maximum": "number",
            "description": "text",
            "updated": "datetime",
        },
        {"service_id": ("service", True), "unit_id": ("unit", True)},
    ),
    (
        "metadata",
        {
            "id": "text",
            "resource_id": "text",
            "resource_type": "text",
            "last_action_date": "date",
            "last_action_type": "text",
            "field_name": "text",
            "previous_value": "text",
            "replacement_value": "text",
            "updated_by": "text",
        },
        {},
    ),
    (
        "meta_table_description",
        {"id": "text", "name": "text", "language": "text", "character_set": "text"},
        {},
    ),
)

_COLUMN_TYPES_V1: dict[str, TypeEngine[Any]] = {
    "text": Text(),
    "number": Numeric(),
    "date": Date(),
    "datetime": DateTime(timezone=True),
}
_INDEXED_V1: dict[str, tuple[str, ...]] = {
    "address": ("postal_code",),
    "service": ("last_modified",),
    "attribute": ("link_id",),
    "taxonomy_term": ("parent_id",),
}


def hsds_table_v1(
    metadata: MetaData,
    name: str,
    fields: dict[str, str],
    references: dict[str, tuple[str, bool]],
) -> Table:
    columns: list[Column[Any]] = []
    for field, kind in fields.items():
        reference = references.get(field)
        if field == "id":
            columns.append(Column("id", Text, primary_key=True))
        elif reference is not None:
            referenced, required = reference
            columns.append(
                Column(
                    field,
                    Text,
                    ForeignKey(f"{referenced}.id", ondelete="CASCADE"),
                    nullable=not required,
                    index=True,
                )
            )
        else:
            columns.append(Column(field, _COLUMN_TYPES_V1[kind]))
    if name == "organization":
        columns.append(
            Column(
                "casework_organization_id",
                Text,
                index=True,
                comment="the Casework organisation whose partner staff maintain these records "
                "and receive referrals; NULL: outside the network",
            )
        )
    if name == "service":
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
    indexes = [Index(None, column) for column in _INDEXED_V1.get(name, ())]
    return Table(name, metadata, *columns, *indexes)


def service_need_categories_table_v1(metadata: MetaData) -> Table:
    return Table(
        "service_need_categories",
        metadata,
        Column("service_id", Text, ForeignKey("service.id", ondelete="CASCADE"), nullable=False),
        Column("need_category", Text, nullable=False),
        PrimaryKeyConstraint("service_id", "need_category"),
        Index(None, "need_category", "service_id"),
    )


def eligibility_rules_table_v1(metadata: MetaData) -> Table:
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


def service_capacity_status_table_v1(metadata: MetaData) -> Table:
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
        CheckConstraint(
            "status IN ('capacity', 'no_capacity', 'waitlist', 'additional_assessment_required')",
            name="status",
        ),
    )


def upgrade() -> None:
    metadata = service_metadata(SCHEMA)
    for name, fields, references in HSDS_TABLES_V1:
        hsds_table_v1(metadata, name, fields, references)
    service_need_categories_table_v1(metadata)
    eligibility_rules_table_v1(metadata)
    service_capacity_status_table_v1(metadata)
    metadata.create_all(op.get_bind())


def downgrade() -> None:
    hsds_names = [name for name, _fields, _references in reversed(HSDS_TABLES_V1)]
    for name in (*CASEWORK_TABLES, *hsds_names):
        op.drop_table(name, schema=SCHEMA)
