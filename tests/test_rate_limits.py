"""No amplification by anonymous callers (issue 9, item 8).

An attempt without a valid token is counted per source address and minute; only the first of
the minute is audited in full (a chained row, an outbox row, one Kafka message). Every request
is rate limited per source address, every verified caller per principal, and attempts without a
valid token per source before any database work: 429 problem details with Retry-After.
Each test runs its own intake app (the limits count per app) and calls from an address of its
own, so the counts it reads are its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from services.registry import SERVICES
from shared.http.app import create_app
from shared.settings import Settings
from tests.support import CASEWORKER, User, admin_fetchval, audit_rows, bearer


@contextlib.asynccontextmanager
async def intake(
    settings: Settings, address: str, **limits: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SERVICES["intake"], settings.model_copy(update=limits))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app, client=(address, 40000)),
            base_url="http://intake.test",
        ) as client,
    ):
        yield client


def address() -> str:
    """A source of this test's own: a documentation prefix (RFC 5737) and a unique tag."""
    return f"198.51.100.{uuid.uuid4().int % 250 + 1}-{uuid.uuid4().hex[:6]}"


async def counted(settings: Settings, source: str) -> tuple[int, int, int]:
    """(attempts counted, audit rows, outbox rows) for one source address."""
    attempts = await admin_fetchval(
        settings,
        "SELECT coalesce(sum(attempts), 0) FROM intake.unauthenticated_attempts "
        "WHERE source_address = $1",
        source,
    )
    audited = await admin_fetchval(
        settings, "SELECT count(*) FROM intake.audit_log WHERE source_address = $1", source
    )
    published = await admin_fetchval(
        settings,
        "SELECT count(*) FROM intake.outbox WHERE payload->>'source_address' = $1",
        source,
    )
    return int(attempts), int(audited), int(published)


async def burst(client: httpx.AsyncClient, count: int, **kwargs: Any) -> list[httpx.Response]:
    return await asyncio.gather(
        *(client.get(f"/v1/clients/{uuid.uuid4()}", **kwargs) for _ in range(count))
    )


async def test_300_unauthenticated_requests_write_a_handful_of_rows_not_300(
    settings: Settings,
) -> None:
    source = address()
    async with intake(settings, source) as client:  # no limits: the aggregation alone
        responses = await burst(client, 300)

    assert {response.status_code for response in responses} == {401}
    attempts, audited, published = await counted(settings, source)
    assert attempts == 300
    # One full record per minute the burst touched (it may straddle a minute boundary).
    assert 1 <= audited <= 2 and published == audited


async def test_the_audit_record_names_the_route_never_the_raw_path(settings: Settings) -> None:
    source = address()
    client_id = uuid.uuid4()
    async with intake(settings, source) as client:
        response = await client.get(
            f"/v1/clients/{client_id}", headers={"X-Request-ID": "probe-1-" + source}
        )
    assert response.status_code == 401
    [row] = await audit_rows(settings, "intake", "probe-1-" + source)
    assert (row["action"], row["outcome"]) == ("GET /v1/clients/{client_id}", "unauthenticated")
    assert str(client_id) not in row["action"] and row["source_address"] == source


async def test_unauthenticated_attempts_over_the_rate_get_429_before_any_database_work(
    settings: Settings,
) -> None:
    source = address()
    async with intake(settings, source, rate_limit_unauthenticated="5/minute") as client:
        responses = [await client.get(f"/v1/clients/{uuid.uuid4()}") for _ in range(8)]

    assert [response.status_code for response in responses] == [401] * 5 + [429] * 3
    refused = responses[-1]
    assert refused.headers["content-type"] == "application/problem+json"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["type"].endswith("/too-many-requests")
    assert (await counted(settings, source))[0] == 5  # the throttled ones wrote nothing


async def test_a_principal_over_its_rate_gets_429_with_retry_after(settings: Settings) -> None:
    source = address()
    headers = bearer(settings, CASEWORKER)
    async with intake(settings, source, rate_limit_per_principal="3/minute") as client:
        statuses = [
            (await client.get("/v1/clients", headers=headers)).status_code for _ in range(3)
        ]
        refused = await client.get("/v1/clients", headers={**headers, "X-Request-ID": source})
        other = await client.get(
            "/v1/clients", headers=bearer(settings, User("bea", ("caseworker",)))
        )

    assert statuses == [200, 200, 200]
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["status"] == 429 and "Retry" in refused.json()["detail"]
    assert await audit_rows(settings, "intake", source) == []  # not amplified into the trail
    assert other.status_code == 200  # another principal has its own budget


async def test_a_source_over_its_rate_gets_429_before_routing(settings: Settings) -> None:
    source = address()
    async with intake(settings, source, rate_limit_per_source="4/minute") as client:
        headers = bearer(settings, CASEWORKER)
        statuses = [
            (await client.get("/v1/code-lists", headers=headers)).status_code for _ in range(6)
        ]
        probe = await client.get("/health/live")
    assert statuses == [200] * 4 + [429] * 2
    assert probe.status_code == 200  # probes are not limited
