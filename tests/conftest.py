"""Real PostgreSQL and a real Kafka-protocol broker for the whole session.

By default both are embedded (started here, from the project's own wheels). To use external
servers instead, set CASEWORK_TEST_DATABASE_URL (an admin URL; a fresh database is created on
it for the run; the server must require passwords over TCP, as production does) and/or
CASEWORK_TEST_KAFKA_BOOTSTRAP.

The embedded servers start on ports from `shared.ports.free_port()`: below the kernel's
ephemeral range, free of listeners and of TIME_WAIT sockets, and reserved machine-wide until
the session ends. Before, a port came from bind(0): inside the ephemeral range, where every
outgoing connection on the machine picks its local port, and unreserved. bind(0) itself never
returns a port with a TIME_WAIT socket (checked: none in 5,000 probes beside 3,000 of them),
so the port was taken after the probe, before the broker bound it; Tansu binds without
SO_REUSEADDR and exits with status 0 "Address in use" beside a socket on its port, a
TIME_WAIT one included (reproduced); the session's fixtures failed and every test needing them
errored ("1 failed, 125 passed, 417 errors" in 2 runs of 5 on a busy machine, shortly after
a `make run` had stopped). The broker's start now also recognises that exit and retries
(shared/embedded.py).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.registry import SERVICES, TOPICS
from shared.db.migrations import migrate_services
from shared.embedded import EmbeddedBroker, EmbeddedPostgres
from shared.messaging.kafka import create_topics
from shared.ports import free_port
from shared.settings import Settings, with_database
from tests.support import Stack, running_stack


@pytest.fixture(scope="session")
def server_dir() -> Iterator[Path]:
    """Where the embedded servers keep their data. Not under pytest's own temporary root:
    every pytest session that starts makes that root private again (chmod 0700), which locks
    out the PostgreSQL system user of a session already running beside it."""
    directory = Path(tempfile.mkdtemp(prefix="casework-test-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(server_dir: Path) -> Iterator[str]:
    external = os.environ.get("CASEWORK_TEST_DATABASE_URL")
    database = f"casework_test_{secrets.token_hex(4)}"
    if external:
        yield with_database(external, database)
        return
    server = EmbeddedPostgres(server_dir / "postgres", free_port(), superuser_password="test-admin")
    server.start()
    try:
        yield with_database(server.admin_url, database)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def broker_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("CASEWORK_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    broker = EmbeddedBroker(free_port(), log_path=tmp_path_factory.mktemp("broker") / "log")
    broker.start()
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


def make_settings(database_url: str, bootstrap: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": database_url,
        "kafka_bootstrap": bootstrap,
        "service_db_password": "casework-test",
        "outbox_poll_seconds": 0.5,
        "consumer_retry_base_seconds": 0.02,
        "consumer_max_attempts": 3,
        "embedded_postgres": False,
        "embedded_broker": False,
        # Every test request comes from one address and a few users; tests/test_rate_limits.py
        # turns the limits on where they are under test.
        "rate_limit_per_source": "",
        "rate_limit_per_principal": "",
        "rate_limit_unauthenticated": "",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
async def settings(
    database_url: str, broker_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    checkpoints = tmp_path_factory.mktemp("audit") / "checkpoints.jsonl"
    settings = make_settings(database_url, broker_bootstrap, audit_checkpoint_file=str(checkpoints))
    await migrate_services(
        settings.database_url, list(SERVICES.values()), settings.service_db_password
    )
    await create_topics(settings, TOPICS)
    return settings


@pytest.fixture(scope="module")
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    async with running_stack(settings) as stack:
        yield stack
