"""A broker that loses its log loses nothing accepted: the embedded Tansu keeps everything in
memory, so a crash and restart loses the events it had acknowledged but not yet delivered,
every topic, and every group's offsets. The relays notice (new broker epoch, missing topics),
recreate the topics as declared and replay their outboxes' retention window; consumers dedupe.

Uses brokers of its own so it can kill them."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from asgi_lifespan import LifespanManager

from services.registry import SERVICES, TOPICS
from shared.embedded import EmbeddedBroker, free_port
from shared.http.app import create_app
from shared.http.health import run_checks
from shared.messaging.kafka import (
    TopicReport,
    create_topics,
    creation_failures,
    missing_topics,
    producer,
)
from shared.settings import Settings
from shared.worker import Worker
from tests.support import VALID_CLIENT, Stack, eventually, get_when_found, running_stack

log = logging.getLogger(__name__)

CONSUMING = ("planning", "referrals", "notifications")


def restart_on_same_port(port: int, log_path: Path, timeout: float = 90.0) -> EmbeddedBroker:
    """Start a broker on `port` again after the previous one was killed. The killed broker's
    sockets leave the port in TIME_WAIT for about a minute, and Tansu binds without address
    reuse: it panics with "Address in use" and exits with status 0. So wait and retry, saying
    why. (To unify with the dev stack's EmbeddedBroker restart.)"""
    deadline = time.monotonic() + timeout
    while True:
        broker = EmbeddedBroker(port, log_path=log_path)
        try:
            broker.start(timeout=5.0)
            return broker
        except (RuntimeError, TimeoutError) as error:
            broker.stop()
            if time.monotonic() > deadline:
                raise TimeoutError(f"no broker on port {port} after {timeout}s: {error}") from error
            log.warning("port %s still in TIME_WAIT after the crash; retrying in 1 s", port)
            time.sleep(1.0)


@pytest.fixture(scope="module")
def broker_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("loss")) / "broker.log"


@pytest.fixture(scope="module")
def doomed_broker(broker_log: Path) -> Iterator[list[EmbeddedBroker]]:
    """A list holding the current broker, so a test can replace it with its successor."""
    brokers = [EmbeddedBroker(free_port(), log_path=broker_log)]
    brokers[0].start()
    try:
        yield brokers
    finally:
        brokers[-1].stop()


@pytest.fixture(scope="module")
async def loss_stack(
    settings: Settings, doomed_broker: list[EmbeddedBroker]
) -> AsyncIterator[tuple[Stack, Settings]]:
    private = settings.model_copy(
        update={"kafka_bootstrap": doomed_broker[0].bootstrap, "relay_broker_check_seconds": 0.5}
    )
    await create_topics(private, TOPICS)
    async with running_stack(private) as stack:
        yield stack, private


async def partitions_by_topic(settings: Settings) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics()}
    finally:
        await admin.close()


async def register(stack: Stack, name: str) -> str:
    response = await stack.api["intake"].post(
        "/v1/clients", json={**VALID_CLIENT, "family_name": name}
    )
    assert response.status_code == 201, response.text
    client_id: str = response.json()["id"]
    return client_id


async def all_published(settings: Settings, client_ids: list[str]) -> bool | None:
    connection = await asyncpg.connect(settings.database_url)
    try:
        unpublished = await connection.fetchval(
            "SELECT count(*) FROM intake.outbox WHERE aggregateid = ANY($1::text[]) "
            "AND published_at IS NULL",
            client_ids,
        )
    finally:
        await connection.close()
    return True if unpublished == 0 else None


async def workers_not_ready(stack: Stack, settings: Settings) -> dict[str, dict[str, str]]:
    """Each worker whose readiness is not all "ok", with its checks."""
    found = {}
    for name, worker in stack.workers.items():
        checks = await run_checks(worker.readiness_checks(), settings.readiness_timeout_seconds)
        if set(checks.values()) != {"ok"}:
            found[name] = checks
    return found


async def test_a_running_worker_is_ready_only_with_partitions_and_a_relay_leader(
    loss_stack: tuple[Stack, Settings],
) -> None:
    stack, settings = loss_stack
    assert await workers_not_ready(stack, settings) == {}
    for name, worker in stack.workers.items():
        assert worker.consumer is not None, name
        assert worker.consumer.membership.partitions, name
        checks = await run_checks(worker.readiness_checks(), settings.readiness_timeout_seconds)
        assert checks == {"database": "ok", "broker": "ok", "relay": "ok", "consumer": "ok"}


