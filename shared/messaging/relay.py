"""The outbox relay: publishes a service's committed events to Kafka, in order, at least once.

One relay is active per service: a session-level advisory lock elects it, and a standby takes
over when the leader's connection dies. It reads every unpublished row in `seq` order (never
"after the last seq seen": seq order is not commit order), sends them, waits for the broker's
acknowledgement, then marks them published. A crash between send and mark publishes the rows
again; consumers deduplicate by event id. LISTEN/NOTIFY wakes it on commit; a slow poll is the
safety net. While the broker is away it retries with backoff and nothing is lost: the rows stay.

Fencing: the leader's session sends TCP keepalives (PostgreSQL frees the lock of a leader whose
host vanished), and before each batch the leader checks, with a deadline, that its session
still holds the lock; when it does not, or the check cannot be answered in time, it stops
publishing at once and lets go of the connection. A broker that lost its log is noticed and
healed before the first batch and every `relay_broker_check_seconds` (lost_log.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from shared.db.database import Database
from shared.events.envelope import encode_data, kafka_headers, source_of
from shared.messaging.kafka import producer as make_producer
from shared.messaging.lost_log import LostLogGuard
from shared.messaging.tables import outbox_channel
from shared.metrics import (
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_SECONDS,
    OUTBOX_PUBLISHED,
    OUTBOX_REPLAYED,
    RELAY_FAILURES,
)
from shared.settings import Settings

log = logging.getLogger(__name__)

_UNPUBLISHED = """
SELECT id, topic, aggregateid, type, payload, headers, created_at
FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT $1
"""
_MARK_PUBLISHED = "UPDATE outbox SET published_at = now() WHERE id = ANY($1::uuid[])"
_PURGE = "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)"
# Rows published within the retention window, unpublished again: the relay sends them anew.
_REPLAY = """
UPDATE outbox SET published_at = NULL
WHERE published_at IS NOT NULL AND published_at > now() - make_interval(secs => $1)
"""
# The advisory lock as pg_locks shows it: a bigint key is split into classid (high 32 bits)
# and objid (low 32 bits), with objsubid 1.
_LOCK_ROW = """
locktype = 'advisory' AND granted AND objsubid = 1
AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
AND ((classid::bigint << 32) | objid::bigint) = $1
"""
_HOLDS_LOCK = f"SELECT EXISTS (SELECT 1 FROM pg_locks WHERE pid = pg_backend_pid() AND {_LOCK_ROW})"
_ANY_HOLDS_LOCK = f"SELECT EXISTS (SELECT 1 FROM pg_locks WHERE {_LOCK_ROW})"
_BACKLOG = """
SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)
FROM outbox WHERE published_at IS NULL
"""


@dataclass(frozen=True)
class OutboxRow:
    id: UUID
    topic: str
    aggregate_id: str
    type: str
    payload: dict[str, Any]
    headers: dict[str, Any]
    created_at: datetime


def leader_lock_key(service: str) -> int:
    return zlib.crc32(f"casework-outbox-relay:{service}".encode())


async def outbox_backlog(connection: asyncpg.Connection) -> tuple[int, float]:
    count, oldest = await connection.fetchrow(_BACKLOG)
    return int(count), float(oldest)


class LeadershipLost(Exception):
    """The leader's session no longer holds the lock: another relay may be leading."""


