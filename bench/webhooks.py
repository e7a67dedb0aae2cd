"""Webhook deliveries per minute to a local receiver (aim: 10^4 a minute).

`sender`: the notifications worker's own sender (services/notifications/webhooks/sender.py),
run in the bench process on the stack's notifications schema while the stack's workers are
paused (so they do not claim the same rows), with the receiver in a process of its own: 10^4
deliveries queued at once (as a burst of events fanned out would leave them) to one
subscription, then time until every one is recorded delivered: claim, sign, POST, record the
attempt and the delivery's new state, in batches. `baseline_raw_httpx`: the same POSTs of the
same bodies with the same concurrency from a bare httpx client, no database, no signing: the
ceiling of this receiver and client on this machine.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import httpx

from bench.load import rounded
from bench.stack import wait_ready
from services.notifications.main import SPEC as NOTIFICATIONS
from services.notifications.webhooks.secrets_at_rest import seal, webhook_secret_keys
from services.notifications.webhooks.sender import WebhookSender
from services.notifications.webhooks.signing import new_secret
from shared.clock import SYSTEM_CLOCK
from shared.http.app import service_database
from shared.ports import free_port
from shared.spec import LoopContext

if TYPE_CHECKING:
    from bench.cases import BenchContext

Figure = dict[str, Any]
DELIVERIES = 10_000
CONCURRENCY = 64


def _payload(n: int) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid4()),
        "source": "/casework/referrals",
        "type": "org.casework.referrals.referral.made.v1",
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": {"referral_id": str(uuid4()), "client_id": str(uuid4()), "n": n},
    }


async def webhook_deliveries(context: BenchContext) -> None:
    stack_settings = context.stack.settings
    assert stack_settings is not None
    settings = stack_settings.model_copy(
        update={
            "webhook_allow_http": True,
            "webhook_allow_private_targets": True,
            "webhook_concurrency": CONCURRENCY,
            "webhook_per_subscription_concurrency": CONCURRENCY,
            "webhook_poll_seconds": 0.05,
        }
    )
    port = free_port()
    receiver = subprocess.Popen(  # noqa: ASYNC220 (starting it does not wait for it)
        [sys.executable, "-m", "bench.webhook_receiver", str(port)]
    )
    database = service_database(NOTIFICATIONS, settings)
    await database.connect()
    context.stack.pause_workers()
    try:
        await asyncio.to_thread(wait_ready, f"http://127.0.0.1:{port}/", 30, receiver)
        url = f"http://127.0.0.1:{port}/hook"
        context.emit(await _baseline(url))
        subscription_id = uuid4()
        async with database.transaction() as connection:
            await connection.execute(
                "INSERT INTO webhook_subscriptions (id, organization_id, url, event_types, "
                "secret, state, created_by, created_at, updated_at) "
                "VALUES ($1, 'org-bench', $2, ARRAY['org.casework.referrals.referral.made.v1'], "
                "$3, 'active', 'bench', now(), now())",
                subscription_id,
                url,
                # Sealed, as the API stores it: every attempt unseals it to sign.
                seal(webhook_secret_keys(settings), new_secret(), subscription_id=subscription_id),
            )
            await connection.execute(
                "INSERT INTO webhook_deliveries (id, subscription_id, organization_id, event_id, "
                "event_type, payload, state, next_attempt_at, created_at) "
                "SELECT gen_random_uuid(), $1, 'org-bench', p->>'id', p->>'type', p, 'pending', "
                "'-infinity', now() FROM unnest($2::jsonb[]) AS p",
                subscription_id,
                [_payload(n) for n in range(DELIVERIES)],
            )
        sender = WebhookSender(
            LoopContext(
                service="notifications", database=database, settings=settings, clock=SYSTEM_CLOCK
            )
        )
        started = time.perf_counter()
        task = asyncio.create_task(sender.run())
        delivered = 0
        deadline = started + 600
        try:
            while time.perf_counter() < deadline:
                async with database.connection() as connection:
                    delivered = await connection.fetchval(
                        "SELECT count(*) FROM webhook_deliveries WHERE subscription_id = $1 "
                        "AND state = 'delivered'",
                        subscription_id,
                    )
                if delivered == DELIVERIES:
                    break
                await asyncio.sleep(0.1)
        finally:
            elapsed = time.perf_counter() - started
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        context.emit(_figure("sender", delivered, elapsed))
        async with database.transaction() as connection:
            await connection.execute(
                "DELETE FROM webhook_attempts WHERE delivery_id IN "
                "(SELECT id FROM webhook_deliveries WHERE subscription_id = $1)",
                subscription_id,
            )
            await connection.execute(
                "DELETE FROM webhook_deliveries WHERE subscription_id = $1", subscription_id
            )
            await connection.execute(
                "DELETE FROM webhook_subscriptions WHERE id = $1", subscription_id
            )
    finally:
        context.stack.resume_workers()
        await database.close()
        receiver.terminate()
        receiver.wait(timeout=10)


async def _baseline(url: str) -> Figure:
    bodies = [json.dumps(_payload(n)).encode() for n in range(DELIVERIES)]
    slots = asyncio.Semaphore(CONCURRENCY)
    ok = 0
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:

        async def post(body: bytes) -> None:
            nonlocal ok
            async with slots:
                response = await client.post(
                    url, content=body, headers={"content-type": "application/cloudevents+json"}
                )
                ok += 200 <= response.status_code < 300

        started = time.perf_counter()
        await asyncio.gather(*(post(body) for body in bodies))
        elapsed = time.perf_counter() - started
    return _figure("baseline_raw_httpx", ok, elapsed)


def _figure(target: str, delivered: int, elapsed: float) -> Figure:
    return {
        "case": "webhook_deliveries",
        "target": target,
        "deliveries": DELIVERIES,
        "delivered": delivered,
        "concurrency": CONCURRENCY,
        "seconds": rounded(elapsed),
        "per_minute": round(delivered / elapsed * 60) if elapsed else None,
        "errors": DELIVERIES - delivered,
    }
