"""With the broker frozen (SIGSTOP), intake keeps accepting clients, readiness still answers
(degraded: the broker check is cut off at the deadline), and the relay meets the outage; once
the broker resumes, every event reaches every consumer and none is lost. Uses a broker of its
own, so it can freeze it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from services.registry import TOPICS
from shared.embedded import EmbeddedBroker, free_port
from shared.http.health import run_checks
from shared.messaging.kafka import create_topics
from shared.settings import Settings
from tests.support import VALID_CLIENT, Stack, eventually, get_when_found, running_stack

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(free_port(), log_path=Path(tmp_path_factory.mktemp("b")) / "log")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
async def outage_stack(
    settings: Settings, private_broker: EmbeddedBroker
) -> AsyncIterator[tuple[Stack, Settings]]:
    private = settings.model_copy(update={"kafka_bootstrap": private_broker.bootstrap})
    await create_topics(private, TOPICS)
    async with running_stack(private) as stack:
        yield stack, private


def relay_failures(service: str) -> float:
    value = REGISTRY.get_sample_value("casework_outbox_relay_failures_total", {"service": service})
    return value or 0.0


async def test_clients_are_accepted_while_the_broker_is_paused_and_all_arrive_after(
    outage_stack: tuple[Stack, Settings], private_broker: EmbeddedBroker
) -> None:
    stack, settings = outage_stack
    failures_before = relay_failures("intake")
    private_broker.pause()
    try:
        responses = [
            await stack.api["intake"].post(
                "/v1/clients", json={**VALID_CLIENT, "family_name": f"Outage{n}"}
            )
            for n in range(20)
        ]
        assert [response.status_code for response in responses] == [201] * 20
        ready = await stack.api["intake"].get("/health/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        # Cut off at the readiness deadline, not waited out.
        assert ready.json()["checks"] == {"database": "ok", "broker": "timeout"}
        worker = await run_checks(
            stack.workers["intake"].readiness_checks(), settings.readiness_timeout_seconds
        )
        assert worker["broker"] == "timeout"

        # The relay tried to publish these clients' events and failed: it met the outage.
        async def relay_met_the_outage() -> bool | None:
            return True if relay_failures("intake") > failures_before else None

        await eventually(relay_met_the_outage, timeout=60, interval=0.2)
    finally:
        private_broker.resume()

    for response in responses:
        client_id = response.json()["id"]
        for service in ("planning", "referrals", "notifications"):
            reference = await get_when_found(
                stack.api[service], f"/v1/client-refs/{client_id}", timeout=60
            )
            assert reference["client_id"] == client_id
    assert (await stack.api["intake"].get("/health/ready")).json()["status"] == "ready"
