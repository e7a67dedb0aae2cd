"""Kafka clients built from settings, and the topics Casework declares.

Topics exist because they are declared (`casework topics`, the dev stack, a relay healing a
broker that lost its log), never because a client asked for one (see no_auto_create.py).

The broker epoch: the first record on partition 0 of `casework.broker-epoch`, a random id
written by whoever finds the topic empty (the first write wins; everyone reads offset 0). A
broker that lost its log has lost that record too, so a relay that remembers the epoch it
published under sees a different one after the topics were recreated, whoever recreated them.
Tansu's cluster id is a constant, so the cluster id alone cannot tell.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from shared.events.contracts import dead_letter_topic
from shared.events.registry import EVENT_TYPES
from shared.messaging.no_auto_create import forbid_auto_topic_creation
from shared.settings import Settings

log = logging.getLogger(__name__)

forbid_auto_topic_creation()

EPOCH_TOPIC = "casework.broker-epoch"
_EPOCH_PARTITION = TopicPartition(EPOCH_TOPIC, 0)
# Kept forever: if retention deleted the epoch record, the next one would look like a new broker.
_EPOCH_CONFIG = {"retention.ms": "-1", "retention.bytes": "-1"}


class TopicCreationFailed(Exception):
    """The broker refused to create a declared topic for a reason other than "it exists"."""


def all_topics(consumer_groups: Iterable[str]) -> list[str]:
    """Every event topic, the dead-letter topic of each consumer group, and the epoch topic."""
    event_topics = {model.topic for model in EVENT_TYPES.values()}
    return sorted(
        event_topics | {dead_letter_topic(group) for group in consumer_groups} | {EPOCH_TOPIC}
    )


def client_options(settings: Settings) -> dict[str, Any]:
    """Where the broker is and how to authenticate to it: every Kafka client Casework builds
    (producer, consumer, admin) takes these keyword arguments.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_security_protocol.startswith("SASL_"):
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            # aiokafka takes the SCRAM credentials in these too.
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password,
        )
    if settings.kafka_security_protocol == "SASL_SSL":
        options["ssl_context"] = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    return options


def producer(settings: Settings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        enable_idempotence=settings.kafka_idempotent_producer,
        linger_ms=0,
        request_timeout_ms=10_000,
        retry_backoff_ms=200,
    )


def _admin(settings: Settings, timeout_seconds: float = 10.0) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        **client_options(settings),
        request_timeout_ms=int(timeout_seconds * 1000),
    )


async def _partitions_by_topic(admin: AIOKafkaAdminClient) -> dict[str, int]:
    """Every topic on the broker and its partition count (a metadata request for all topics,
    which never creates one)."""
    return {
        described["topic"]: len(described["partitions"])
        for described in await admin.describe_topics()
        if described["error_code"] == 0
    }


@dataclass(frozen=True)
class TopicReport:
    created: list[str] = field(default_factory=list)
    # Existing topics whose partition count differs from the declaration: topic -> actual.
    mismatched: dict[str, int] = field(default_factory=dict)


def creation_failures(topic_errors: Iterable[tuple[Any, ...]]) -> list[str]:
    """The per-topic results of a CreateTopics answer ((topic, error code[, message]) each)
    that are real failures: anything but success and "it exists already"."""
    failures = []
    for topic, code, *message in topic_errors:
        error = for_code(code)
        if code != 0 and error is not TopicAlreadyExistsError:
            failures.append(f"{topic}: {error.__name__} {' '.join(map(str, message))}".rstrip())
    return failures


async def create_topics(settings: Settings, topics: Sequence[str]) -> TopicReport:
    """Create the declared topics that do not exist, checking the broker's answer per topic.
    Existing topics are left as they are (repartitioning moves keys); a partition count that
    differs from the declaration is logged and reported."""
    admin = _admin(settings)
    await admin.start()
    try:
        existing = await _partitions_by_topic(admin)
        wanted = [topic for topic in topics if topic not in existing]
        if wanted:
            response = await admin.create_topics(
                [
                    NewTopic(
                        topic,
                        num_partitions=settings.kafka_topic_partitions,
                        replication_factor=settings.kafka_replication_factor,
                        topic_configs=_EPOCH_CONFIG if topic == EPOCH_TOPIC else {},
                    )
                    for topic in wanted
                ]
            )
            failures = creation_failures(response.topic_errors)
            if failures:
                raise TopicCreationFailed("; ".join(failures))
            log.info("created topics", extra={"topics": wanted})
        mismatched = {
            topic: count
            for topic, count in existing.items()
            if topic in topics and count != settings.kafka_topic_partitions
        }
        if mismatched:
            log.warning(
                "topics exist with a partition count other than declared",
                extra={"declared": settings.kafka_topic_partitions, "actual": mismatched},
            )
        return TopicReport(created=wanted, mismatched=mismatched)
    finally:
        await admin.close()


async def missing_topics(settings: Settings, declared: Iterable[str]) -> list[str]:
    """The declared topics the broker does not have. Raises KafkaError/OSError when the broker
    does not answer; callers bound the wait."""
    admin = _admin(settings)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
    finally:
        with contextlib.suppress(KafkaError, OSError):
            await admin.close()
    return sorted(set(declared) - existing)


async def topics_state(settings: Settings, declared: Sequence[str]) -> str:
    """For readiness: "ok", "unreachable" or "missing: <topics>". Cancel it to bound the wait."""
    try:
        missing = await missing_topics(settings, declared)
    except (KafkaError, OSError):
        return "unreachable"
    return f"missing: {', '.join(missing)}" if missing else "ok"


async def broker_epoch(settings: Settings, writer: AIOKafkaProducer | None = None) -> str | None:
    """The epoch of the broker (see the module docstring). With a `writer`, an empty epoch
    topic gets its first record; without one, None means nobody has written it yet."""
    for _attempt in range(2):
        epoch = await _first_epoch_record(settings)
        if epoch is not None or writer is None:
            return epoch
        await writer.send_and_wait(
            EPOCH_TOPIC, value=uuid.uuid4().hex.encode(), partition=_EPOCH_PARTITION.partition
        )
    raise KafkaError("the broker epoch could not be read back after it was written")


async def _first_epoch_record(settings: Settings) -> str | None:
    reader = AIOKafkaConsumer(
        **client_options(settings),
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )
    try:
        await reader.start()
        reader.assign([_EPOCH_PARTITION])
        await reader.seek_to_beginning(_EPOCH_PARTITION)
        if (
            await reader.position(_EPOCH_PARTITION)
            >= ((await reader.end_offsets([_EPOCH_PARTITION]))[_EPOCH_PARTITION])
        ):
            return None
        for _poll in range(10):
            batches = await reader.getmany(_EPOCH_PARTITION, timeout_ms=500, max_records=1)
            for records in batches.values():
                value = records[0].value
                return value.decode() if value is not None else ""
        raise KafkaError("the broker epoch record is there but could not be fetched")
    finally:
        with contextlib.suppress(KafkaError, OSError):
            await reader.stop()
