"""Kafka clients built from settings, and the topics Casework uses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from shared.events.contracts import dead_letter_topic
from shared.events.registry import EVENT_TYPES
from shared.settings import Settings

log = logging.getLogger(__name__)


def all_topics(consumer_groups: Iterable[str]) -> list[str]:
    """Every event topic, and the dead-letter topic of each consumer group."""
    event_topics = {model.topic for model in EVENT_TYPES.values()}
    return sorted(event_topics | {dead_letter_topic(group) for group in consumer_groups})


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


async def create_topics(settings: Settings, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [topic for topic in topics if topic not in existing]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            topic,
                            num_partitions=settings.kafka_topic_partitions,
                            replication_factor=settings.kafka_replication_factor,
                        )
                        for topic in wanted
                    ]
                )
            log.info("created topics", extra={"topics": wanted})
    finally:
        await admin.close()


async def broker_is_reachable(settings: Settings, wait_seconds: float = 2.0) -> bool:
    """A metadata round trip: a paused or dead broker fails it, a half-open socket does not pass."""
    admin = AIOKafkaAdminClient(
        **client_options(settings),
        request_timeout_ms=int(wait_seconds * 1000),
    )
    try:
        await asyncio.wait_for(admin.start(), wait_seconds)
        await asyncio.wait_for(admin.list_topics(), wait_seconds)
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        with contextlib.suppress(KafkaError, OSError, TimeoutError):
            await asyncio.wait_for(admin.close(), wait_seconds)
    return True
