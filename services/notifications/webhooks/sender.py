"""The worker's webhook sender: claims due deliveries, POSTs them, records each attempt.

- Claimed in a short transaction (`FOR UPDATE SKIP LOCKED`, so two workers never take the same
  row) whose lease moves next_attempt_at past the attempt's timeout: a worker that dies
  mid-attempt leaves the delivery due again after the lease. No connection is held during an
  HTTP request.
- Each attempt is its own task with a hard timeout (name resolution included), under a limit
  of requests in flight per worker and per subscription: a slow or garbage-answering
  subscriber fills only its own few slots, never everyone's.
- A 2xx answer is delivered; anything else (another status, a refused target, a timeout, a
  broken answer) is retried with exponential backoff and jitter for the retry window; then the
  delivery fails, the subscription is disabled and its creator told (`on_disabled`).
- Results are written in batches (one transaction for many attempts), with an audit record for
  each delivered event about a client: that client's facts went to that organisation.
- Consent is checked again when a delivery is claimed: a consent revoked meanwhile fails it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg
import httpx

from services.notifications.webhooks import audience
from services.notifications.webhooks.backoff import next_attempt
from services.notifications.webhooks.catalogue import CONTENT_TYPE
from services.notifications.webhooks.fanout import WAKE_CHANNEL
from services.notifications.webhooks.secrets_at_rest import reseal, unseal, webhook_secret_keys
from services.notifications.webhooks.signing import signature_headers
from services.notifications.webhooks.targets import TargetRefused, checked_address, parse_target
from shared.audit.keys import chain_keys
from shared.audit.log import AuditEntry, AuditLog, Outcome
from shared.crypto.sealed import UnsealError
from shared.events.consent import Purpose
from shared.messaging.outbox import UnitOfWork
from shared.spec import LoopContext

log = logging.getLogger(__name__)

USER_AGENT = "Casework-Webhooks/1.0"
FLUSH_SECONDS = 0.05
FLUSH_BATCH = 500
MAX_ERROR_LENGTH = 500

# What to do when a subscription is disabled after its deliveries kept failing: tell its
# creator (notifications' inbox; see webhooks/owner.py). Runs in the disabling transaction.
OnDisabled = Callable[[asyncpg.Connection, "Disabled"], Awaitable[None]]


@dataclass(frozen=True)
class Disabled:
    subscription_id: UUID
    organization_id: str
    created_by: str
    delivery_id: UUID
    at: datetime


@dataclass(frozen=True)
class Claimed:
    id: UUID
    subscription_id: UUID
    organization_id: str
    event_type: str
    client_id: UUID | None
    consent_purpose: str | None
    payload: dict[str, object]
    attempts: int
    retry_since: datetime | None
    url: str
    secrets: tuple[str, ...]  # as stored: sealed (or, written before sealing, clear)


@dataclass(frozen=True)
class Result:
    delivery: Claimed
    attempted_at: datetime  # the worker's clock: what retries are scheduled from
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


_CLAIM = """
WITH candidates AS (
    SELECT d.id, d.subscription_id, d.next_attempt_at
    FROM webhook_deliveries d
    JOIN webhook_subscriptions s ON s.id = d.subscription_id
    WHERE d.state IN ('pending', 'retrying') AND d.next_attempt_at <= $1
      AND s.state = 'active' AND s.deleted_at IS NULL
      AND NOT (d.subscription_id = ANY($2::uuid[]))
    ORDER BY d.next_attempt_at, d.created_at
    LIMIT $3 * 4
), ranked AS (
    SELECT id, row_number() OVER (PARTITION BY subscription_id ORDER BY next_attempt_at, id) AS n
    FROM candidates
), picked AS (
    SELECT d.id FROM webhook_deliveries d JOIN ranked r ON r.id = d.id
    WHERE r.n <= $4 AND d.state IN ('pending', 'retrying') AND d.next_attempt_at <= $1
    ORDER BY d.next_attempt_at, d.created_at
    LIMIT $3
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries d SET next_attempt_at = $5
FROM picked p, webhook_subscriptions s
WHERE d.id = p.id AND s.id = d.subscription_id
RETURNING d.id, d.subscription_id, d.organization_id, d.event_type, d.client_id,
    d.consent_purpose, d.payload, d.attempts, d.retry_since, s.url, s.secret,
    CASE WHEN s.previous_secret_until > $1 THEN s.previous_secret END AS previous_secret
"""

_FAIL_WITHOUT_ATTEMPT = """
UPDATE webhook_deliveries SET state = 'failed', next_attempt_at = NULL, last_error = $2
WHERE id = ANY($1::uuid[])
"""

_RECORD = """
UPDATE webhook_deliveries d SET
    state = r.state, attempts = d.attempts + 1, next_attempt_at = r.next_attempt_at,
    retry_since = r.retry_since, last_status_code = r.status_code, last_error = r.error,
    delivered_at = r.delivered_at
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::int[],
            $6::text[], $7::timestamptz[])
    AS r(id, state, next_attempt_at, retry_since, status_code, error, delivered_at)
