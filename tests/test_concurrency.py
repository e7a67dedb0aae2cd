"""More concurrent requests than the pool has connections: refusals, duplicates and exhausted
pools answer, and the service stays ready (a request never holds one pooled connection while
waiting for another)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager

from services.registry import SERVICES
from shared.audit.keys import chain_keys
from shared.audit.verify import verify_chains
from shared.db.database import Database
from shared.embedded import EmbeddedPostgres
from shared.http.app import create_app
from shared.http.idempotency import purge_expired
from shared.ports import free_port
from shared.settings import Settings, with_database
from tests.support import CASEWORKER, VALID_CLIENT, admin_fetchval, bearer, eventually

POOL_SIZE = 2
CONCURRENT = 40


@contextlib.asynccontextmanager
async def running_service(
    service: str, settings: Settings, **overrides: object
) -> AsyncIterator[tuple[httpx.AsyncClient, Database]]:
    """A service's API in this loop with `overrides` on its settings, called as the
    caseworker; and its database, to hold its pool's connections from outside."""
    configured = settings.model_copy(update=overrides)
    app = create_app(SERVICES[service], configured)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app),
            base_url=f"http://{service}.test",
            headers=bearer(configured, CASEWORKER),
            timeout=30,
        ) as client,
    ):
        yield client, app.state.database


def running_intake(
    settings: Settings, **overrides: object
) -> contextlib.AbstractAsyncContextManager[tuple[httpx.AsyncClient, Database]]:
    return running_service("intake", settings, **overrides)


