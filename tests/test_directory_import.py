"""Import and export of the resource directory in both HSDS 3.1 forms: the nested JSON objects
and the tabular data package. Rejected rows are reported with their table, id and reasons
while the good ones land; importing the same data again changes nothing; a changed row
updates by id; what cannot be read at all is refused whole."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
import pytest

from services.referrals.directory.schemas import document_errors
from shared.settings import Settings
from tests.directory_support import (
    FOOD_BANK_ORG,
    FOOD_PARTNER,
    OPERATOR,
    OTHER_ADMIN,
    as_user,
    csv_file,
    csv_rows,
    datapackage,
    directory_settings,
    directory_stack,
    import_json,
    new_id,
    organization,
    service,
    unzipped,
    zipped,
)
from tests.hsds_examples.service_full import service_full
from tests.support import Stack, admin_fetchval

__all__ = ["directory_settings", "directory_stack"]


@pytest.fixture(scope="module")
def api(directory_stack: Stack) -> httpx.AsyncClient:
    return directory_stack.api["referrals"]


def counts(report: dict[str, Any], table: str) -> dict[str, int]:
    table_counts: dict[str, int] = report["tables"][table]
    return table_counts


async def test_a_nested_service_lands_whole_and_reads_back_from_the_hsds_api(
    api: httpx.AsyncClient, directory_settings: Settings
) -> None:
    record = service(organization())

    response = await import_json(api, directory_settings, OPERATOR, [record])

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["rejected"] == [] and report["rejected_total"] == 0
    for table in ("service", "organization", "location", "address", "phone", "language",
                  "schedule", "service_area", "required_document", "cost_option",
                  "service_capacity", "unit", "attribute", "taxonomy_term", "taxonomy",
                  "service_at_location"):  # fmt: skip
        assert counts(report, table)["inserted"] >= 1, table
    assert counts(report, "language") == {"received": 3, "inserted": 3, "updated": 0,
                                          "unchanged": 0, "rejected": 0}  # fmt: skip
    read = (await api.get(f"/hsds/services/{record['id']}")).json()
    assert read["name"] == "Emergency food parcels"
    assert read["organization"]["name"] == "Riverside Community Trust"
    assert read["minimum_age"] == 18 and read["assured_date"] == "2026-01-15"
    assert read["last_modified"] == "2026-03-15T10:30:45.123Z"
    assert read["capacities"][0]["unit"]["name"] == "Parcel"
    assert read["attributes"][0]["taxonomy_term"]["taxonomy_detail"]["name"] == "Open Eligibility"
    location = read["service_at_locations"][0]["location"]
    assert location["addresses"][0]["postal_code"] == "RV1 4AB"


async def test_importing_the_same_data_again_changes_nothing_and_a_changed_row_updates(
    api: httpx.AsyncClient, directory_settings: Settings
) -> None:
    record = service(organization())
    first = (await import_json(api, directory_settings, OPERATOR, [record])).json()
    changed_at = await admin_fetchval(
        directory_settings, "SELECT changed_at FROM referrals.service WHERE id = $1", record["id"]
    )

    again = (await import_json(api, directory_settings, OPERATOR, [record])).json()

    assert all(c["inserted"] == 0 and c["updated"] == 0 for c in again["tables"].values())
    assert counts(again, "service")["unchanged"] == 1
    assert sum(c["unchanged"] for c in again["tables"].values()) == sum(
        c["inserted"] for c in first["tables"].values()
    )
    assert (
        await admin_fetchval(
            directory_settings,
            "SELECT changed_at FROM referrals.service WHERE id = $1",
            record["id"],
        )
        == changed_at
    )

    renamed = copy.deepcopy(record)
    renamed["name"] = "Emergency food parcels and toiletries"
    renamed["phones"][0]["number"] = "+44 1234 999999"
    third = (await import_json(api, directory_settings, OPERATOR, [renamed])).json()

    assert counts(third, "service")["updated"] == 1
    assert counts(third, "phone")["updated"] == 1
    assert counts(third, "address")["unchanged"] == 1
    read = (await api.get(f"/hsds/services/{record['id']}")).json()
    assert read["name"] == "Emergency food parcels and toiletries"
    assert read["phones"][0]["number"] == "+44 1234 999999"


async def test_rejected_rows_are_reported_and_the_good_rows_still_land(
    api: httpx.AsyncClient, directory_settings: Settings
) -> None:
    org = organization()
    good = service(org, name="Housing advice")
    bad_status = service(org, status="sometimes")
    bad_phone = service(org, name="Debt advice")
    bad_phone["phones"][0]["number"] = None
    bad_phone["phones"][0].pop("number")
    no_organization = {"id": new_id(), "name": "Orphan", "status": "active"}

    response = await import_json(
        api, directory_settings, OPERATOR, [good, bad_status, bad_phone, no_organization]
    )

    assert response.status_code == 200, response.text
    report = response.json()
    rejected = {(r["table"], r["id"]): r for r in report["rejected"]}
    assert "status: 'sometimes' is not one of" in " ".join(
        rejected[("service", bad_status["id"])]["reasons"]
    )
    assert rejected[("service", bad_status["id"])]["where"] == "services[1]"
    phone = bad_phone["phones"][0]["id"]
    assert rejected[("phone", phone)]["reasons"] == ["'number' is a required property"]
    assert rejected[("service", no_organization["id"])]["reasons"] == [
        "'organization_id' is a required property"
    ]
    # The rejected service's children cannot land without it: each is named with why.
    child_phone = bad_status["phones"][0]["id"]
    assert rejected[("phone", child_phone)]["reasons"] == [
        f"service_id: no service {bad_status['id']} in this import or the directory"
    ]
    assert report["rejected_total"] == len(report["rejected"])
    assert (await api.get(f"/hsds/services/{good['id']}")).status_code == 200
    assert (await api.get(f"/hsds/services/{bad_phone['id']}")).json()["name"] == "Debt advice"
    assert (await api.get(f"/hsds/services/{bad_status['id']}")).status_code == 404


def _package(org_id: str, service_ids: list[str], location_id: str) -> dict[str, bytes]:
    return {
        "datapackage.json": datapackage(
            ("organization", "organizations.csv"),
            ("service", "services.csv"),
            ("location", "locations.csv"),
            ("address", "addresses.csv"),
            ("service_at_location", "service_at_location.csv"),
            ("phone", "phones.csv"),
        ),
        "organizations.csv": csv_file(
            ["id", "name", "description", "year_incorporated"],
            [[org_id, "Northgate Advice Centre", "Free advice on money and housing", "1998"]],
        ),
        "services.csv": csv_file(
            [
                "id",
                "organization_id",
                "name",
                "description",
                "status",
                "minimum_age",
                "last_modified",
            ],
            [
                [
                    service_ids[0],
                    org_id,
                    "Benefits check",
                    "Are you getting what you are owed?",
                    "active",
                    "16",
                    "2026-02-01T08:00:00Z",
                ],
                [service_ids[1], org_id, "Tenancy support", "Keeping your home", "active", "", ""],
                [
                    service_ids[2],
                    new_id(),
                    "Lost cause",
                    "Its organization is nowhere",
                    "active",
                    "",
                    "",
                ],
            ],
        ),
        "locations.csv": csv_file(
            ["id", "organization_id", "location_type", "name", "latitude", "longitude"],
            [[location_id, org_id, "physical", "Northgate Library", "53.48", "-2.24"]],
        ),
        "addresses.csv": csv_file(
            [
                "id",
                "location_id",
                "address_1",
                "city",
                "state_province",
                "postal_code",
                "country",
                "address_type",
            ],
            [
                [
                    new_id(),
                    location_id,
                    "2 Mill Lane",
                    "Northgate",
                    "Shire",
                    "NG1 2CD",
                    "GB",
                    "physical",
                ]
            ],
        ),
        "service_at_location.csv": csv_file(
            ["id", "service_id", "location_id"],
            [[new_id(), service_ids[0], location_id], [new_id(), service_ids[1], location_id]],
        ),
        "phones.csv": csv_file(
            ["id", "service_id", "number", "extension"],
            [
                [new_id(), service_ids[0], "0161 000 0000", "12"],
                [new_id(), service_ids[1], "0161 000 0001", "twelve"],
                [new_id(), service_ids[1]],
            ],
        ),
    }


async def test_a_tabular_package_imports_with_a_report_and_again_changes_nothing(
    api: httpx.AsyncClient, directory_settings: Settings
) -> None:
    org_id, location_id = new_id(), new_id()
    service_ids = [new_id(), new_id(), new_id()]
    files = _package(org_id, service_ids, location_id)
    headers = {**as_user(directory_settings, OPERATOR), "Content-Type": "application/zip"}

    response = await api.post("/v1/directory/imports", content=zipped(files), headers=headers)

    assert response.status_code == 200, response.text
    report = response.json()
    assert counts(report, "service") == {"received": 3, "inserted": 2, "updated": 0,
                                         "unchanged": 0, "rejected": 1}  # fmt: skip
    rejected = {(r["table"], r["where"]): r["reasons"] for r in report["rejected"]}
    assert rejected[("service", "services.csv line 4")] == [
        f"organization_id: no organization {csv_rows(files['services.csv'])[2]['organization_id']}"
        " in this import or the directory"
    ]
    assert rejected[("phone", "phones.csv line 3")] == [
        "extension: 'twelve' is not of type 'number'"
    ]
    assert rejected[("phone", "phones.csv line 4")] == ["2 cells where the header has 4"]
    assert counts(report, "phone")["inserted"] == 1

    # Sent again as multipart files, without the archive: nothing changes.
    again = await api.post(
        "/v1/directory/imports",
        files={name: (name, content) for name, content in files.items()},
        headers=as_user(directory_settings, OPERATOR),
    )
    assert again.status_code == 200, again.text
    assert all(c["inserted"] == 0 and c["updated"] == 0 for c in again.json()["tables"].values())
    assert counts(again.json(), "service")["unchanged"] == 2

    listed = (await api.get("/hsds/services", params={"organization_id": org_id})).json()
    assert [s["name"] for s in listed["contents"]] == ["Benefits check", "Tenancy support"]
    assert listed["contents"][0]["minimum_age"] == 16


async def test_the_exported_package_gives_back_what_was_imported(
    api: httpx.AsyncClient, directory_settings: Settings
) -> None:
    org_id, location_id = new_id(), new_id()
    service_ids = [new_id(), new_id(), new_id()]
    files = _package(org_id, service_ids, location_id)
    headers = {**as_user(directory_settings, OPERATOR), "Content-Type": "application/zip"}
    await api.post("/v1/directory/imports", content=zipped(files), headers=headers)

    exported = await api.get(
        "/v1/directory/export", params={"format": "datapackage"},
        headers=as_user(directory_settings, OPERATOR),
    )  # fmt: skip

    assert exported.status_code == 200, exported.text
    assert exported.headers["content-type"] == "application/zip"
    package = unzipped(exported.content)
    descriptor = json.loads(package["datapackage.json"])
    assert {r["name"]: r["path"] for r in descriptor["resources"]}["service"] == "services.csv"
    services = {row["id"]: row for row in csv_rows(package["services.csv"])}
    assert services[service_ids[0]]["name"] == "Benefits check"
    assert services[service_ids[0]]["minimum_age"] == "16"
    assert services[service_ids[0]]["last_modified"] == "2026-02-01T08:00:00Z"
    assert service_ids[2] not in services
    organizations = {row["id"]: row for row in csv_rows(package["organizations.csv"])}
    assert organizations[org_id]["year_incorporated"] == "1998"
    locations = {row["id"]: row for row in csv_rows(package["locations.csv"])}
    assert (locations[location_id]["latitude"], locations[location_id]["longitude"]) == (
        "53.48", "-2.24",
    )  # fmt: skip

    # The whole export imports back without a change.
    back = await api.post("/v1/directory/imports", content=exported.content, headers=headers)
    assert back.status_code == 200, back.text
    assert back.json()["rejected"] == []
    assert all(c["inserted"] == 0 and c["updated"] == 0 for c in back.json()["tables"].values())


async def test_the_json_export_gives_back_the_imported_services(
    api: httpx.AsyncClient, directory_settings: Settings
) -> None:
    record = service(organization())
    await import_json(api, directory_settings, OPERATOR, [record])

    exported = await api.get("/v1/directory/export", headers=as_user(directory_settings, OPERATOR))

    assert exported.status_code == 200
    mine = next(s for s in exported.json() if s["id"] == record["id"])
    assert mine["languages"] == [
        {**language, "service_id": record["id"]}
        for language in sorted(record["languages"], key=lambda language: language["id"])
    ]
    assert mine["cost_options"][0]["amount"] == 0
    back = await import_json(api, directory_settings, OPERATOR, [mine])
    assert back.json()["rejected"] == []
    assert all(c["inserted"] == 0 and c["updated"] == 0 for c in back.json()["tables"].values())


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("Café Solidário".encode("latin-1"), "is not UTF-8 (line 2"),
        (b'"Open door', "is not valid CSV"),
    ],
)
async def test_a_file_that_cannot_be_read_is_refused_whole(
    api: httpx.AsyncClient, directory_settings: Settings, content: bytes, reason: str
) -> None:
    org_id = new_id()
    organizations = b"id,name,description\n" + f"{org_id},".encode() + content + b",x\n"
    headers = {**as_user(directory_settings, OPERATOR), "Content-Type": "application/zip"}

    response = await api.post(
        "/v1/directory/imports",
        content=zipped({"organizations.csv": organizations}),
        headers=headers,
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert reason in response.json()["detail"]
    assert response.json()["detail"].startswith("organizations.csv")
    assert (
        await admin_fetchval(
            directory_settings, "SELECT count(*) FROM referrals.organization WHERE id = $1", org_id
        )
        == 0
    )


@pytest.mark.parametrize(
    ("body", "media"),
    [(b"{not json", "application/json"), (b"PK\x03\x04 broken", "application/zip"),
     (b"[1, 2]", "text/csv")],
)  # fmt: skip
async def test_garbage_is_a_problem_not_a_crash(
    api: httpx.AsyncClient, directory_settings: Settings, body: bytes, media: str
) -> None:
    headers = {**as_user(directory_settings, OPERATOR), "Content-Type": media}
    response = await api.post("/v1/directory/imports", content=body, headers=headers)
    assert response.status_code in (415, 422)
    assert response.headers["content-type"] == "application/problem+json"


async def test_a_partner_imports_its_own_records_and_nobody_elses(
    api: httpx.AsyncClient, directory_settings: Settings
) -> None:
    own = organization(name="Food Bank North")
    theirs = service(own, name="Food bank North parcels")
    response = await import_json(api, directory_settings, FOOD_PARTNER, [theirs])
    assert response.status_code == 200, response.text
    assert response.json()["rejected"] == []
    assert (
        await admin_fetchval(
            directory_settings,
            "SELECT casework_organization_id FROM referrals.organization WHERE id = $1",
            own["id"],
        )
        == FOOD_BANK_ORG
    )

    operators = service(organization(name="Operator's own charity"))
    await import_json(api, directory_settings, OPERATOR, [operators])
    hijack = copy.deepcopy(operators)
    hijack["name"] = "Renamed by someone else"
    moved_phone = copy.deepcopy(operators["phones"][0])
    theirs_again = copy.deepcopy(theirs)
    theirs_again["phones"].append(moved_phone)  # a phone of the operator's service

    for user in (FOOD_PARTNER, OTHER_ADMIN):
        report = (await import_json(api, directory_settings, user, [hijack, theirs_again])).json()
        refused = {(r["table"], r["id"]) for r in report["rejected"]}
        assert ("organization", operators["organization"]["id"]) in refused, user
        assert ("service", operators["id"]) in refused, user
        assert ("phone", moved_phone["id"]) in refused, user
    read = (await api.get(f"/hsds/services/{operators['id']}")).json()
    assert read["name"] == "Operator's own charity" or read["name"] == operators["name"]
    assert read["name"] != "Renamed by someone else"


async def test_importing_needs_the_directory_role(
    api: httpx.AsyncClient, directory_settings: Settings
) -> None:
    response = await api.post("/v1/directory/imports", json=[])
    assert response.status_code == 403
    assert response.json()["detail"] == "Your roles do not allow directory.write."


async def test_the_specifications_own_service_full_example_imports_and_reads_back(
    api: httpx.AsyncClient, directory_settings: Settings
) -> None:
    example = service_full()

    response = await import_json(api, directory_settings, OPERATOR, [example])

    assert response.status_code == 200, response.text
    report = response.json()
    assert report["rejected"] == []
    # The example repeats one phone under the service, its location, its contact and its
    # organization: one row, its parents merged.
    assert counts(report, "phone")["received"] == 10
    assert counts(report, "phone")["inserted"] + counts(report, "phone")["unchanged"] == 1
    assert await admin_fetchval(
        directory_settings,
        "SELECT array[service_id, location_id, organization_id, contact_id, "
        "service_at_location_id] FROM referrals.phone WHERE id = $1",
        example["phones"][0]["id"],
    ) == [example["id"], example["service_at_locations"][0]["location"]["id"],
          example["organization"]["id"], example["contacts"][0]["id"],
          example["service_at_locations"][0]["id"]]  # fmt: skip
    read = (await api.get(f"/hsds/services/{example['id']}")).json()
    assert document_errors("service", read) == []
    assert read["attributes"][0]["taxonomy_term"]["taxonomy_detail"]["version"] == "version"
    assert read["metadata"][0]["replacement_value"] == "MyCity New Civic Center"
    assert read["program"]["name"] == "Community Mental Health Support"
    assert read["organization"]["organization_identifiers"][0]["identifier"] == "1234567"
    assert read["cost_options"][0]["amount"] == 35
    again = await import_json(api, directory_settings, OPERATOR, [example])
    assert all(c["inserted"] == 0 and c["updated"] == 0 for c in again.json()["tables"].values())
    exported_back = await import_json(api, directory_settings, OPERATOR, [read])
    assert exported_back.json()["rejected"] == []
    assert all(
        c["inserted"] == 0 and c["updated"] == 0 for c in exported_back.json()["tables"].values()
    )


async def test_hostile_values_are_rejected_rows_or_problems_never_a_crash(
    api: httpx.AsyncClient, directory_settings: Settings
) -> None:
    org = organization()
    nul, surrogate = service(org), service(org)
    body = json.dumps([nul, surrogate])
    body = body.replace(nul["name"], "Food\\u0000bank", 1)
    body = body.replace(surrogate["name"], "Food \\ud800 bank", 1)
    headers = {**as_user(directory_settings, OPERATOR), "Content-Type": "application/json"}

    response = await api.post("/v1/directory/imports", content=body.encode(), headers=headers)

    assert response.status_code == 200, response.text
    reasons = {r["id"]: r["reasons"] for r in response.json()["rejected"]}
    assert reasons[nul["id"]] == ["name: contains a NUL character"]
    assert reasons[surrogate["id"]] == ["name: not valid Unicode text (a lone surrogate)"]
    not_a_number = await api.post(
        "/v1/directory/imports", content=b'[{"id": "x", "minimum_age": NaN}]', headers=headers
    )
    assert not_a_number.status_code == 422
    assert "NaN is not a JSON number" in not_a_number.json()["detail"]
