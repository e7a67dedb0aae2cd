"""A partner reading a referred client's shared record at intake, against the same client's
full record read by its own case worker in the same run (the baseline: one Guard check on
client facts). The difference is what the ADDRESSED check costs: the open referrals sent to
the partner's organisation and the client's consents, then the covered classes."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from bench.load import HttpConnection, build_request, percentile, rounded
from bench.people import people_bodies
from bench.stack import BenchStack
from shared.auth.tokens import issue_dev_token
from shared.events.envelope import OutgoingEvent
from shared.events.referrals import ReferralMade, ReferralStatus
from shared.messaging.outbox import enqueue

PARTNER_ORGANIZATION = "org-bench-partner"
READS = 1000
# Other consents of the client (expired, other organisations): the check reads them all.
OTHER_CONSENTS = 10


async def _send(connection: HttpConnection, raw: bytes, expected: int) -> dict[str, Any]:
    status, body = await connection.request(raw)
    if status != expected:
        raise RuntimeError(f"expected {expected}, got {status}: {body[:300]!r}")
    answer: dict[str, Any] = json.loads(body)
    return answer


async def _publish_referral(admin_url: str, client_id: str, consent_id: str) -> None:
    """As referrals would: into its outbox; its relay publishes, intake's worker consumes."""
    connection = await asyncpg.connect(admin_url)
    try:
        await connection.execute("SET search_path = referrals")
        for json_type in ("json", "jsonb"):
            await connection.set_type_codec(
                json_type, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
            )
        made = ReferralMade(
            referral_id=uuid.uuid4(), client_id=uuid.UUID(client_id),
            sending_organization_id="org-bench", receiving_organization_id=PARTNER_ORGANIZATION,
            service_id="bench-service", mode="sent", consent_id=uuid.UUID(consent_id),
            status=ReferralStatus.REQUESTED, made_by="bench", made_at=datetime.now(UTC),
            expires_at=None,
        )  # fmt: skip
        async with connection.transaction():
            await enqueue(connection, OutgoingEvent.of(made))
    finally:
        await connection.close()


def _consent(today: date, **changes: Any) -> bytes:
    body = {
        "given_by": "client", "recipients": [PARTNER_ORGANIZATION], "purposes": ["referral"],
        "data_classes": ["general"], "expires_on": (today + timedelta(days=365)).isoformat(),
        **changes,
    }  # fmt: skip
    return json.dumps(body).encode()


async def partner_read(stack: BenchStack, headers: tuple[tuple[str, str], ...]) -> list[Any]:
    assert stack.settings is not None
    base = stack.api_url("intake")
    partner = (
        "Authorization",
        "Bearer " + issue_dev_token(
            stack.settings, subject="bench-partner", roles=["partner"],
            organization_id=PARTNER_ORGANIZATION, team_id=None,
        ),
    )  # fmt: skip
    today = datetime.now(UTC).date()
    worker = HttpConnection.for_url(base)
    reader = HttpConnection.for_url(base)
    try:
        person = people_bodies(1)[0]
        client = await _send(
            worker, build_request("POST", f"{base}/v1/clients", person, headers=headers), 201
        )
        client_id = client["id"]
        consents = f"{base}/v1/clients/{client_id}/consents"
        for index in range(OTHER_CONSENTS):
            other = _consent(today, recipients=[f"org-other-{index}"])
            await _send(worker, build_request("POST", consents, other, headers=headers), 201)
        consent = await _send(
            worker, build_request("POST", consents, _consent(today), headers=headers), 201
        )
        await _publish_referral(stack.admin_url, client_id, consent["id"])
        shared = build_request(
            "GET", f"{base}/v1/clients/{client_id}/shared-record", headers=(partner,)
        )
        full = build_request("GET", f"{base}/v1/clients/{client_id}", headers=headers)
        deadline = time.monotonic() + 30
        while (await reader.request(shared))[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the referral never reached intake")
            await asyncio.sleep(0.05)
        timings: dict[str, list[float]] = {"shared_record_partner": [], "client_caseworker": []}
        for _ in range(READS):  # alternating, so both see the same machine
            for name, raw, connection in (
                ("shared_record_partner", shared, reader),
                ("client_caseworker", full, worker),
            ):
                started = time.perf_counter()
                status, _ = await connection.request(raw)
                timings[name].append((time.perf_counter() - started) * 1000)
                if status != 200:
                    raise RuntimeError(f"{name}: {status}")
    finally:
        await worker.close()
        await reader.close()
    figures: list[Any] = [
        {
            "case": "partner_read",
            "target": name,
            "reads": len(values),
            "p50_ms": rounded(percentile(values, 50)),
            "p99_ms": rounded(percentile(values, 99)),
        }
        for name, values in timings.items()
    ]
    baseline = percentile(timings["client_caseworker"], 50)
    figures.append(
        {
            "case": "partner_read_vs_baseline",
            "consents_of_the_client": OTHER_CONSENTS + 1,
            "p50_ratio": rounded(percentile(timings["shared_record_partner"], 50) / baseline),
        }
    )
    return figures