class OutboxRelay:
    def __init__(
        self,
        *,
        service: str,
        database: Database,
        settings: Settings,
        topics: Sequence[str] = (),
    ) -> None:
        """`topics`: every declared topic, watched for a broker that lost its log. Empty (tests
        that drive publish_batch themselves): the relay does not watch."""
        self.service = service
        self.database = database
        self.settings = settings
        self.source = source_of(service)
        self.is_leader = False
        # How often this relay asked for the leader lock and was refused (another leads).
        self.lock_refusals = 0
        self.lost_log = LostLogGuard(settings=settings, topics=topics, replay=self.replay)
        self._wake = asyncio.Event()

    async def run(self) -> None:
        """Run until cancelled: wait for leadership, then publish; start over on any failure."""
        backoff = 0.5
        while True:
            try:
                await self._lead()
            except asyncio.CancelledError:
                raise
            except (
                KafkaError,
                OSError,
                asyncpg.PostgresError,
                asyncpg.InterfaceError,
                LeadershipLost,
            ) as error:
                RELAY_FAILURES.labels(self.service).inc()
                log.warning("outbox relay failed; retrying", extra={"error": repr(error)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            else:
                backoff = 0.5

    async def _lead(self) -> None:
        connection = await self.database.connect_dedicated(
            {
                "tcp_keepalives_idle": str(self.settings.relay_keepalive_idle_seconds),
                "tcp_keepalives_interval": str(self.settings.relay_keepalive_interval_seconds),
                "tcp_keepalives_count": str(self.settings.relay_keepalive_count),
            }
        )
        try:
            while not await connection.fetchval(
                "SELECT pg_try_advisory_lock($1)", leader_lock_key(self.service)
            ):
                self.is_leader = False
                self.lock_refusals += 1
                await asyncio.sleep(2.0)
            self.is_leader = True
            log.info("outbox relay is the leader", extra={"service": self.service})
            await connection.add_listener(
                outbox_channel(self.database.schema), lambda *_: self._wake.set()
            )
            producer = make_producer(self.settings)
            try:
                await producer.start()
                await self._publish_until_cancelled(connection, producer)
            finally:
                with contextlib.suppress(KafkaError, OSError):
                    await producer.stop()
        finally:
            self.is_leader = False
            # A bounded close: on a connection that hangs, close aborts it after the timeout.
            with contextlib.suppress(OSError, asyncpg.InterfaceError, asyncpg.PostgresError):
                await connection.close(timeout=1.0)

    async def _confirm_leadership(self, connection: asyncpg.Connection) -> None:
        """Fencing: a leader whose session lost the lock, or cannot tell in time, stops here
        (TimeoutError is an OSError, which run() handles like any lost connection)."""
        held = await connection.fetchval(
            _HOLDS_LOCK,
            leader_lock_key(self.service),
            timeout=self.settings.relay_lock_check_seconds,
        )
        if not held:
            raise LeadershipLost(f"the {self.service} relay's session no longer holds the lock")

    async def _publish_until_cancelled(
        self, connection: asyncpg.Connection, producer: AIOKafkaProducer
    ) -> None:
        loop = asyncio.get_running_loop()
        next_purge = next_gauge = next_broker_check = loop.time()
        while True:
            await self._confirm_leadership(connection)
            if self.lost_log.topics and loop.time() >= next_broker_check:
                await self.lost_log.check(producer)
                next_broker_check = loop.time() + self.settings.relay_broker_check_seconds
            self._wake.clear()
            published = await self.publish_batch(producer)
            if published == self.settings.outbox_batch_size:
                continue
            if loop.time() >= next_gauge:
                await self.measure_backlog()
                next_gauge = loop.time() + 5
            if loop.time() >= next_purge:
                await self.purge_published()
                next_purge = loop.time() + 600
            wait = self.settings.outbox_poll_seconds
            if self.lost_log.topics:
                wait = min(wait, max(next_broker_check - loop.time(), 0.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def leader_state(self) -> str:
        """For readiness: "ok" when this relay leads or another session holds the lock."""
        if self.is_leader:
            return "ok"
        async with self.database.pool.acquire() as connection:
            held = await connection.fetchval(_ANY_HOLDS_LOCK, leader_lock_key(self.service))
        return "ok" if held else "no leader"

    async def replay(self) -> int:
        """Send every row published within the retention window again (see lost_log.py)."""
        async with self.database.pool.acquire() as connection:
            status = await connection.execute(_REPLAY, self.settings.outbox_retention_hours * 3600)
        replayed = int(status.split()[-1])
        OUTBOX_REPLAYED.labels(self.service).inc(replayed)
        self._wake.set()
        return replayed

    async def fetch_unpublished(self) -> list[OutboxRow]:
        async with self.database.pool.acquire() as connection:
            rows = await connection.fetch(_UNPUBLISHED, self.settings.outbox_batch_size)
        return [
            OutboxRow(
                id=row["id"],
                topic=row["topic"],
                aggregate_id=row["aggregateid"],
                type=row["type"],
                payload=row["payload"],
                headers=row["headers"],
                created_at=row["created_at"],
            )
            for row in rows
        ]

    async def send(self, producer: AIOKafkaProducer, rows: list[OutboxRow]) -> None:
        """Send rows and wait until the broker acknowledged every one of them."""
        deliveries = [
            await producer.send(
                row.topic,
                value=encode_data(row.payload),
                key=row.aggregate_id.encode(),
                headers=kafka_headers(
                    event_id=str(row.id),
                    event_type=row.type,
                    source=self.source,
                    subject=row.aggregate_id,
                    time=row.created_at,
                    traceparent=row.headers.get("traceparent"),
                ),
            )
            for row in rows
        ]
        await asyncio.gather(*deliveries)

    async def mark_published(self, rows: list[OutboxRow]) -> None:
        async with self.database.pool.acquire() as connection:
            await connection.execute(_MARK_PUBLISHED, [row.id for row in rows])

    async def publish_batch(self, producer: AIOKafkaProducer) -> int:
        rows = await self.fetch_unpublished()
        if rows:
            await self.send(producer, rows)
            await self.mark_published(rows)
            OUTBOX_PUBLISHED.labels(self.service).inc(len(rows))
        return len(rows)

    async def measure_backlog(self) -> None:
        async with self.database.pool.acquire() as connection:
            count, oldest = await outbox_backlog(connection)
        OUTBOX_BACKLOG.labels(self.service).set(count)
        OUTBOX_OLDEST_SECONDS.labels(self.service).set(oldest)

    async def purge_published(self) -> None:
        async with self.database.pool.acquire() as connection:
            await connection.execute(_PURGE, self.settings.outbox_retention_hours * 3600)