@pytest.fixture(scope="module")
async def small_pool_intake(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """Intake with a two-connection pool that gives up waiting after two seconds."""
    async with running_intake(
        settings, database_pool_size=POOL_SIZE, database_acquire_timeout_seconds=2.0
    ) as (client, _database):
        yield client


async def _audit_rows(settings: Settings, request_ids: list[str]) -> int:
    count: int = await admin_fetchval(
        settings, "SELECT count(*) FROM intake.audit_log WHERE request_id = ANY($1)", request_ids
    )
    return count


async def _audited_requests(settings: Settings, request_ids: list[str], service: str) -> int:
    """How many of the requests left at least one audit record in the service's trail."""
    count: int = await admin_fetchval(
        settings,
        f"SELECT count(DISTINCT request_id) FROM {service}.audit_log WHERE request_id = ANY($1)",
        request_ids,
    )
    return count


# Per service: a read of something that does not exist (404) and a read that works (200),
# each sent CONCURRENT times at once to a pool of POOL_SIZE connections.
Route = tuple[str, str, dict[str, Any] | None, int]  # method, path, JSON body, expected status
BUSY_ROUTES: dict[str, list[Route]] = {
    "planning": [("GET", "/v1/cases/{random}", None, 404), ("GET", "/v1/work", None, 200)],
    "referrals": [
        ("GET", "/v1/referrals/{random}", None, 404),
        ("POST", "/v1/matches", {"facts": {"need_categories": ["food_insecurity"]}}, 200),
    ],
    "notifications": [
        ("POST", "/v1/inbox/{random}/read", None, 404),
        ("GET", "/v1/inbox", None, 200),
    ],
}


@pytest.mark.parametrize("service", list(BUSY_ROUTES))
async def test_every_service_answers_more_requests_than_its_pool_and_audits_each(
    settings: Settings, service: str
) -> None:
    async with running_service(
        service, settings, database_pool_size=POOL_SIZE, database_acquire_timeout_seconds=2.0
    ) as (client, _database):
        for method, path, body, status in BUSY_ROUTES[service]:
            request_ids = [f"busy-{uuid4()}" for _ in range(CONCURRENT)]
            responses = await asyncio.gather(
                *(
                    client.request(
                        method,
                        path.format(random=uuid4()),
                        json=body,
                        headers={"X-Request-Id": request_id},
                    )
                    for request_id in request_ids
                )
            )
            assert [r.status_code for r in responses] == [status] * CONCURRENT, (
                path, {r.status_code: r.text for r in responses},
            )  # fmt: skip
            assert await _audited_requests(settings, request_ids, service) == CONCURRENT, path
        ready = await client.get("/health/ready")
        assert ready.json()["checks"]["database"] == "ok"


async def test_refusals_above_pool_size_all_answer_and_are_all_audited(
    settings: Settings, small_pool_intake: httpx.AsyncClient
) -> None:
    request_ids = [f"wedge-{uuid4()}" for _ in range(CONCURRENT)]
    responses = await asyncio.gather(
        *(
            small_pool_intake.get(f"/v1/clients/{uuid4()}", headers={"X-Request-Id": request_id})
            for request_id in request_ids
        )
    )
    assert [r.status_code for r in responses] == [404] * CONCURRENT
    assert {r.json()["type"] for r in responses} == {"https://casework.dev/problems/not-found"}
    # Every refusal is on the record, written after its own rollback on its own connection.
    assert await _audit_rows(settings, request_ids) == CONCURRENT
    ready = await small_pool_intake.get("/health/ready")
    assert ready.json()["checks"]["database"] == "ok"
    live = await small_pool_intake.get("/health/live")
    assert live.status_code == 200 and live.json()["status"] == "live"


async def test_duplicate_refusals_above_pool_size_all_answer_409_with_candidates(
    settings: Settings, small_pool_intake: httpx.AsyncClient
) -> None:
    person = {**VALID_CLIENT, "given_name": "Wedgewood", "family_name": f"Conc{uuid4().hex[:6]}"}
    first = await small_pool_intake.post("/v1/clients", json=person)
    assert first.status_code == 201, first.text
    again = {key: value for key, value in person.items() if key != "duplicate_check"}
    request_ids = [f"dup-{uuid4()}" for _ in range(CONCURRENT)]
    responses = await asyncio.gather(
        *(
            small_pool_intake.post("/v1/clients", json=again, headers={"X-Request-Id": rid})
            for rid in request_ids
        )
    )
    assert [r.status_code for r in responses] == [409] * CONCURRENT
    assert all(r.json()["candidates"][0]["client_id"] == first.json()["id"] for r in responses)
    # Each 409 records what it showed (the candidate) and the refusal itself.
    assert await _audit_rows(settings, request_ids) == 2 * CONCURRENT


async def test_an_exhausted_pool_answers_503_with_retry_after_and_recovers(
    settings: Settings,
) -> None:
    async with running_intake(
        settings, database_pool_size=1, database_acquire_timeout_seconds=0.3
    ) as (client, database):
        held = await database.pool.acquire()
        try:
            busy = await client.get(f"/v1/clients/{uuid4()}")
        finally:
            await database.pool.release(held)
        assert busy.status_code == 503
        assert busy.headers["Retry-After"].isdigit()
        assert busy.headers["content-type"] == "application/problem+json"
        assert busy.json()["type"] == "https://casework.dev/problems/service-unavailable"
        after = await client.get(f"/v1/clients/{uuid4()}")
        assert after.status_code == 404


async def test_liveness_fails_only_when_every_wait_has_failed_for_too_long(
    settings: Settings,
) -> None:
    async with running_intake(
        settings,
        database_pool_size=1,
        database_acquire_timeout_seconds=0.2,
        liveness_starved_seconds=0.3,
    ) as (client, database):
        assert (await client.get("/health/live")).status_code == 200
        held = await database.pool.acquire()
        try:
            for _ in range(3):
                assert (await client.get(f"/v1/clients/{uuid4()}")).status_code == 503
            await asyncio.sleep(0.35)
            assert (await client.get(f"/v1/clients/{uuid4()}")).status_code == 503
            wedged = await client.get("/health/live")
            assert wedged.status_code == 503
            assert wedged.json()["checks"]["database_pool"] == "starved"
        finally:
            await database.pool.release(held)
        assert (await client.get(f"/v1/clients/{uuid4()}")).status_code == 404
        assert (await client.get("/health/live")).status_code == 200


async def test_one_idempotency_key_sent_twice_at_once_creates_once_and_answers_alike(
    settings: Settings, small_pool_intake: httpx.AsyncClient
) -> None:
    key = f"twice-{uuid4()}"
    person = {**VALID_CLIENT, "given_name": f"Twin{uuid4().hex[:8]}"}
    first, second = await asyncio.gather(
        *(small_pool_intake.post("/v1/clients", json=person, headers={"Idempotency-Key": key})
          for _ in range(2))
    )  # fmt: skip
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    created: int = await admin_fetchval(
        settings, "SELECT count(*) FROM intake.clients WHERE given_name = $1", person["given_name"]
    )
    assert created == 1


async def test_an_expired_idempotency_key_is_a_new_request_and_purge_forgets_it(
    settings: Settings, small_pool_intake: httpx.AsyncClient
) -> None:
    key = f"old-{uuid4()}"
    person = {**VALID_CLIENT, "given_name": f"Later{uuid4().hex[:8]}"}
    first = await small_pool_intake.post(
        "/v1/clients", json=person, headers={"Idempotency-Key": key}
    )
    await admin_fetchval(
        settings,
        "UPDATE intake.idempotency_keys SET created_at = now() - interval '25 hours' "
        "WHERE key LIKE '%' || $1",
        key,
    )
    again = await small_pool_intake.post(
        "/v1/clients", json=person, headers={"Idempotency-Key": key}
    )
    assert again.status_code == 201
    assert again.json()["id"] != first.json()["id"]  # not a replay of a day-old answer
    await admin_fetchval(
        settings,
        "UPDATE intake.idempotency_keys SET created_at = now() - interval '25 hours' "
        "WHERE key LIKE '%' || $1",
        key,
    )
    connection = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": "intake"}
    )
    try:
        purged = await purge_expired(connection, ttl_hours=24)
        left = await connection.fetchval(
            "SELECT count(*) FROM idempotency_keys WHERE key LIKE '%' || $1", key
        )
    finally:
        await connection.close()
    assert purged >= 1
    assert left == 0