@pytest.mark.timeout(300)
async def test_a_broker_that_lost_its_log_loses_no_acknowledged_event(
    loss_stack: tuple[Stack, Settings], doomed_broker: list[EmbeddedBroker], broker_log: Path
) -> None:
    stack, settings = loss_stack
    # Hold every consumer inside its first handler, so the broker acknowledges events that
    # nobody has consumed yet when it dies.
    blocker = await asyncpg.connect(settings.database_url)
    transaction = blocker.transaction()
    await transaction.start()
    await blocker.execute(
        "LOCK TABLE planning.inbox, referrals.inbox, notifications.inbox IN EXCLUSIVE MODE"
    )
    try:
        before = [await register(stack, f"Acked{n}") for n in range(20)]
        await eventually(lambda: all_published(settings, before), timeout=30)
        doomed_broker[0].process.kill()  # type: ignore[union-attr]
        doomed_broker[0].process.wait()  # type: ignore[union-attr]
    finally:
        await transaction.rollback()
        await blocker.close()

    port = doomed_broker[0].port
    doomed_broker.append(await asyncio.to_thread(restart_on_same_port, port, broker_log))

    # Every event the dead broker had acknowledged reaches every consumer.
    for client_id in before:
        for service in CONSUMING:
            reference = await get_when_found(
                stack.api[service], f"/v1/client-refs/{client_id}", timeout=90
            )
            assert reference["client_id"] == client_id

    # Every worker is ready again: every group rejoined and has its partitions.
    async def all_ready() -> bool | None:
        return True if await workers_not_ready(stack, settings) == {} else None

    await eventually(all_ready, timeout=60, interval=0.5)
    # The topics came back as declared, created by the relay, not by a client.
    assert await missing_topics(settings, TOPICS) == []
    partitions = await partitions_by_topic(settings)
    assert {topic: partitions[topic] for topic in TOPICS} == {
        topic: settings.kafka_topic_partitions for topic in TOPICS
    }
    # Every group consumes every partition of the new log.
    after: list[str] = []
    while {partition_of(client_id, settings) for client_id in after} != set(
        range(settings.kafka_topic_partitions)
    ):
        after.append(await register(stack, f"After{len(after)}"))
    for client_id in after:
        for service in CONSUMING:
            reference = await get_when_found(
                stack.api[service], f"/v1/client-refs/{client_id}", timeout=60
            )
            assert reference["client_id"] == client_id


def partition_of(client_id: str, settings: Settings) -> int:
    """The partition aiokafka's default partitioner picks for this key."""
    return int(murmur2(client_id.encode()) & 0x7FFFFFFF) % settings.kafka_topic_partitions


async def test_no_client_creates_a_topic_by_sending_to_it(
    loss_stack: tuple[Stack, Settings],
) -> None:
    _stack, settings = loss_stack
    kafka = producer(settings)
    await kafka.start()
    try:
        with pytest.raises(KafkaError):
            await asyncio.wait_for(kafka.send_and_wait("casework.never-declared", b"x"), 15)
    finally:
        await kafka.stop()
    assert await missing_topics(settings, ["casework.never-declared"]) == [
        "casework.never-declared"
    ]


@pytest.fixture
def empty_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(free_port(), log_path=tmp_path / "log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def test_readiness_requires_the_declared_topics(
    settings: Settings, empty_broker: EmbeddedBroker
) -> None:
    bare = settings.model_copy(update={"kafka_bootstrap": empty_broker.bootstrap})
    worker = Worker(SERVICES["planning"], bare, topics=TOPICS, serve_http=False)
    await worker.database.connect()
    try:
        checks = await run_checks(worker.readiness_checks(), bare.readiness_timeout_seconds)
    finally:
        await worker.database.close()
    assert checks["database"] == "ok"
    assert checks["broker"] == "missing: " + ", ".join(TOPICS)
    # Nothing runs in this worker: no relay leads planning here, its consumer has not joined.
    assert checks["consumer"] == "joining"

    app = create_app(SERVICES["planning"], bare, topics=TOPICS)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://planning.test"
        ) as client,
    ):
        response = await client.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"] == {
        "database": "ok",
        "broker": "missing: " + ", ".join(TOPICS),
    }


async def test_casework_topics_reports_existing_topics_with_other_partition_counts(
    settings: Settings, empty_broker: EmbeddedBroker
) -> None:
    bare = settings.model_copy(update={"kafka_bootstrap": empty_broker.bootstrap})
    await create_topics(bare.model_copy(update={"kafka_topic_partitions": 2}), ["casework.old"])
    report = await create_topics(bare, ["casework.old", "casework.new"])
    assert report == TopicReport(created=["casework.new"], mismatched={"casework.old": 2})
    partitions = await partitions_by_topic(bare)
    assert (partitions["casework.old"], partitions["casework.new"]) == (2, 3)


def test_a_topic_the_broker_refused_is_a_failure_and_one_that_exists_is_not() -> None:
    # CreateTopics answers per topic: (topic, error code, message); 36 exists, 38 bad factor.
    answer = [("a", 0, None), ("b", 36, "exists"), ("c", 38, "replication factor 3 > 1")]
    assert creation_failures(answer) == [
        "c: InvalidReplicationFactorError replication factor 3 > 1"
    ]
    assert creation_failures([("d", 41)]) == ["d: NotControllerError"]