WHERE d.id = r.id
RETURNING d.id, d.attempts
"""

_ATTEMPTS = """
INSERT INTO webhook_attempts (delivery_id, attempt, attempted_at, status_code, error, duration_ms)
SELECT * FROM unnest($1::uuid[], $2::int[], $3::timestamptz[], $4::int[], $5::text[], $6::int[])
ON CONFLICT DO NOTHING
"""

_DISABLE = """
UPDATE webhook_subscriptions SET state = 'disabled', disabled_reason = 'deliveries-failing',
    disabled_at = $2, updated_at = $2, version = version + 1
WHERE id = $1 AND state = 'active'
RETURNING organization_id, created_by
"""

_FAIL_WAITING = """
UPDATE webhook_deliveries SET state = 'failed', next_attempt_at = NULL,
    last_error = 'the subscription was disabled'
WHERE subscription_id = $1 AND state IN ('pending', 'retrying') AND id <> $2
"""


async def _nothing(_connection: asyncpg.Connection, _disabled: Disabled) -> None:
    return None


class WebhookSender:
    def __init__(self, context: LoopContext, *, on_disabled: OnDisabled = _nothing) -> None:
        self.database = context.database
        self.settings = context.settings
        self.clock = context.clock
        self.on_disabled = on_disabled
        self.audit_log = AuditLog(schema=context.database.schema, keys=chain_keys(context.settings))
        self.secret_keys = webhook_secret_keys(context.settings)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight: dict[UUID, int] = {}
        self._results: list[Result] = []
        self._results_ready = asyncio.Event()

    # --- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        settings = self.settings
        timeout = httpx.Timeout(settings.webhook_timeout_seconds)
        limits = httpx.Limits(
            max_connections=settings.webhook_concurrency,
            max_keepalive_connections=settings.webhook_concurrency,
        )
        async with self.database.connection() as connection:
            await reseal(connection, self.secret_keys)
        listener = await self.database.connect_dedicated()
        await listener.add_listener(WAKE_CHANNEL, self._notified)
        recorder = asyncio.create_task(self._record_loop())
        try:
            async with httpx.AsyncClient(
                timeout=timeout, limits=limits, follow_redirects=False, trust_env=False
            ) as http:
                while True:
                    claimed = await self._fill(http)
                    if claimed and len(self._tasks) < settings.webhook_concurrency:
                        continue  # more may be due
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), settings.webhook_poll_seconds)
                    self._wake.clear()
        finally:
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            recorder.cancel()
            await asyncio.gather(recorder, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._flush()  # what was answered is written, not sent again
            with contextlib.suppress(Exception):
                await listener.close(timeout=2)

    def _notified(self, *_args: object) -> None:
        self._wake.set()

    async def _fill(self, http: httpx.AsyncClient) -> int:
        capacity = self.settings.webhook_concurrency - len(self._tasks)
        if capacity <= 0:
            return 0
        per_subscription = self.settings.webhook_per_subscription_concurrency
        busy = [sub for sub, n in self._in_flight.items() if n >= per_subscription]
        claimed = await self.claim(capacity, busy)
        for delivery in claimed:
            self._in_flight[delivery.subscription_id] = (
                self._in_flight.get(delivery.subscription_id, 0) + 1
            )
            task = asyncio.create_task(self._deliver(http, delivery))
            self._tasks.add(task)
            task.add_done_callback(self._done)
        return len(claimed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()

    async def claim(self, limit: int, busy: list[UUID]) -> list[Claimed]:
        now = self.clock.now()
        lease = now + timedelta(seconds=self.settings.webhook_timeout_seconds + 60)
        per_subscription = self.settings.webhook_per_subscription_concurrency
        async with self.database.transaction() as connection:
            rows = await connection.fetch(_CLAIM, now, busy, limit, per_subscription, lease)
            claimed = [_claimed(row) for row in rows]
            withdrawn = [
                d.id for d in claimed if not await self._still_consented(connection, d, now)
            ]
            if withdrawn:
                await connection.execute(
                    _FAIL_WITHOUT_ATTEMPT,
                    withdrawn,
                    "no consent of the client covers the subscriber's organisation any more",
                )
        return [d for d in claimed if d.id not in withdrawn]

    async def _still_consented(
        self, connection: asyncpg.Connection, delivery: Claimed, now: datetime
    ) -> bool:
        if delivery.consent_purpose is None or delivery.client_id is None:
            return True
        return await audience.consent_covers(
            connection,
            client_id=delivery.client_id,
            organization_id=delivery.organization_id,
            purpose=Purpose(delivery.consent_purpose),
            on=now.date(),
        )

    # --- one attempt -----------------------------------------------------------------------

    async def _deliver(self, http: httpx.AsyncClient, delivery: Claimed) -> None:
        try:
            result = await self.attempt(http, delivery)
            self._results.append(result)
            self._results_ready.set()
        finally:
            left = self._in_flight.get(delivery.subscription_id, 1) - 1
            if left > 0:
                self._in_flight[delivery.subscription_id] = left
            else:
                self._in_flight.pop(delivery.subscription_id, None)

    async def attempt(self, http: httpx.AsyncClient, delivery: Claimed) -> Result:
        attempted_at = self.clock.now()
        started = time.monotonic()
        status_code: int | None = None
        error: str | None = None
        timeout = self.settings.webhook_timeout_seconds
        try:
            async with asyncio.timeout(timeout):
                status_code = await self._post(http, delivery)
            if not 200 <= status_code < 300:
                error = f"the subscriber answered {status_code}"
        except TargetRefused as refused:
            error = f"{refused.code}: {refused}"
        except UnsealError as unopened:
            error = f"the subscription's signing secret cannot be unsealed: {unopened}"
        except TimeoutError:
            error = f"no answer within {timeout:g} s"
        except httpx.HTTPError as failure:
            error = (
                f"{type(failure).__name__}: {failure}" if str(failure) else type(failure).__name__
            )
        except OSError as failure:
            error = f"{type(failure).__name__}: {failure}"
        duration_ms = round((time.monotonic() - started) * 1000)
        return Result(
            delivery=delivery,
            attempted_at=attempted_at,
            status_code=status_code,
            error=error[:MAX_ERROR_LENGTH] if error else None,
            duration_ms=duration_ms,
        )

    async def _post(self, http: httpx.AsyncClient, delivery: Claimed) -> int:
        """POST the CloudEvent to the address that was just checked (the URL's host name stays
        in `Host` and in TLS's server name, so certificates are verified against it)."""
        target = parse_target(delivery.url, allow_http=self.settings.webhook_allow_http)
        address = await checked_address(target, self.settings)
        body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True)
        url = httpx.URL(delivery.url)
        headers = {
            "content-type": CONTENT_TYPE,
            "user-agent": USER_AGENT,
            "host": url.netloc.decode("ascii"),
            # The real time of sending: receivers compare it with their own clock.
            **signature_headers(
                message_id=str(delivery.id),
                timestamp=datetime.now(UTC),
                body=body,
                secrets_in_use=[
                    unseal(self.secret_keys, stored, subscription_id=delivery.subscription_id)
                    for stored in delivery.secrets
                ],
            ),
        }
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        request = http.build_request(
            "POST",
            url.copy_with(host=str(address)),
            content=body.encode(),
            headers=headers,
            extensions=extensions,
        )
        response = await http.send(request, stream=True)
        await response.aclose()  # the status is the answer; the body is never read
        return response.status_code

    # --- recording -------------------------------------------------------------------------

    async def _record_loop(self) -> None:
        while True:
            await self._results_ready.wait()
            await asyncio.sleep(FLUSH_SECONDS)  # gather a batch
            try:
                await self._flush()
            except Exception:
                log.exception("recording webhook attempts failed; retrying")
                await asyncio.sleep(1.0)

    async def _flush(self) -> None:
        while self._results:
            batch, self._results = self._results[:FLUSH_BATCH], self._results[FLUSH_BATCH:]
            if not self._results:
                self._results_ready.clear()
            try:
                await self.record(batch)
            except BaseException:
                self._results = batch + self._results
                self._results_ready.set()
                raise

    async def record(self, results: list[Result]) -> None:
        """Write a batch of attempts: each delivery's new state, its attempt log, the audit
        records of delivered events about clients; disable the subscriptions whose delivery
        ran out of its retry window."""
        settings = self.settings
        window = timedelta(hours=settings.webhook_retry_window_hours)
        states: list[str] = []
        next_attempts: list[datetime | None] = []
        retry_since: list[datetime | None] = []
        delivered_at: list[datetime | None] = []
        exhausted: list[Result] = []
        for result in results:
            delivery = result.delivery
            if result.delivered:
                states.append("delivered")
                next_attempts.append(None)
                retry_since.append(delivery.retry_since)
                delivered_at.append(result.attempted_at)
                continue
            since = delivery.retry_since or result.attempted_at
            due = next_attempt(
                failed_at=result.attempted_at,
                retry_since=since,
                attempts=delivery.attempts + 1,
                window=window,
                base_seconds=settings.webhook_retry_base_seconds,
                max_seconds=settings.webhook_retry_max_seconds,
            )
            states.append("retrying" if due else "failed")
            next_attempts.append(due)
            retry_since.append(since)
            delivered_at.append(None)
            if due is None:
                exhausted.append(result)
        async with self.database.transaction() as connection:
            numbered = await connection.fetch(
                _RECORD,
                [r.delivery.id for r in results],
                states,
                next_attempts,
                retry_since,
                [r.status_code for r in results],
                [r.error for r in results],
                delivered_at,
            )
            attempt_of = {row["id"]: row["attempts"] for row in numbered}
            await connection.execute(
                _ATTEMPTS,
                [r.delivery.id for r in results],
                [attempt_of.get(r.delivery.id, r.delivery.attempts + 1) for r in results],
                [r.attempted_at for r in results],
                [r.status_code for r in results],
                [r.error for r in results],
                [r.duration_ms for r in results],
            )
            for result in exhausted:
                await self._disable(connection, result)
            uow = UnitOfWork(connection)
            entries = [_audit_entry(r) for r in results if r.delivered and r.delivery.client_id]
            if entries:
                await self.audit_log.record(uow, entries)
            await uow.flush()

    async def _disable(self, connection: asyncpg.Connection, result: Result) -> None:
        delivery = result.delivery
        row = await connection.fetchrow(_DISABLE, delivery.subscription_id, result.attempted_at)
        if row is None:
            return  # disabled already (by its owner, or another delivery's failure)
        await connection.execute(_FAIL_WAITING, delivery.subscription_id, delivery.id)
        disabled = Disabled(
            subscription_id=delivery.subscription_id,
            organization_id=row["organization_id"],
            created_by=row["created_by"],
            delivery_id=delivery.id,
            at=result.attempted_at,
        )
        log.warning(
            "webhook subscription disabled: a delivery failed for the whole retry window",
            extra={
                "subscription_id": str(delivery.subscription_id),
                "delivery_id": str(delivery.id),
            },
        )
        await self.on_disabled(connection, disabled)


