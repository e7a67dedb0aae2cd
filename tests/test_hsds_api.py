"""The public HSDS API: readable without a token, filtered and paginated as the HSDS 3 API
reference says, and every answer valid against the HSDS 3.1 JSON schemas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.referrals.directory.schemas import document_errors, nested_validator
from shared.settings import Settings
from tests.directory_support import (
    OPERATOR,
    directory_settings,
    directory_stack,
    import_json,
    new_id,
    organization,
    service,
)
from tests.support import Stack

__all__ = ["directory_settings", "directory_stack"]


@pytest.fixture(scope="module")
async def anonymous(directory_stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the referrals API that sends no token at all."""
    signed_in = directory_stack.api["referrals"]
    async with httpx.AsyncClient(
        transport=signed_in._transport, base_url=signed_in.base_url
    ) as client:
        yield client


@pytest.fixture(scope="module")
async def world(directory_stack: Stack, directory_settings: Settings) -> dict[str, Any]:
    """Two organisations: a food charity (two services, one a term of a taxonomy) and a
    legal advice centre, with a word that only these services use."""
    marker = f"zq{new_id()[:8]}"
    charity = organization(name=f"Harbour Food Charity {marker}")
    parcels = service(charity, name=f"Harbour parcels {marker}")
    cafe = service(charity, name=f"Harbour community cafe {marker}", attributes=[],
                   service_areas=[{"id": new_id(), "name": "Harbour", "extent": "HB9",
                                   "extent_type": "text"}])  # fmt: skip
    legal = service(organization(name="Harbour Law Centre"), name=f"Harbour legal {marker}",
                    description="Advice on debts and tenancy.", status="inactive")  # fmt: skip
    response = await import_json(
        directory_stack.api["referrals"], directory_settings, OPERATOR, [parcels, cafe, legal]
    )
    assert response.json()["rejected"] == [], response.text
    return {"marker": marker, "charity": charity, "parcels": parcels, "cafe": cafe,
            "legal": legal}  # fmt: skip


def assert_page(body: dict[str, Any], item_schema: str) -> None:
    assert nested_validator("page").is_valid(body), document_errors("page", body)
    for item in body["contents"]:
        assert document_errors(item_schema, item) == []


async def test_the_api_says_what_it_is(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/hsds/")

    assert response.status_code == 200
    body = response.json()
    assert document_errors("api_info", body) == []
    assert body["version"] == "3.1"
    assert body["openapi_url"].endswith("/openapi.json")


async def test_services_page_without_a_token_in_the_hsds_shape(
    anonymous: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    response = await anonymous.get(
        "/hsds/services", params={"search": world["marker"], "per_page": 2}
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert_page(body, "service")
    assert {k: body[k] for k in ("total_items", "total_pages", "page_number", "size",
                                 "first_page", "last_page", "empty")} == {
        "total_items": 3, "total_pages": 2, "page_number": 1, "size": 2,
        "first_page": True, "last_page": False, "empty": False,
    }  # fmt: skip
    names = [s["name"] for s in body["contents"]]
    assert names == sorted(names)
    assert body["contents"][0]["organization"]["id"] in {
        world["charity"]["id"],
        world["legal"]["organization"]["id"],
    }
    second = (
        await anonymous.get(
            "/hsds/services", params={"search": world["marker"], "per_page": 2, "page": 2}
        )
    ).json()
    assert (second["size"], second["last_page"], second["first_page"]) == (1, True, False)
    beyond = (
        await anonymous.get("/hsds/services", params={"search": world["marker"], "page": 9})
    ).json()
    assert (beyond["empty"], beyond["contents"]) == (True, [])


async def test_services_filter_by_taxonomy_term_postcode_organization_and_date(
    anonymous: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    term = world["parcels"]["attributes"][0]["taxonomy_term"]

    async def ids(**params: Any) -> set[str]:
        response = await anonymous.get("/hsds/services", params={"search": world["marker"],
                                                                 **params})  # fmt: skip
        assert response.status_code == 200, response.text
        return {s["id"] for s in response.json()["contents"]}

    parcels, cafe, legal = (world[k]["id"] for k in ("parcels", "cafe", "legal"))
    assert await ids(taxonomy_term_id=term["id"]) == {parcels}
    assert await ids(taxonomy_id=term["taxonomy_detail"]["id"]) == {parcels}
    assert await ids(organization_id=world["charity"]["id"]) == {parcels, cafe}
    # RV1 is in the parcels' text service area and in every location's address; HB9 only
    # in the cafe's service area.
    assert await ids(postcode="hb9 1aa") == {cafe}
    assert await ids(postcode="RV1 4AB") == {parcels, cafe, legal}
    assert await ids(modified_after="2026-03-15T10:30:45Z") == {parcels, cafe, legal}
    assert await ids(modified_after="2026-03-16T00:00:00Z") == set()


async def test_a_service_reads_back_fully_nested_and_valid(
    anonymous: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    response = await anonymous.get(f"/hsds/services/{world['parcels']['id']}")

    assert response.status_code == 200
    body = response.json()
    assert document_errors("service", body) == []
    assert body["service_at_locations"][0]["location"]["addresses"][0]["city"] == "Riverside"
    assert body["phones"][0]["languages"][0]["code"] == "en"


async def test_organizations_and_services_at_locations_are_valid(
    anonymous: httpx.AsyncClient, world: dict[str, Any]
) -> None:
    listed = await anonymous.get("/hsds/organizations", params={"search": world["marker"]})
    assert listed.status_code == 200
    assert_page(listed.json(), "organization")
    assert [o["id"] for o in listed.json()["contents"]] == [world["charity"]["id"]]

    full = (await anonymous.get(f"/hsds/organizations/{world['charity']['id']}")).json()
    assert document_errors("organization", full) == []
    assert {s["id"] for s in full["services"]} == {world["parcels"]["id"], world["cafe"]["id"]}
    assert "organization" not in full["services"][0]

    at_locations = await anonymous.get(
        "/hsds/service_at_locations", params={"organization_id": world["charity"]["id"]}
    )
    assert at_locations.status_code == 200
    assert_page(at_locations.json(), "service_at_location")
    assert at_locations.json()["total_items"] == 2
    one = at_locations.json()["contents"][0]
    single = (await anonymous.get(f"/hsds/service_at_locations/{one['id']}")).json()
    assert document_errors("service_at_location", single) == []
    assert single["location"]["id"] == one["location_id"]
    assert single["service"]["id"] == one["service_id"]


@pytest.mark.parametrize(
    "path",
    ["/hsds/services/no-such-service", "/hsds/organizations/nope",
     "/hsds/service_at_locations/nope"],
)  # fmt: skip
async def test_an_unknown_record_is_a_404_problem(anonymous: httpx.AsyncClient, path: str) -> None:
    response = await anonymous.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "params",
    [{"page": 0}, {"per_page": 1000}, {"modified_after": "yesterday"}, {"postcode": "RV1;--"}],
)
async def test_bad_filters_are_422_problems(
    anonymous: httpx.AsyncClient, params: dict[str, Any]
) -> None:
    response = await anonymous.get("/hsds/services", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
