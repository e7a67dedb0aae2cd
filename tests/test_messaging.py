"""The messaging guarantees, against the real database and broker: outbox relay and consumer
runner, on a scratch schema of their own so the services' relays do not interfere."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from prometheus_client import REGISTRY
from sqlalchemy.ext.asyncio import create_async_engine

from shared.db.database import Database
from shared.db.migrations import sqlalchemy_url
from shared.db.provisioning import provision_service
from shared.events.contracts import ClientRegistered, Topic
from shared.events.envelope import Event, OutgoingEvent, kafka_headers, source_of
from shared.messaging import outbox
from shared.messaging.consumer import ConsumerRunner, Handler
from shared.messaging.kafka import create_topics, producer
from shared.messaging.relay import OutboxRelay, OutboxRow, leader_lock_key
from shared.messaging.tables import create_messaging_tables_v1
from shared.settings import Settings, owner_role
from tests.support import eventually, header, read_topic

pytestmark = pytest.mark.asyncio

SCRATCH = "msgtest"


@pytest.fixture(scope="module")
async def scratch(settings: Settings) -> AsyncIterator[Database]:
    await provision_service(
        settings.database_url, service=SCRATCH, password=settings.service_db_password
    )
    engine = create_async_engine(sqlalchemy_url(settings.database_url))
    async with engine.begin() as connection:
        await connection.exec_driver_sql(f'SET ROLE "{owner_role(SCRATCH)}"')
        await connection.run_sync(create_messaging_tables_v1, SCRATCH)
    await engine.dispose()
    database = Database(settings.database_url_for(SCRATCH), schema=SCRATCH)
    await database.connect()
    yield database
    await database.close()


def scratch_relay(scratch: Database, settings: Settings) -> OutboxRelay:
    """A relay of the scratch schema. Its `ClientRegistered` events travel on intake's topic,
    where consumers accept them only from intake, so it speaks as intake."""
    relay = OutboxRelay(service=SCRATCH, database=scratch, settings=settings)
    relay.source = source_of("intake")
    return relay


def registered(client_id: UUID | None = None) -> OutgoingEvent:
    return OutgoingEvent.of(
        ClientRegistered(
            client_id=client_id or uuid4(), preferred_language="en", registered_at=datetime.now(UTC)
        )
    )


async def enqueue(database: Database, *events: OutgoingEvent) -> None:
    async with database.transaction() as connection:
        await outbox.enqueue(connection, *events)


class Recorder:
    """A handler that records the events it handled (for the ids a test cares about)."""

    def __init__(self, wanted: Callable[[Event], bool] | None = None) -> None:
        self.handled: list[Event] = []
        self.wanted = wanted or (lambda _event: True)

    async def __call__(self, connection: asyncpg.Connection, event: Event) -> None:
        if self.wanted(event):
            self.handled.append(event)

    def ids(self) -> list[str]:
        return [event.id for event in self.handled]


async def dead_letter_topic(settings: Settings) -> str:
    topic = f"casework.test-{secrets.token_hex(4)}.dlq"
    await create_topics(settings, [topic])
    return topic


class RunningConsumer:
    def __init__(self, runner: ConsumerRunner) -> None:
        self.runner = runner
        self.task = asyncio.create_task(runner.run())

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def start_consumer(
    settings: Settings,
    database: Database,
    handler: Handler,
    *,
    group: str | None = None,
    dead_letter: str | None = None,
) -> RunningConsumer:
    runner = ConsumerRunner(
        group=group or f"test-{secrets.token_hex(4)}",
        topics=[Topic.INTAKE_CLIENTS],
        handlers={ClientRegistered.event_type: handler},
        database=database,
        settings=settings,
        dead_letter=dead_letter or await dead_letter_topic(settings),
    )
    consumer = RunningConsumer(runner)
    await asyncio.wait_for(runner.assigned.wait(), 30)
    return consumer


async def wait_for(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    async def probe() -> bool | None:
        return True if condition() else None

    await eventually(probe, timeout=timeout)


async def inbox_rows(database: Database, group: str, event_id: str) -> int:
    async with database.pool.acquire() as connection:
        count: int = await connection.fetchval(
            "SELECT count(*) FROM inbox WHERE consumer_group = $1 AND event_id = $2",
            group,
            event_id,
        )
    return count


async def assert_two_copies_on_the_wire_and_one_effect(
    settings: Settings, scratch: Database, event: OutgoingEvent
) -> None:
    recorder = Recorder(lambda handled: handled.id == str(event.id))
    consumer = await start_consumer(settings, scratch, recorder)
    try:
        on_wire = await read_topic(
            settings,
            Topic.INTAKE_CLIENTS,
            until=lambda records: sum(header(r, "ce_id") == str(event.id) for r in records) == 2,
        )
        await wait_for(lambda: len(recorder.handled) == 1)
        # Wait until the group has committed past both copies: the second one was consumed.
        for copy in (r for r in on_wire if header(r, "ce_id") == str(event.id)):
            await eventually(partial(consumed, settings, consumer.runner.group, copy), interval=0.2)
    finally:
        await consumer.stop()

    assert sum(header(r, "ce_id") == str(event.id) for r in on_wire) == 2
    assert recorder.ids() == [str(event.id)]
    assert await inbox_rows(scratch, consumer.runner.group, str(event.id)) == 1


async def test_the_same_event_delivered_twice_has_one_effect(
    settings: Settings, scratch: Database
) -> None:
    event = registered()
    relay = scratch_relay(scratch, settings)
    await enqueue(scratch, event)
    rows = [row for row in await relay.fetch_unpublished() if row.id == event.id]
    kafka = producer(settings)
    await kafka.start()
    try:
        await relay.send(kafka, rows)
        await relay.send(kafka, rows)
    finally:
        await kafka.stop()

    await assert_two_copies_on_the_wire_and_one_effect(settings, scratch, event)


async def test_a_crash_between_publish_and_mark_duplicates_on_the_wire_not_in_effect(
    settings: Settings, scratch: Database
) -> None:
    event = registered()
    await enqueue(scratch, event)
    crashed = scratch_relay(scratch, settings)
    kafka = producer(settings)
    await kafka.start()
    try:
        rows = await crashed.fetch_unpublished()
        await crashed.send(kafka, rows)  # ... and the process dies before mark_published.
        restarted = scratch_relay(scratch, settings)
        assert await restarted.publish_batch(kafka) >= 1
    finally:
        await kafka.stop()

    await assert_two_copies_on_the_wire_and_one_effect(settings, scratch, event)
    async with scratch.pool.acquire() as connection:
        published_at = await connection.fetchval(
            "SELECT published_at FROM outbox WHERE id = $1", event.id
        )
    assert published_at is not None


async def test_events_of_one_key_arrive_in_the_order_they_were_written(
    settings: Settings, scratch: Database
) -> None:
    client_id = uuid4()
    ours = [registered(client_id) for _ in range(40)]
    for event in ours:
        # Separate transactions, interleaved with other keys' events.
        await enqueue(scratch, event, registered(), registered())
    relay = scratch_relay(scratch, settings)
    relay_task = asyncio.create_task(relay.run())
    recorder = Recorder(lambda handled: handled.subject == str(client_id))
    consumer = await start_consumer(settings, scratch, recorder)
    try:
        await wait_for(lambda: len(recorder.handled) == len(ours))
    finally:
        await consumer.stop()
        relay_task.cancel()
        await asyncio.gather(relay_task, return_exceptions=True)

    assert recorder.ids() == [str(event.id) for event in ours]


async def produce_raw(settings: Settings, key: str, value: bytes, event_id: str) -> None:
    kafka = producer(settings)
    await kafka.start()
    try:
        await kafka.send_and_wait(
            Topic.INTAKE_CLIENTS,
            value=value,
            key=key.encode(),
            headers=kafka_headers(
                event_id=event_id,
                event_type=ClientRegistered.event_type,
                source=source_of("intake"),
                subject=key,
                time=datetime.now(UTC),
                traceparent=None,
            ),
        )
    finally:
        await kafka.stop()


async def test_a_poison_message_goes_to_the_dead_letter_topic_and_the_partition_moves_on(
    settings: Settings, scratch: Database
) -> None:
    client_id = uuid4()
    poison_id = str(uuid4())
    await produce_raw(settings, str(client_id), b'{"client_id": "not json', poison_id)
    follower = registered(client_id)
    relay = scratch_relay(scratch, settings)
    await enqueue(scratch, follower)
    dead_letter = await dead_letter_topic(settings)
    recorder = Recorder(lambda handled: handled.subject == str(client_id))
    kafka = producer(settings)
    await kafka.start()
    consumer = await start_consumer(settings, scratch, recorder, dead_letter=dead_letter)
    try:
        await relay.publish_batch(kafka)
        await wait_for(lambda: recorder.ids() == [str(follower.id)])
        dead = await read_topic(settings, dead_letter, until=lambda records: len(records) >= 1)
    finally:
        await consumer.stop()
        await kafka.stop()

    assert len(dead) == 1
    assert header(dead[0], "ce_id") == poison_id
    assert dead[0].value == b'{"client_id": "not json'
    assert dead[0].key == str(client_id).encode()
    assert "UndecodableEvent" in (header(dead[0], "dlq_error") or "")
    assert header(dead[0], "dlq_original_topic") == Topic.INTAKE_CLIENTS
    assert header(dead[0], "dlq_consumer_group") == consumer.runner.group
    assert await inbox_rows(scratch, consumer.runner.group, poison_id) == 0


async def test_a_handler_that_keeps_failing_dead_letters_the_event_after_retries(
    settings: Settings, scratch: Database
) -> None:
    doomed, healthy = registered(), registered()
    attempts: list[str] = []

    async def handler(connection: asyncpg.Connection, event: Event) -> None:
        if event.id == str(doomed.id):
            attempts.append(event.id)
            # The handler's own writes must be rolled back with the failed attempt.
            await connection.execute(
                "INSERT INTO inbox (consumer_group, event_id, event_type) VALUES ('x', $1, 'y')",
                f"side-effect-{event.id}",
            )
            raise ValueError("this event can never be handled")
        await recorder(connection, event)

    recorder = Recorder(lambda handled: handled.id == str(healthy.id))
    await enqueue(scratch, doomed)
    await enqueue(scratch, healthy)
    dead_letter = await dead_letter_topic(settings)
    relay = scratch_relay(scratch, settings)
    kafka = producer(settings)
    await kafka.start()
    consumer = await start_consumer(settings, scratch, handler, dead_letter=dead_letter)
    try:
        await relay.publish_batch(kafka)
        await wait_for(lambda: recorder.ids() == [str(healthy.id)])
        dead = await read_topic(
            settings,
            dead_letter,
            until=lambda records: any(header(r, "ce_id") == str(doomed.id) for r in records),
        )
    finally:
        await consumer.stop()
        await kafka.stop()

    assert len(attempts) == settings.consumer_max_attempts
    letter = next(r for r in dead if header(r, "ce_id") == str(doomed.id))
    assert header(letter, "dlq_attempts") == str(settings.consumer_max_attempts)
    assert "ValueError: this event can never be handled" in (header(letter, "dlq_error") or "")
    async with scratch.pool.acquire() as connection:
        leaked = await connection.fetchval(
            "SELECT count(*) FROM inbox WHERE event_id = $1", f"side-effect-{doomed.id}"
        )
    assert leaked == 0


async def test_a_transient_failure_is_retried_in_place_and_has_one_effect(
    settings: Settings, scratch: Database
) -> None:
    event = registered()
    failures_left = [3]
    recorder = Recorder(lambda handled: handled.id == str(event.id))

    async def flaky(connection: asyncpg.Connection, handled: Event) -> None:
        if handled.id == str(event.id) and failures_left[0] > 0:
            failures_left[0] -= 1
            raise ConnectionResetError("database went away")
        await recorder(connection, handled)

    await enqueue(scratch, event)
    relay = scratch_relay(scratch, settings)
    kafka = producer(settings)
    await kafka.start()
    dead_letter = await dead_letter_topic(settings)
    consumer = await start_consumer(settings, scratch, flaky, dead_letter=dead_letter)
    try:
        await relay.publish_batch(kafka)
        await wait_for(lambda: len(recorder.handled) == 1)
    finally:
        await consumer.stop()
        await kafka.stop()

    # More transient failures than consumer_max_attempts allows for a faulty event:
    # transient errors are not the event's fault and never send it to the dead-letter topic.
    assert failures_left == [0]
    assert recorder.ids() == [str(event.id)]


async def committed_offset(settings: Settings, group: str, partition: TopicPartition) -> int:
    probe = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
    )
    await probe.start()
    try:
        return await probe.committed(partition) or 0
    finally:
        await probe.stop()


async def test_a_shutdown_mid_handler_commits_neither_the_effect_nor_the_offset(
    settings: Settings, scratch: Database
) -> None:
    event = registered()
    entered = asyncio.Event()
    group = f"test-{secrets.token_hex(4)}"
    seen: list[tuple[int, int]] = []

    async def blocking(connection: asyncpg.Connection, handled: Event) -> None:
        if handled.id == str(event.id):
            await connection.execute(
                "INSERT INTO inbox (consumer_group, event_id, event_type) VALUES ('x', $1, 'y')",
                f"half-done-{event.id}",
            )
            entered.set()
            await asyncio.Event().wait()  # never finishes: the worker is stopped here

    await enqueue(scratch, event)
    relay = scratch_relay(scratch, settings)
    kafka = producer(settings)
    await kafka.start()
    try:
        await relay.publish_batch(kafka)
    finally:
        await kafka.stop()
    records = await read_topic(
        settings,
        Topic.INTAKE_CLIENTS,
        until=lambda records: any(header(r, "ce_id") == str(event.id) for r in records),
    )
    record = next(r for r in records if header(r, "ce_id") == str(event.id))
    seen.append((record.partition, record.offset))
    partition = TopicPartition(record.topic, record.partition)

    consumer = await start_consumer(settings, scratch, blocking, group=group)
    await asyncio.wait_for(entered.wait(), 30)
    await consumer.stop()

    assert await committed_offset(settings, group, partition) <= record.offset
    assert await inbox_rows(scratch, group, str(event.id)) == 0
    assert await inbox_rows(scratch, "x", f"half-done-{event.id}") == 0

    recorder = Recorder(lambda handled: handled.id == str(event.id))
    restarted = await start_consumer(settings, scratch, recorder, group=group)
    try:
        await wait_for(lambda: len(recorder.handled) == 1)
        await eventually(
            lambda: _at_least(committed_offset(settings, group, partition), record.offset + 1)
        )
    finally:
        await restarted.stop()
    assert await inbox_rows(scratch, group, str(event.id)) == 1


async def consumed(
    settings: Settings, group: str, record: ConsumerRecord[bytes, bytes]
) -> bool | None:
    """The group has committed past this record: it was processed (and committed after)."""
    partition = TopicPartition(record.topic, record.partition)
    return True if await committed_offset(settings, group, partition) > record.offset else None


async def _at_least(offset: Awaitable[int], minimum: int) -> bool | None:
    return True if await offset >= minimum else None


async def test_only_one_relay_leads_and_a_standby_takes_over(
    settings: Settings, scratch: Database
) -> None:
    first = scratch_relay(scratch, settings)
    second = scratch_relay(scratch, settings)
    first_task = asyncio.create_task(first.run())
    await wait_for(lambda: first.is_leader)
    second_task = asyncio.create_task(second.run())
    try:
        # The standby asked for the lock and was refused while the first one leads.
        await wait_for(lambda: second.lock_refusals >= 1)
        assert first.is_leader and not second.is_leader

        first_task.cancel()
        await asyncio.gather(first_task, return_exceptions=True)
        await wait_for(lambda: second.is_leader, timeout=10)

        event = registered()
        await enqueue(scratch, event)
        await read_topic(
            settings,
            Topic.INTAKE_CLIENTS,
            until=lambda records: any(header(r, "ce_id") == str(event.id) for r in records),
        )
    finally:
        second_task.cancel()
        await asyncio.gather(second_task, return_exceptions=True)


async def test_a_handler_that_succeeds_on_its_last_allowed_attempt_is_not_dead_lettered(
    settings: Settings, scratch: Database
) -> None:
    event = registered()
    failures_left = [settings.consumer_max_attempts - 1]
    recorder = Recorder(lambda handled: handled.id == str(event.id))

    async def nearly_hopeless(connection: asyncpg.Connection, handled: Event) -> None:
        if handled.id == str(event.id) and failures_left[0] > 0:
            failures_left[0] -= 1
            raise ValueError("not yet")
        await recorder(connection, handled)

    await enqueue(scratch, event)
    relay = OutboxRelay(service=SCRATCH, database=scratch, settings=settings)
    kafka = producer(settings)
    await kafka.start()
    consumer = await start_consumer(settings, scratch, nearly_hopeless)
    try:
        await relay.publish_batch(kafka)
        await wait_for(lambda: len(recorder.handled) == 1)
    finally:
        await consumer.stop()
        await kafka.stop()

    # Dead-lettering would have come instead of the successful attempt, never after it.
    assert failures_left == [0]
    assert recorder.ids() == [str(event.id)]
    dead_letter = consumer.runner.dead_letter_topic
    letters = await messages_on(settings, dead_letter)  # the topic's history: earlier poison
    dead = await read_topic(settings, dead_letter, until=lambda records: len(records) >= letters)
    assert str(event.id) not in [header(record, "ce_id") for record in dead]


async def messages_on(settings: Settings, topic: str) -> int:
    reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await reader.start()
    try:
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or ()]
        assert partitions, f"{topic} does not exist"
        return sum((await reader.end_offsets(partitions)).values())
    finally:
        await reader.stop()


def stalled_seconds(group: str) -> float:
    value = REGISTRY.get_sample_value("casework_consumer_stalled_seconds", {"group": group})
    return value or 0.0


async def test_transient_retries_are_bounded_then_the_message_is_dead_lettered(
    settings: Settings, scratch: Database
) -> None:
    impatient = settings.model_copy(update={"consumer_max_transient_seconds": 0.5})
    stuck, follower = registered(), registered()
    stalls_seen: list[float] = []
    recorder = Recorder(lambda handled: handled.id == str(follower.id))
    group = f"test-{secrets.token_hex(4)}"

    async def database_never_back(connection: asyncpg.Connection, handled: Event) -> None:
        if handled.id == str(stuck.id):
            stalls_seen.append(stalled_seconds(group))
            raise ConnectionResetError("database went away")
        await recorder(connection, handled)

    await enqueue(scratch, stuck)
    await enqueue(scratch, follower)
    relay = OutboxRelay(service=SCRATCH, database=scratch, settings=impatient)
    kafka = producer(impatient)
    await kafka.start()
    consumer = await start_consumer(impatient, scratch, database_never_back, group=group)
    try:
        await relay.publish_batch(kafka)
        await wait_for(lambda: recorder.ids() == [str(follower.id)])
        dead = await read_topic(
            impatient,
            consumer.runner.dead_letter_topic,
            until=lambda records: any(header(r, "ce_id") == str(stuck.id) for r in records),
        )
    finally:
        await consumer.stop()
        await kafka.stop()

    letter = next(r for r in dead if header(r, "ce_id") == str(stuck.id))
    assert "ConnectionResetError: database went away" in (header(letter, "dlq_error") or "")
    # The stall was exported while it lasted, and cleared when the partition moved on.
    assert max(stalls_seen) > 0
    assert stalled_seconds(group) == 0
    assert await inbox_rows(scratch, group, str(stuck.id)) == 0


class FreezableProxy:
    """A TCP proxy to PostgreSQL. freeze() stops it forwarding anything, in either direction,
    without closing a socket: to both ends the other side has vanished, as a host that lost
    power or its network would."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.frozen = False
        self._never = asyncio.Event()
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(self.host, self.port)
        self._writers += [writer, upstream_writer]
        await asyncio.gather(
            self._pipe(reader, upstream_writer),
            self._pipe(upstream_reader, writer),
            return_exceptions=True,
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(65536)
            if self.frozen:
                await self._never.wait()  # until close(): then the writer is closed too
            if not data or writer.is_closing():
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    def freeze(self) -> None:
        self.frozen = True

    async def close(self) -> None:
        for writer in self._writers:
            writer.close()
        self._never.set()
        if self._server is not None:
            self._server.close()


async def test_a_leader_whose_connection_vanishes_stops_publishing_and_a_standby_takes_over(
    settings: Settings, scratch: Database
) -> None:
    fenced = settings.model_copy(update={"relay_lock_check_seconds": 0.5})
    target = urlsplit(scratch.dsn)
    proxy = FreezableProxy(target.hostname or "127.0.0.1", target.port or 5432)
    proxied = Database(scratch.dsn, schema=SCRATCH)
    await proxied.connect()
    # Only the leader's own session (connect_dedicated) goes through the proxy: the lock lives
    # there; the pool's short reads and writes are not what this test cuts.
    proxied.dsn = scratch.dsn.replace(f":{target.port}/", f":{await proxy.start()}/")
    old = OutboxRelay(service=SCRATCH, database=proxied, settings=fenced)
    standby = OutboxRelay(service=SCRATCH, database=scratch, settings=fenced)
    sent_after_cut: list[OutboxRow] = []
    send = old.send

    async def spy(kafka: AIOKafkaProducer, rows: list[OutboxRow]) -> None:
        if proxy.frozen:
            sent_after_cut.extend(rows)
        await send(kafka, rows)

    old.send = spy  # type: ignore[method-assign,assignment]
    old_task = asyncio.create_task(old.run())
    await wait_for(lambda: old.is_leader)
    standby_task = asyncio.create_task(standby.run())
    try:
        proxy.freeze()
        # The old leader cannot confirm its lock in time: it stops leading by itself.
        await wait_for(lambda: not old.is_leader, timeout=10)
        # PostgreSQL frees the lock once the vanished session is gone (its keepalives expire;
        # here: the proxy answers them, so end the backend the way the server would).
        async with asyncpg.create_pool(settings.database_url, min_size=1, max_size=1) as admin:
            ended = await admin.fetchval(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND objid = $1::bigint::oid AND granted",
                leader_lock_key(SCRATCH),
            )
        assert ended is True
        await wait_for(lambda: standby.is_leader, timeout=10)

        event = registered()
        await enqueue(scratch, event)
        await read_topic(
            settings,
            Topic.INTAKE_CLIENTS,
            until=lambda records: any(header(r, "ce_id") == str(event.id) for r in records),
        )
    finally:
        await proxy.close()  # first: whatever waits on the frozen connections sees them end
        proxied.pool.terminate()
        for task in (old_task, standby_task):
            task.cancel()
        await asyncio.wait([old_task, standby_task], timeout=10)
    assert sent_after_cut == []
    assert not old.is_leader