def _claimed(row: asyncpg.Record) -> Claimed:
    secrets = (row["secret"],) + ((row["previous_secret"],) if row["previous_secret"] else ())
    return Claimed(
        id=row["id"],
        subscription_id=row["subscription_id"],
        organization_id=row["organization_id"],
        event_type=row["event_type"],
        client_id=row["client_id"],
        consent_purpose=row["consent_purpose"],
        payload=row["payload"],
        attempts=row["attempts"],
        retry_since=row["retry_since"],
        url=row["url"],
        secrets=secrets,
    )


def _audit_entry(result: Result) -> AuditEntry:
    """A delivered event about a client: those facts (ids and codes) went to an organisation's
    system. The actor is the subscription (an organisation's machine client)."""
    delivery = result.delivery
    return AuditEntry.new(
        actor_id=f"webhook:{delivery.subscription_id}",
        actor_roles=["integration"],
        actor_organization_id=delivery.organization_id,
        action="webhook.deliver",
        resource_type="webhook_delivery",
        resource_id=str(delivery.id),
        client_id=delivery.client_id,
        outcome=Outcome.ALLOWED,
        request_id=None,
        source_address=None,
        purpose=delivery.consent_purpose,
        break_glass_reason=None,
    )


async def run_webhook_sender(context: LoopContext) -> None:
    from services.notifications.webhooks.owner import tell_owner

    await WebhookSender(context, on_disabled=tell_owner).run()
