"""What frontend teams and generated clients rely on: CORS for configured origins, a truthful
405, stable operation ids, one tag per operation, If-Match marked required, offline docs."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from services.registry import SERVICES
from shared.http.app import create_app
from shared.settings import Settings

FRONTEND = "http://localhost:5173"


@pytest.fixture(scope="module")
async def intake(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    configured = settings.model_copy(
        update={"cors_allowed_origins": [FRONTEND], "http_root_path": "/intake"}
    )
    app = create_app(SERVICES["intake"], configured)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app, root_path="/intake"),
            base_url="http://gateway.test/intake",
        ) as client,
    ):
        yield client


def _documents() -> dict[str, dict[str, Any]]:
    return {name: create_app(spec, Settings()).openapi() for name, spec in SERVICES.items()}


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


async def test_a_preflight_from_a_configured_origin_is_allowed_with_the_api_headers(
    intake: httpx.AsyncClient,
) -> None:
    response = await intake.options(
        "/v1/clients",
        headers={
            "Origin": FRONTEND,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, if-match, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == FRONTEND
    assert "PATCH" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    assert {"authorization", "if-match", "idempotency-key"} <= {
        h.strip() for h in allowed.split(",")
    }


async def test_a_preflight_from_another_origin_gets_no_cors_grant(
    intake: httpx.AsyncClient,
) -> None:
    response = await intake.options(
        "/v1/clients",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in response.headers


async def test_a_simple_request_from_the_origin_exposes_etag_and_location(
    intake: httpx.AsyncClient,
) -> None:
    response = await intake.get("/v1/code-lists", headers={"Origin": FRONTEND})
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert {"etag", "location", "retry-after", "x-request-id"} <= exposed


async def test_405_lists_every_method_the_path_serves(intake: httpx.AsyncClient) -> None:
    response = await intake.delete("/v1/clients")
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"
    assert {m.strip() for m in response.headers["Allow"].split(",")} == {"GET", "HEAD", "POST"}


async def test_docs_work_offline_and_behind_the_gateway_prefix(
    intake: httpx.AsyncClient,
) -> None:
    page = await intake.get("/docs")
    assert page.status_code == 200
    assert "cdn." not in page.text and "https://" not in page.text.split("<body>")[1]
    assert "/intake/openapi.json" in page.text
    script = "/intake/static-offline-docs/swagger-ui-bundle.js"
    assert script in page.text
    bundle = await intake.get("/static-offline-docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    document = (await intake.get("/openapi.json")).json()
    assert document["servers"] == [{"url": "/intake"}]


def test_operation_ids_are_unique_and_prefixed_by_their_service() -> None:
    seen: Counter[str] = Counter()
    for service, document in _documents().items():
        for _method, _path, operation in _operations(document):
            assert operation["operationId"].startswith(f"{service}_")
            seen[operation["operationId"]] += 1
    assert [name for name, count in seen.items() if count > 1] == []


def test_operation_ids_are_stable_names_not_paths() -> None:
    intake = _documents()["intake"]
    ids = {(m, p): op["operationId"] for m, p, op in _operations(intake)}
    assert ids[("get", "/v1/clients/{client_id}")] == "intake_get_client"
    assert ids[("post", "/v1/clients")] == "intake_register_client"


def test_every_operation_has_exactly_one_tag() -> None:
    for service, document in _documents().items():
        for method, path, operation in _operations(document):
            assert len(operation.get("tags", [])) == 1, (service, method, path)


def test_if_match_is_documented_as_required_where_its_absence_is_428() -> None:
    checked = 0
    for document in _documents().values():
        for _method, _path, operation in _operations(document):
            if "428" not in operation["responses"]:
                continue
            if_match = [p for p in operation["parameters"] if p["name"] == "If-Match"]
            assert if_match and if_match[0]["required"] is True
            checked += 1
    assert checked >= 1


def test_every_list_has_the_same_envelope() -> None:
    """A GET answering a collection answers {items, next_cursor}; the few reads that hold a
    list inside one resource are named here with why."""
    resources_with_lists = {
        ("intake", "/v1/reports/equity"),  # one report, its dimensions
        ("intake", "/v1/clients/{client_id}/links"),  # one client's identity group
        ("intake", "/v1/clients/{client_id}/shared-record"),  # one client, as shared
        ("notifications", "/v1/notification-rules"),  # one organisation's rule set
        ("notifications", "/v1/on-call"),  # one organisation's on-call list
        ("referrals", "/v1/clients/{client_id}/suggested-services"),  # one client's ranking
        ("planning", "/v1/code-lists/closure-reasons"),  # one code list, like intake's
        ("planning", "/v1/code-lists/destinations"),  # one code list, like intake's
        ("planning", "/v1/workers/{worker_id}/caseload"),  # one worker's load, as of now
        ("planning", "/v1/teams/{team_id}/caseload"),  # one team's loads, as of now
        ("planning", "/v1/cases/{case_id}/assignment-suggestions"),  # one case's ranking
    }
    # The envelope plus a count of the whole collection.
    counted = {("notifications", "/v1/inbox"): {"unread_count"}}
    for service, document in _documents().items():
        schemas = document["components"]["schemas"]
        for method, path, operation in _operations(document):
            content = operation["responses"].get("200", {}).get("content", {})
            ref = content.get("application/json", {}).get("schema", {}).get("$ref")
            if method != "get" or ref is None or (service, path) in resources_with_lists:
                continue
            properties = schemas[ref.rsplit("/", 1)[-1]].get("properties", {})
            one_resource = path.endswith("}")  # /v1/clients/{client_id}: one record
            if one_resource or not any(p.get("type") == "array" for p in properties.values()):
                continue
            expected = {"items", "next_cursor", *counted.get((service, path), set())}
            assert set(properties) == expected, (service, path)


def test_a_registration_documents_its_409_with_candidates_and_what_was_compared() -> None:
    intake = _documents()["intake"]
    conflict = intake["paths"]["/v1/clients"]["post"]["responses"]["409"]
    schema_ref = conflict["content"]["application/problem+json"]["schema"]["$ref"]
    problem = intake["components"]["schemas"][schema_ref.rsplit("/", 1)[-1]]
    assert {"candidates", "compared", "type", "title", "status"} <= set(problem["properties"])
    created = intake["paths"]["/v1/clients"]["post"]["responses"]["201"]
    assert {"ETag", "Location"} <= set(created["headers"])
    read = intake["paths"]["/v1/clients/{client_id}"]["get"]["responses"]["200"]
    assert "ETag" in read["headers"]
