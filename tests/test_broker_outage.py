"""With the broker frozen (SIGSTOP), intake keeps accepting clients; once it resumes, every
event reaches every consumer and none is lost. Uses a broker of its own, so it can freeze it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.registry import TOPICS
from shared.embedded import EmbeddedBroker, free_port
from shared.messaging.kafka import create_topics
from shared.settings import Settings
from tests.support import VALID_CLIENT, Stack, get_when_found, running_stack

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


async def test_clients_are_accepted_while_the_broker_is_paused_and_all_arrive_after(
    outage_stack: tuple[Stack, Settings], private_broker: EmbeddedBroker
) -> None:
    stack, _settings = outage_stack
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
        assert ready.json()["checks"] == {"database": "ok", "broker": "unreachable"}
        await asyncio.sleep(2.0)  # the relay meets the frozen broker and starts retrying
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
