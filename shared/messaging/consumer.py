"""The consumer runner: one consumer group per service, exactly-once effects over at-least-once delivery.

For each message, in partition order: decode it; run its handler and record the event id in the
inbox in one database transaction (a duplicate finds its id there and has no effect); commit the
database; only then commit the Kafka offset. Auto-commit is off, so a shutdown or crash
mid-message never commits it. Transient failures (database or network unreachable) retry in
place with backoff, holding the partition so order is kept, for at most
`consumer_max_transient_seconds` (the stall shows as casework_consumer_stalled_seconds); then
the message is dead-lettered like any other. A message that cannot be decoded, or whose
handler keeps failing, goes to the group's dead-letter topic with the error in its headers,
and the partition moves on.

A broker that lost its log (lost_log.py) numbers every partition from 0 again, and the relays
replay their outboxes into it. A position this member held from before the loss could then
skip replayed events (fetching at offset N once the new log has grown past N): so the runner
watches the broker epoch too, and on a new one rewinds every partition it holds to the
beginning; the inbox makes the re-reads harmless.

Readiness: the runner is ready once its group has completed a rebalance (with partitions, or
as a standby member when the group has more members than partitions) and not during one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping

import asyncpg
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError, KafkaError

from shared.db.database import Database
from shared.events.contracts import dead_letter_topic
from shared.events.envelope import Event, UndecodableEvent, UnknownEventType, decode
from shared.messaging.kafka import broker_epoch, client_options
from shared.messaging.kafka import producer as make_producer
from shared.metrics import (
    CONSUMER_LAG,
    CONSUMER_MESSAGES,
    CONSUMER_RETRIES,
    CONSUMER_STALLED_SECONDS,
)
from shared.settings import Settings
from shared.tracing import continue_or_start, current_trace

log = logging.getLogger(__name__)

Handler = Callable[[asyncpg.Connection, Event], Awaitable[None]]

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)


@contextlib.contextmanager
def _traced(event: Event) -> Iterator[None]:
    """Continue the producer's trace for the work done on this event."""
    token = current_trace.set(continue_or_start(event.traceparent))
    try:
        yield
    finally:
        current_trace.reset(token)


class _Membership(ConsumerRebalanceListener):  # type: ignore[misc]
    """Whether the group's latest rebalance has completed for this member."""

    def __init__(self) -> None:
        self.joined = False
        self.partitions: frozenset[TopicPartition] = frozenset()

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.joined = False

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.partitions = frozenset(assigned)
        self.joined = True


_CLAIM = """
INSERT INTO inbox (consumer_group, event_id, event_type) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
"""