async def test_concurrent_audit_appends_keep_every_chain_whole(
    settings: Settings, small_pool_intake: httpx.AsyncClient
) -> None:
    request_ids = [f"chain-{uuid4()}" for _ in range(CONCURRENT)]
    await asyncio.gather(
        *(
            small_pool_intake.get("/v1/clients", headers={"X-Request-Id": rid})
            for rid in request_ids
        )
    )
    connection = await asyncpg.connect(
        settings.database_url, server_settings={"search_path": "intake"}
    )
    try:
        assert await verify_chains(connection, chain_keys(settings)) == []
        # No two records claim the same predecessor: appends were serialised per chain.
        forks = await connection.fetchval(
            "SELECT count(*) FROM (SELECT chain, prev_hash FROM audit_log "
            "GROUP BY chain, prev_hash HAVING count(*) > 1) AS f"
        )
    finally:
        await connection.close()
    assert forks == 0
    assert await _audit_rows(settings, request_ids) >= CONCURRENT


async def test_a_database_that_is_down_is_a_503_with_retry_after_not_a_500(
    settings: Settings, tmp_path: Path
) -> None:
    """What a PostgreSQL restart looks like to a running API: connections refused. A server
    of its own, so that it can be stopped."""
    server = EmbeddedPostgres(tmp_path / "pg", free_port(), superuser_password="outage-test")
    server.start()
    try:
        async with running_intake(
            settings,
            service_database_url=with_database(server.admin_url, "postgres"),
            database_pool_size=1,
        ) as (client, _database):
            server.stop()
            outage = await client.get(f"/v1/clients/{uuid4()}")
            ready = await client.get("/health/ready")
            server.start()
            assert outage.status_code == 503, outage.text
            assert outage.headers["Retry-After"].isdigit()
            assert outage.json()["type"] == "https://casework.dev/problems/service-unavailable"
            assert ready.status_code == 503
            assert ready.json()["checks"]["database"] != "ok"

            async def database_back() -> bool | None:
                answer = await client.get("/health/ready")
                return True if answer.json()["checks"]["database"] == "ok" else None

            await eventually(database_back, timeout=30)
    finally:
        server.stop()
