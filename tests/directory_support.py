"""Directory fixtures built from the HSDS 3.1 specification's objects, and the people who
manage the directory in the tests."""

from __future__ import annotations

import csv
import io
import json
import uuid
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.settings import Settings
from tests.support import Stack, User, bearer, running_stack

OPERATOR_ORG = "org-directory"
OPERATOR = User("olga", ("admin",), OPERATOR_ORG, None)
FOOD_BANK_ORG = "org-food-bank"
FOOD_PARTNER = User("pia", ("partner",), FOOD_BANK_ORG, None)
OTHER_ADMIN = User("otto", ("admin",), "org-elsewhere", None)


def new_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture(scope="module")
def directory_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"directory_operator_organization_id": OPERATOR_ORG})


@pytest.fixture(scope="module")
async def directory_stack(directory_settings: Settings) -> AsyncIterator[Stack]:
    async with running_stack(directory_settings) as stack:
        yield stack


def as_user(settings: Settings, user: User) -> dict[str, str]:
    return bearer(settings, user)


def organization(**fields: Any) -> dict[str, Any]:
    return {
        "id": new_id(),
        "name": "Riverside Community Trust",
        "description": "A charity running food and housing help in Riverside.",
        "email": "help@riverside.example",
        "website": "https://riverside.example",
        **fields,
    }


def service(organization_record: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A `service_full`-style nested service, with a location, phone, schedule, language,
    service area, required document, cost option, taxonomy attribute and capacity."""
    location_id = new_id()
    return {
        "id": new_id(),
        "name": "Emergency food parcels",
        "description": "Three days of food for people in crisis, collected or delivered.",
        "status": "active",
        "email": "parcels@riverside.example",
        "eligibility_description": "Adults referred by a case worker.",
        "minimum_age": 18,
        "assured_date": "2026-01-15",
        "last_modified": "2026-03-15T10:30:45.123Z",
        "organization": organization_record,
        "phones": [{"id": new_id(), "number": "+44 1234 234567", "type": "voice",
                    "languages": [{"id": new_id(), "name": "English", "code": "en"}]}],
        "schedules": [{"id": new_id(), "freq": "WEEKLY", "byday": "MO,TU,WE,TH,FR",
                       "opens_at": "09:00", "closes_at": "17:00", "timezone": 0}],
        "languages": [{"id": new_id(), "name": "Portuguese", "code": "pt"},
                      {"id": new_id(), "name": "English", "code": "en"}],
        "service_areas": [{"id": new_id(), "name": "Riverside", "extent": "RV1, RV2",
                           "extent_type": "text"}],
        "required_documents": [{"id": new_id(), "document": "Referral letter"}],
        "cost_options": [{"id": new_id(), "option": "Free", "amount": 0, "currency": "GBP"}],
        "capacities": [{"id": new_id(), "available": 12, "maximum": 40,
                        "updated": "2026-03-15T09:00:00Z",
                        "unit": {"id": new_id(), "name": "Parcel"}}],
        "attributes": [{"id": new_id(), "taxonomy_term": {
            "id": new_id(), "name": "Food pantry", "description": "Emergency food",
            "code": "BD-1800.2000", "taxonomy_detail": {
                "id": new_id(), "name": "Open Eligibility", "description": "A taxonomy",
                "version": "2.0"}}}],
        "service_at_locations": [{"id": new_id(), "location": {
            "id": location_id, "location_type": "physical", "name": "Riverside Hall",
            "addresses": [{"id": new_id(), "address_1": "1 Quay Street", "city": "Riverside",
                           "state_province": "Shire", "postal_code": "RV1 4AB",
                           "country": "GB", "address_type": "physical"}]}}],
        **fields,
    }  # fmt: skip


async def import_json(
    client: httpx.AsyncClient, settings: Settings, user: User, body: Any
) -> httpx.Response:
    return await client.post("/v1/directory/imports", json=body, headers=as_user(settings, user))


def csv_file(header: list[str], rows: list[list[str]]) -> bytes:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return text.getvalue().encode("utf-8")


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def unzipped(content: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def datapackage(*resources: tuple[str, str]) -> bytes:
    return json.dumps(
        {"name": "test-directory", "profile": "tabular-data-package",
         "resources": [{"name": name, "path": path} for name, path in resources]}
    ).encode()  # fmt: skip


def csv_rows(content: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8"))))