class ConsumerRunner:
    def __init__(
        self,
        *,
        group: str,
        topics: list[str],
        handlers: Mapping[str, Handler],
        database: Database,
        settings: Settings,
        dead_letter: str | None = None,
    ) -> None:
        self.group = group
        self.topics = topics
        self.handlers = dict(handlers)
        self.database = database
        self.settings = settings
        self.dead_letter_topic = dead_letter or dead_letter_topic(group)
        self.assigned = asyncio.Event()
        self.membership = _Membership()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._epoch_changed = asyncio.Event()

    async def run(self) -> None:
        """Consume until cancelled. Cancellation mid-message rolls it back and leaves it uncommitted."""
        self.membership = _Membership()
        self._consumer = AIOKafkaConsumer(
            *self.topics,
            **client_options(self.settings),
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            fetch_max_wait_ms=self.settings.kafka_fetch_max_wait_ms,
        )
        self._consumer.subscribe(self.topics, listener=self.membership)
        self._producer = make_producer(self.settings)
        watcher = asyncio.create_task(self._watch_broker_epoch())
        try:
            # Inside the try: a stop while still connecting must close both clients too.
            await self._start_with_retry()
            while True:
                if self._epoch_changed.is_set():
                    await self._rewind()
                batches = await self._consumer.getmany(timeout_ms=500, max_records=200)
                if self._consumer.assignment():
                    self.assigned.set()
                for partition, messages in batches.items():
                    await self.process_batch(messages)
                    # Every message of the batch is committed in the database by now. A stop
                    # before this line redelivers them, and the inbox makes that harmless.
                    await self._commit(partition, messages[-1].offset + 1)
                    await self._record_lag(partition)
        finally:
            watcher.cancel()
            # Shielded: a second cancellation (the worker cancelling its loops again on the way
            # out) must not leave this member in the group, still heartbeating, holding up the
            # next rebalance, nor its producer open.
            await asyncio.shield(self._stop_clients(self._consumer, self._producer))

    async def _watch_broker_epoch(self) -> None:
        """Set `_epoch_changed` whenever the broker's epoch differs from the one seen before."""
        known: str | None = None
        while True:
            try:
                epoch = await asyncio.wait_for(
                    broker_epoch(self.settings), self.settings.relay_broker_check_seconds * 2
                )
            except (KafkaError, OSError, TimeoutError):
                epoch = None  # unreachable, or lost and not yet re-stamped: look again later
            if epoch is not None:
                if known is not None and epoch != known:
                    self._epoch_changed.set()
                known = epoch
            await asyncio.sleep(self.settings.relay_broker_check_seconds)

    async def _rewind(self) -> None:
        assert self._consumer is not None
        self._epoch_changed.clear()
        partitions = self._consumer.assignment()
        if partitions:
            await self._consumer.seek_to_beginning(*partitions)
        log.warning(
            "the broker lost its log; reading every partition again from the beginning",
            extra={"group": self.group, "partitions": len(partitions)},
        )

    @staticmethod
    async def _stop_clients(consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        with contextlib.suppress(KafkaError, OSError):
            await consumer.stop()
        with contextlib.suppress(KafkaError, OSError):
            await producer.stop()

    def holds_every_partition(self) -> bool:
        """Whether this member holds every partition of its topics: the group's only member
        (a member that died without leaving holds some until the broker evicts it)."""
        consumer = self._consumer
        if consumer is None:
            return False
        wanted = {
            TopicPartition(topic, partition)
            for topic in self.topics
            for partition in consumer.partitions_for_topic(topic) or ()
        }
        return bool(wanted) and consumer.assignment() == wanted

    async def backlog(self) -> int:
        """Messages on this member's partitions not handled and committed yet (0 without
        partitions): the end offsets less the group's committed offsets."""
        consumer = self._consumer
        partitions = list(consumer.assignment()) if consumer is not None else []
        if consumer is None or not partitions:
            return 0
        ends = await consumer.end_offsets(partitions)
        behind = 0
        for partition in partitions:
            committed = await consumer.committed(partition)
            behind += max(ends[partition] - (committed or 0), 0)
        return behind

    def state(self) -> str:
        """For readiness: "ok" once the group's latest rebalance completed for this member."""
        if not self.membership.joined:
            return "joining"
        return "ok" if self.membership.partitions else "ok (standby: no partitions)"

    async def _start_with_retry(self) -> None:
        assert self._consumer is not None and self._producer is not None
        delay = 0.5
        while True:
            try:
                await self._consumer.start()
                await self._producer.start()
                return
            except (KafkaError, OSError) as error:
                log.warning("broker unreachable; retrying", extra={"error": repr(error)})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _commit(self, partition: TopicPartition, offset: int) -> None:
        assert self._consumer is not None
        try:
            await self._consumer.commit({partition: offset})
        except CommitFailedError:
            # The partition moved to another member during a rebalance; it will see the
            # message again and the inbox will make the repeat a no-op.
            log.info("offset commit lost to a rebalance", extra={"partition": str(partition)})

    async def _record_lag(self, partition: TopicPartition) -> None:
        assert self._consumer is not None
        highwater = self._consumer.highwater(partition)
        if highwater is not None:
            position = await self._consumer.position(partition)
            CONSUMER_LAG.labels(self.group, partition.topic, partition.partition).set(
                max(highwater - position, 0)
            )

    def _decode(self, message: ConsumerRecord[bytes, bytes]) -> tuple[Event, Handler] | None:
        """The event and its handler; None for types this group does not handle.
        Raises UndecodableEvent for a message that can never be processed."""
        try:
            event = decode(
                list(message.headers), message.value, topic=message.topic, handled=self.handlers
            )
        except UnknownEventType:
            return None
        handler = self.handlers.get(event.type)
        return (event, handler) if handler is not None else None

    async def process_batch(self, messages: list[ConsumerRecord[bytes, bytes]]) -> None:
        """Handle a partition's batch in one transaction (one commit, not one per message);
        if anything in it fails, roll it back and go message by message, with retries and the
        dead-letter topic, so one bad message costs only itself."""
        work: list[tuple[ConsumerRecord[bytes, bytes], Event, Handler]] = []
        for message in messages:
            try:
                decoded = self._decode(message)
            except UndecodableEvent as error:
                await self.send_to_dead_letter(message, error, attempts=0)
                continue
            if decoded is None:
                CONSUMER_MESSAGES.labels(self.group, "ignored").inc()
            else:
                work.append((message, *decoded))
        failed_at: int | None = None
        if len(work) > 1:
            outcomes: list[str] = []
            try:
                async with self.database.transaction() as connection:
                    for _message, event, handler in work:
                        with _traced(event):
                            outcomes.append(await self._apply(connection, event, handler))
                for outcome in outcomes:
                    CONSUMER_MESSAGES.labels(self.group, outcome).inc()
                return
            except TRANSIENT_ERRORS:
                pass
            except Exception:
                failed_at = len(outcomes)  # the message whose handler raised
        for index, (message, event, handler) in enumerate(work):
            with _traced(event):
                await self._handle_with_retries(
                    message, event, handler, failures=1 if index == failed_at else 0
                )

    async def process(self, message: ConsumerRecord[bytes, bytes]) -> None:
        await self.process_batch([message])

    async def _handle_with_retries(
        self,
        message: ConsumerRecord[bytes, bytes],
        event: Event,
        handler: Handler,
        *,
        failures: int = 0,
    ) -> None:
        """`failures`: attempts already spent (the batch attempt, when it was this message)."""
        if failures >= self.settings.consumer_max_attempts:
            await self.send_to_dead_letter(
                message, RuntimeError("failed in batch"), attempts=failures
            )
            return
        stalled_since: float | None = None
        try:
            while True:
                try:
                    outcome = await self.handle_once(event, handler)
                    CONSUMER_MESSAGES.labels(self.group, outcome).inc()
                    return
                except TRANSIENT_ERRORS as error:
                    # Infrastructure is away, the message is not at fault: wait for it, for
                    # a bounded time, then dead-letter it with the error instead of stalling.
                    now = asyncio.get_running_loop().time()
                    stalled_since = now if stalled_since is None else stalled_since
                    stalled = now - stalled_since
                    CONSUMER_STALLED_SECONDS.labels(self.group).set(stalled)
                    if stalled >= self.settings.consumer_max_transient_seconds:
                        await self.send_to_dead_letter(message, error, attempts=failures + 1)
                        return
                    delay = self._backoff(failures)
                    failures += 1
                    CONSUMER_RETRIES.labels(self.group).inc()
                    log.warning(
                        "transient failure; retrying",
                        extra={"event_id": event.id, "error": repr(error), "retry_in": delay},
                    )
                    await asyncio.sleep(delay)
                except Exception as error:
                    failures += 1
                    if failures >= self.settings.consumer_max_attempts:
                        await self.send_to_dead_letter(message, error, attempts=failures)
                        return
                    CONSUMER_RETRIES.labels(self.group).inc()
                    log.warning(
                        "handler failed; retrying",
                        extra={"event_id": event.id, "error": repr(error), "attempt": failures},
                    )
                    await asyncio.sleep(self._backoff(failures))
        finally:
            if stalled_since is not None:
                CONSUMER_STALLED_SECONDS.labels(self.group).set(0)

    def _backoff(self, failures: int) -> float:
        return min(self.settings.consumer_retry_base_seconds * 2.0**failures, 10.0)

    async def handle_once(self, event: Event, handler: Handler) -> str:
        async with self.database.transaction() as connection:
            return await self._apply(connection, event, handler)

    async def _apply(self, connection: asyncpg.Connection, event: Event, handler: Handler) -> str:
        """Claim the event in the inbox and run its handler, in the caller's transaction."""
        claimed = await connection.execute(_CLAIM, self.group, event.id, event.type)
        if claimed == "INSERT 0 0":
            return "duplicate"
        await handler(connection, event)
        return "processed"

    async def send_to_dead_letter(
        self, message: ConsumerRecord[bytes, bytes], error: BaseException, *, attempts: int
    ) -> None:
        assert self._producer is not None
        headers = [
            *list(message.headers),
            ("dlq_error", f"{type(error).__name__}: {error}"[:2000].encode()),
            ("dlq_original_topic", message.topic.encode()),
            ("dlq_original_partition", str(message.partition).encode()),
            ("dlq_original_offset", str(message.offset).encode()),
            ("dlq_consumer_group", self.group.encode()),
            ("dlq_attempts", str(attempts).encode()),
        ]
        log.error(
            "message sent to the dead-letter topic",
            extra={
                "topic": message.topic,
                "partition": message.partition,
                "offset": message.offset,
                "error": repr(error),
            },
        )
        await self._producer.send_and_wait(
            self.dead_letter_topic, value=message.value, key=message.key, headers=headers
        )
        CONSUMER_MESSAGES.labels(self.group, "dead_lettered").inc()
