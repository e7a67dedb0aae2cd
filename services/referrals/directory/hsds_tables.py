"""The HSDS 3.1 tables as data: each table's fields and their types, in the specification's
tabular form (one row per record, a parent's id in each child row).

One description drives the database tables (`tables.py`), the import (which maps a record's
fields onto columns) and the export (which maps columns back to fields), so the three cannot
disagree. Ids are text: HSDS ids are strings (uuid-formatted in 3.x, but not enforced here:
directories imported from older systems keep their ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FieldType(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    DATETIME = "datetime"


@dataclass(frozen=True)
class Reference:
    """A column naming a row of another table (`ON DELETE CASCADE`: a child goes with it)."""

    table: str
    required: bool = False


@dataclass(frozen=True)
class HsdsTable:
    name: str
    # The table's file in the tabular data package (the schema's `path`).
    path: str
    fields: dict[str, FieldType]
    references: dict[str, Reference]


T, N, D, DT = FieldType.TEXT, FieldType.NUMBER, FieldType.DATE, FieldType.DATETIME


def _table(
    name: str,
    path: str,
    fields: dict[str, FieldType],
    references: dict[str, Reference] | None = None,
) -> HsdsTable:
    return HsdsTable(name=name, path=path, fields={"id": T, **fields}, references=references or {})


# In dependency order: a table comes after every table it references.
TABLES: tuple[HsdsTable, ...] = (
    _table(
        "organization",
        "organizations.csv",
        {
            "name": T,
            "alternate_name": T,
            "description": T,
            "email": T,
            "website": T,
            "tax_status": T,
            "tax_id": T,
            "year_incorporated": N,
            "legal_status": T,
            "logo": T,
            "uri": T,
            "parent_organization_id": T,
        },
    ),
    _table(
        "program",
        "programs.csv",
        {"organization_id": T, "name": T, "alternate_name": T, "description": T},
        {"organization_id": Reference("organization", required=True)},
    ),
    _table(
        "service",
        "services.csv",
        {
            "organization_id": T,
            "program_id": T,
            "name": T,
            "alternate_name": T,
            "description": T,
            "url": T,
            "email": T,
            "status": T,
            "interpretation_services": T,
            "application_process": T,
            "fees_description": T,
            "wait_time": T,
            "fees": T,
            "accreditations": T,
            "eligibility_description": T,
            "minimum_age": N,
            "maximum_age": N,
            "assured_date": D,
            "assurer_email": T,
            "licenses": T,
            "alert": T,
            "last_modified": DT,
        },
        {
            "organization_id": Reference("organization", required=True),
            "program_id": Reference("program"),
        },
    ),
    _table(
        "location",
        "locations.csv",
        {
            "location_type": T,
            "url": T,
            "organization_id": T,
            "name": T,
            "alternate_name": T,
            "description": T,
            "transportation": T,
            "latitude": N,
            "longitude": N,
            "external_identifier": T,
            "external_identifier_type": T,
        },
        {"organization_id": Reference("organization")},
    ),
    _table(
        "service_at_location",
        "service_at_location.csv",
        {"service_id": T, "location_id": T, "description": T},
        {
            "service_id": Reference("service", required=True),
            "location_id": Reference("location", required=True),
        },
    ),
    _table(
        "address",
        "addresses.csv",
        {
            "location_id": T,
            "attention": T,
            "address_1": T,
            "address_2": T,
            "city": T,
            "region": T,
            "state_province": T,
            "postal_code": T,
            "country": T,
            "address_type": T,
        },
        {"location_id": Reference("location", required=True)},
    ),
    _table(
        "contact",
        "contacts.csv",
        {
            "organization_id": T,
            "service_id": T,
            "service_at_location_id": T,
            "location_id": T,
            "name": T,
            "title": T,
            "department": T,
            "email": T,
        },
        {
            "organization_id": Reference("organization"),
            "service_id": Reference("service"),
            "service_at_location_id": Reference("service_at_location"),
            "location_id": Reference("location"),
        },
    ),
    _table(
        "phone",
        "phones.csv",
        {
            "location_id": T,
            "service_id": T,
            "organization_id": T,
            "contact_id": T,
            "service_at_location_id": T,
            "number": T,
            "extension": N,
            "type": T,
            "description": T,
        },
        {
            "location_id": Reference("location"),
            "service_id": Reference("service"),
            "organization_id": Reference("organization"),
            "contact_id": Reference("contact"),
            "service_at_location_id": Reference("service_at_location"),
        },
    ),
    _table(
        "schedule",
        "schedules.csv",
        {
            "service_id": T,
            "location_id": T,
            "service_at_location_id": T,
            "valid_from": D,
            "valid_to": D,
            "dtstart": D,
            "timezone": N,
            "until": D,
            "count": N,
            "wkst": T,
            "freq": T,
            "interval": N,
            "byday": T,
            "byweekno": T,
            "bymonthday": T,
            "byyearday": T,
            "description": T,
            "opens_at": T,
            "closes_at": T,
            "schedule_link": T,
            "attending_type": T,
            "notes": T,
        },
        {
            "service_id": Reference("service"),
            "location_id": Reference("location"),
            "service_at_location_id": Reference("service_at_location"),
        },
    ),
    _table(
        "language",
        "languages.csv",
        {"service_id": T, "location_id": T, "phone_id": T, "name": T, "code": T, "note": T},
        {
            "service_id": Reference("service"),
            "location_id": Reference("location"),
            "phone_id": Reference("phone"),
        },
    ),
    _table(
        "service_area",
        "service_areas.csv",
        {
            "service_id": T,
            "service_at_location_id": T,
            "name": T,
            "description": T,
            "extent": T,
            "extent_type": T,
            "uri": T,
        },
        {
            "service_id": Reference("service"),
            "service_at_location_id": Reference("service_at_location"),
        },
    ),
    _table(
        "required_document",
        "required_documents.csv",
        {"service_id": T, "document": T, "uri": T},
        {"service_id": Reference("service")},
    ),
    _table(
        "cost_option",
        "cost_options.csv",
        {
            "service_id": T,
            "valid_from": D,
            "valid_to": D,
            "option": T,
            "currency": T,
            "amount": N,
            "amount_description": T,
        },
        {"service_id": Reference("service", required=True)},
    ),
    _table(
        "funding",
        "funding.csv",
        {"organization_id": T, "service_id": T, "source": T},
        {"organization_id": Reference("organization"), "service_id": Reference("service")},
    ),
    _table(
        "accessibility",
        "accessibility.csv",
        {"location_id": T, "description": T, "details": T, "url": T},
        {"location_id": Reference("location")},
    ),
    _table(
        "organization_identifier",
        "organization_identifiers.csv",
        {"organization_id": T, "identifier_scheme": T, "identifier_type": T, "identifier": T},
        {"organization_id": Reference("organization", required=True)},
    ),
    _table(
        "url",
        "url.csv",
        {"label": T, "url": T, "organization_id": T, "service_id": T},
        {"organization_id": Reference("organization"), "service_id": Reference("service")},
    ),
    _table("taxonomy", "taxonomies.csv", {"name": T, "description": T, "uri": T, "version": T}),
    _table(
        "taxonomy_term",
        "taxonomy_terms.csv",
        {
            "code": T,
            "name": T,
            "description": T,
            "parent_id": T,
            "taxonomy": T,
            "language": T,
            "taxonomy_id": T,
            "term_uri": T,
        },
        {"taxonomy_id": Reference("taxonomy")},
    ),
    _table(
        "attribute",
        "attributes.csv",
        {
            "link_id": T,
            "taxonomy_term_id": T,
            "link_type": T,
            "link_entity": T,
            "value": T,
            "label": T,
        },
        {"taxonomy_term_id": Reference("taxonomy_term", required=True)},
    ),
    _table("unit", "units.csv", {"name": T, "scheme": T, "identifier": T, "uri": T}),
    _table(
        "service_capacity",
        "service_capacity.csv",
        {
            "service_id": T,
            "unit_id": T,
            "available": N,
            "maximum": N,
            "description": T,
            "updated": DT,
        },
        {
            "service_id": Reference("service", required=True),
            "unit_id": Reference("unit", required=True),
        },
    ),
    _table(
        "metadata",
        "metadata.csv",
        {
            "resource_id": T,
            "resource_type": T,
            "last_action_date": D,
            "last_action_type": T,
            "field_name": T,
            "previous_value": T,
            "replacement_value": T,
            "updated_by": T,
        },
    ),
    _table(
        "meta_table_description",
        "meta_table_descriptions.csv",
        {"name": T, "language": T, "character_set": T},
    ),
)

BY_NAME: dict[str, HsdsTable] = {table.name: table for table in TABLES}
