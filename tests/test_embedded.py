"""The embedded servers start reliably: on a port that is really free, beside the leftovers of
a previous run, and a killed broker comes back on its own port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from shared.embedded import EmbeddedBroker, PortInUse
from shared.messaging.kafka import create_topics, topics_state
from shared.ports import ephemeral_range, free_port, free_port_base, is_bindable
from shared.settings import Settings


def test_a_handed_out_port_is_outside_the_ephemeral_range_and_reserved_machine_wide() -> None:
    port = free_port()
    low, high = ephemeral_range()
    # Below the range no outgoing connection of any process takes it (and leaves a TIME_WAIT).
    assert not low <= port <= high
    assert is_bindable(port)
    other_process = subprocess.run(
        [sys.executable, "-c", f"from shared.ports import reserve; print(reserve({port}))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert other_process.stdout.strip() == "False"

    base = free_port_base(8)
    assert all(is_bindable(base + offset) for offset in range(1, 9))
    assert port not in range(base + 1, base + 9)


def test_the_broker_refuses_at_once_a_port_something_else_listens_on(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", free_port()))
        squatter.listen()
        broker = EmbeddedBroker(squatter.getsockname()[1], log_path=tmp_path / "log")
        with pytest.raises(PortInUse, match="something else already listens"):
            broker.start()
    assert broker.process is None


@pytest.mark.timeout(300)
async def test_a_broker_killed_with_clients_connected_restarts_on_its_port_empty(
    tmp_path: Path,
) -> None:
    """Killed with connections open, its port stays in TIME_WAIT for about a minute, and Tansu
    (binding without SO_REUSEADDR) exits with status 0 "Address in use" beside it: restart()
    waits that out, says so, and the broker comes back, without the topics it had."""
    said: list[str] = []
    broker = EmbeddedBroker(free_port(), log_path=tmp_path / "log", notify=said.append)
    settings = Settings(_env_file=None, kafka_bootstrap=broker.bootstrap)
    await asyncio.to_thread(broker.start)
    # A client with a live (accepted, answered) connection when the broker dies.
    client = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        await create_topics(settings, ["casework.chaos.probe"])
        await client.start()
        assert "casework.chaos.probe" in await client.list_topics()
        assert broker.process is not None
        os.kill(broker.process.pid, signal.SIGKILL)
        await asyncio.to_thread(broker.process.wait)
        with contextlib.suppress(KafkaError, OSError):
            await client.close()  # as a client does when its broker hangs up
        assert not is_bindable(broker.port), "the kill left no TIME_WAIT: the test proves nothing"

        await asyncio.to_thread(broker.restart)

        assert broker.process.poll() is None
        assert await topics_state(settings, []) == "ok"  # the broker answers again
        assert any("TIME_WAIT" in line for line in said), said
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
        await admin.start()
        try:
            assert "casework.chaos.probe" not in await admin.list_topics()
        finally:
            await admin.close()
    finally:
        await asyncio.to_thread(broker.stop)
