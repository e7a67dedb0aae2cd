"""Bench case `referral_status_latency`: how long a referral's status change takes to reach the
other services' consumers.

One sent referral (a client registered at intake, a consent naming the partner organisation,
a service of the directory that organisation receives for), accepted by the partner, then moved
in-progress and on-hold in turn, `events` times, one change at a time with `event_interval_ms`
between them. For each change: from its outbox row's time (the event's time, taken in the
transaction of the POST) to the relay marking it published, and to each consuming service's
inbox row (the consumer's transaction, which ran its handler, committing). The services that
consume `ReferralStatusChanged` are read from their specs; with none, only the relay's figure
is emitted, and `consumers` says so.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import httpx

from bench.load import percentile, rounded
from services.registry import SERVICES
from shared.auth.tokens import issue_dev_token
from shared.events.referrals import ReferralStatusChanged

if TYPE_CHECKING:  # bench.cases lists this case: imported for the annotation only
    from bench.cases import BenchContext

ORGANIZATION, TEAM, WORKER = "org-bench-referrals", "team-bench", "bench-referrer"
PARTNER_ORGANIZATION, PARTNER = "org-bench-partner", "bench-partner"


def _consumers() -> list[str]:
    return sorted(
        name for name, spec in SERVICES.items() if ReferralStatusChanged.event_type in spec.handlers
    )


async def referral_status_latency(context: BenchContext) -> None:
    stack, options = context.stack, context.options
    settings = stack.settings
    assert settings is not None

    def token(subject: str, role: str, organisation: str, team: str | None) -> dict[str, str]:
        issued = issue_dev_token(
            settings, subject=subject, roles=[role], organization_id=organisation, team_id=team
        )
        return {"Authorization": f"Bearer {issued}"}

    worker = token(WORKER, "caseworker", ORGANIZATION, TEAM)
    partner = token(PARTNER, "partner", PARTNER_ORGANIZATION, None)
    service_id = await _seed_directory(stack.admin_url)
    async with httpx.AsyncClient(timeout=30) as http:
        intake, referrals = stack.api_url("intake"), stack.api_url("referrals")
        client = await http.post(
            f"{intake}/v1/clients",
            json={"given_name": "Bench", "family_name": f"Referral{secrets.token_hex(4)}",
                  "birth_date": "1980-05-06", "preferred_language": "en",
                  "duplicate_check": "confirmed_new"},
            headers=worker,
        )  # fmt: skip
        client.raise_for_status()
        client_id = client.json()["id"]
        await _wait(
            stack.admin_url,
            "SELECT 1 FROM referrals.client_access WHERE client_id = $1::uuid",
            client_id,
        )
        today = datetime.now(UTC).date()
        consent = await http.post(
            f"{intake}/v1/clients/{client_id}/consents",
            json={"given_by": "client", "recipients": [PARTNER_ORGANIZATION],
                  "purposes": ["referral"], "data_classes": ["general"],
                  "expires_on": (today + timedelta(days=365)).isoformat()},
            headers=worker,
        )  # fmt: skip
        consent.raise_for_status()
        await _wait(
            stack.admin_url,
            "SELECT 1 FROM referrals.consent_facts WHERE consent_id = $1::uuid",
            consent.json()["id"],
        )
        made = await http.post(
            f"{referrals}/v1/referrals",
            json={"client_id": client_id, "service_id": service_id, "mode": "sent",
                  "share": ["general"]},
            headers=worker,
        )  # fmt: skip
        made.raise_for_status()
        path = f"{referrals}/v1/referrals/{made.json()['id']}/status"
        etag = made.headers["ETag"]
        moves: list[dict[str, Any]] = [{"status": "accepted"}]
        for n in range(options.events):
            moves.append({"status": "in-progress"} if n % 2 == 0
                         else {"status": "on-hold", "reason_code": "client-declined"})  # fmt: skip
        errors = 0
        for move in moves:
            moved = await http.post(path, json=move, headers={**partner, "If-Match": etag})
            if moved.status_code != 200:
                errors += 1
                break
            etag = moved.headers["ETag"]
            await asyncio.sleep(options.event_interval_ms / 1000)
    consumers = _consumers()
    relay, by_consumer, missing = await _latencies(
        stack.admin_url, client_id, consumers, options.event_timeout_s
    )
    context.emit(
        {
            "case": "referral_status_latency",
            "consumer": "relay (published)",
            "events": len(relay),
            "p50_ms": rounded(percentile(relay, 50)),
            "p99_ms": rounded(percentile(relay, 99)),
            "status_errors": errors,
            "consumers": consumers,
        }
    )
    for name in consumers:
        latencies = by_consumer[name]
        context.emit(
            {
                "case": "referral_status_latency",
                "consumer": name,
                "events": len(latencies),
                "p50_ms": rounded(percentile(latencies, 50)),
                "p99_ms": rounded(percentile(latencies, 99)),
                "max_ms": rounded(max(latencies)) if latencies else None,
                "timeouts": missing[name],
                "aim_p50_ms": 50,
            }
        )


async def _seed_directory(admin_url: str) -> str:
    suffix = secrets.token_hex(4)
    organization, service = f"bench-org-{suffix}", f"bench-svc-{suffix}"
    connection: asyncpg.Connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute(
            "INSERT INTO referrals.organization (id, name, casework_organization_id) "
            "VALUES ($1, 'Bench partner', $2)",
            organization, PARTNER_ORGANIZATION,
        )  # fmt: skip
        await connection.execute(
            "INSERT INTO referrals.service (id, organization_id, name, status) "
            "VALUES ($1, $2, 'Bench service', 'active')",
            service, organization,
        )  # fmt: skip
    finally:
        await connection.close()
    return service


async def _wait(admin_url: str, query: str, key: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    connection: asyncpg.Connection = await asyncpg.connect(admin_url)
    try:
        while not await connection.fetchval(query, key):
            if time.monotonic() > deadline:
                raise TimeoutError(f"not there within {timeout}s: {query}")
            await asyncio.sleep(0.05)
    finally:
        await connection.close()


async def _latencies(
    admin_url: str, client_id: str, consumers: list[str], timeout: float
) -> tuple[list[float], dict[str, list[float]], dict[str, int]]:
    """Relay latencies, and per consumer the latencies of the changes it processed (waiting up
    to `timeout` seconds for the last ones) and how many it had not processed by then."""
    connection: asyncpg.Connection = await asyncpg.connect(admin_url)
    try:
        changes = await connection.fetch(
            "SELECT id::text AS id, created_at, published_at FROM referrals.outbox "
            "WHERE aggregateid = $1 AND type = $2 ORDER BY seq",
            client_id, ReferralStatusChanged.event_type,
        )  # fmt: skip
        ids = [row["id"] for row in changes]
        created = {row["id"]: row["created_at"] for row in changes}
        deadline = time.monotonic() + timeout
        by_consumer: dict[str, list[float]] = {}
        missing: dict[str, int] = {}
        for name in consumers:
            schema = SERVICES[name].schema
            while True:
                rows = await connection.fetch(
                    f'SELECT event_id, processed_at FROM "{schema}".inbox '
                    "WHERE event_id = ANY($1::text[])",
                    ids,
                )
                if len(rows) == len(ids) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            by_consumer[name] = [
                (row["processed_at"] - created[row["event_id"]]).total_seconds() * 1000
                for row in rows
            ]
            missing[name] = len(ids) - len(rows)
        while any(row["published_at"] is None for row in changes) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            changes = await connection.fetch(
                "SELECT id::text AS id, created_at, published_at FROM referrals.outbox "
                "WHERE id::text = ANY($1::text[])",
                ids,
            )
        relay = [
            (row["published_at"] - row["created_at"]).total_seconds() * 1000
            for row in changes
            if row["published_at"] is not None
        ]
    finally:
        await connection.close()
    return relay, by_consumer, missing
