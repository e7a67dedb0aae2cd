"""Helpers for tests that run the services in-process against the real database and broker."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from asgi_lifespan import LifespanManager

from services.registry import SERVICES, TOPICS
from shared.auth.tokens import issue_dev_token
from shared.clock import SYSTEM_CLOCK, Clock
from shared.http.app import create_app
from shared.settings import Settings
from shared.worker import Worker

T = TypeVar("T")

# Tests register this person again and again; the duplicate check is confirmed away here and
# exercised on purpose in tests/test_client_registry.py.
VALID_CLIENT = {
    "given_name": "Ana",
    "family_name": "Lima",
    "birth_date": "1990-02-03",
    "preferred_language": "pt",
    "duplicate_check": "confirmed_new",
}


@dataclass(frozen=True)
class User:
    subject: str
    roles: tuple[str, ...]
    organization_id: str = "org-a"
    team_id: str | None = "team-a"


# The default caller of the test stack's clients; tests pass other users' headers explicitly.
CASEWORKER = User("alice", ("caseworker",))


def bearer(settings: Settings, user: User) -> dict[str, str]:
    token = issue_dev_token(
        settings,
        subject=user.subject,
        roles=list(user.roles),
        organization_id=user.organization_id,
        team_id=user.team_id,
    )
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Stack:
    """The four services' APIs (as httpx clients) and their workers, running in this loop."""

    api: dict[str, httpx.AsyncClient] = field(default_factory=dict)
    workers: dict[str, Worker] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def running_stack(settings: Settings, *, clock: Clock = SYSTEM_CLOCK) -> AsyncIterator[Stack]:
    """`clock`: what time it is for every service's API and worker (a `FrozenClock` in tests of
    time-dependent rules)."""
    stack = Stack()
    tasks: list[asyncio.Task[None]] = []
    async with contextlib.AsyncExitStack() as exits:
        for name, spec in SERVICES.items():
            app = create_app(spec, settings, topics=TOPICS, clock=clock)
            manager = await exits.enter_async_context(LifespanManager(app))
            stack.api[name] = await exits.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=manager.app),
                    base_url=f"http://{name}.test",
                    headers=bearer(settings, CASEWORKER),
                )
            )
            worker = Worker(spec, settings, topics=TOPICS, serve_http=False, clock=clock)
            stack.workers[name] = worker
            tasks.append(asyncio.create_task(worker.run()))
        for worker in stack.workers.values():
            if worker.consumer is not None:
                await asyncio.wait_for(worker.consumer.assigned.wait(), 90)
        await caught_up(stack)
        if clock is not SYSTEM_CLOCK:
            # After catching up: handling earlier modules' events schedules timers too.
            await forget_pending_timers(settings)
        try:
            yield stack
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def caught_up(stack: Stack, timeout: float = 120.0) -> None:
    """Every consumer holds all its partitions (no member of an earlier module's stack that
    died without leaving keeps some, unread) and has handled what earlier modules left on the
    topics (a fuzz run leaves thousands of events): a module's first test must not wait
    behind them."""

    async def no_backlog() -> bool | None:
        for worker in stack.workers.values():
            consumer = worker.consumer
            if consumer is None:
                continue
            if not consumer.holds_every_partition() or await consumer.backlog() > 0:
                return None
        return True

    await eventually(no_backlog, timeout=timeout, interval=0.2)


async def forget_pending_timers(settings: Settings) -> None:
    """Test modules share their worker's database: the timers earlier modules left pending
    are due in their own time. A stack on a clock of its own that it moves forward would fire
    all of them (hundreds, after the fuzz runs), and its own timers would wait behind them."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        for name, spec in SERVICES.items():
            if spec.timer_handlers:
                await connection.execute(f"DELETE FROM {name}.timers WHERE fired_at IS NULL")
    finally:
        await connection.close()


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 10.0, interval: float = 0.02
) -> T:
    """Poll until the probe returns something other than None; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def get_when_found(client: httpx.AsyncClient, path: str, timeout: float = 10.0) -> Any:
    async def probe() -> Any:
        response = await client.get(path)
        return response.json() if response.status_code == 200 else None

    return await eventually(probe, timeout=timeout)


async def read_topic(
    settings: Settings,
    topic: str,
    *,
    until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool],
    timeout: float = 15.0,
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read a topic from the beginning (no group) until `until(records)` holds."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(records):
            if time.monotonic() > deadline:
                raise AssertionError(f"{topic}: condition not met within {timeout}s")
            batches = await consumer.getmany(timeout_ms=200)
            for messages in batches.values():
                records.extend(messages)
    finally:
        await consumer.stop()
    return records


def header(record: ConsumerRecord[bytes, bytes], name: str) -> str | None:
    for key, value in record.headers:
        if key == name:
            return bytes(value).decode()
    return None


async def admin_fetchval(settings: Settings, query: str, *args: Any) -> Any:
    connection = await asyncpg.connect(settings.database_url)
    try:
        return await connection.fetchval(query, *args)
    finally:
        await connection.close()


async def unauthenticated_attempts(settings: Settings, service: str) -> int:
    """Attempts without a valid token the service has counted so far (all sources)."""
    total = await admin_fetchval(
        settings, f"SELECT sum(attempts) FROM {service}.unauthenticated_attempts"
    )
    return int(total or 0)


async def first_attempts(settings: Settings, service: str, since: datetime) -> list[str]:
    """The request ids audited in full (the first attempt of each source and minute), of the
    minutes from `since` on."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        rows = await connection.fetch(
            f"SELECT first_request_id FROM {service}.unauthenticated_attempts "
            "WHERE minute >= date_trunc('minute', $1::timestamptz)",
            since,
        )
    finally:
        await connection.close()
    return [row["first_request_id"] for row in rows]


async def audit_rows(settings: Settings, service: str, request_id: str) -> list[asyncpg.Record]:
    """The audit records a request left in a service's trail."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        return list(
            await connection.fetch(
                f"SELECT * FROM {service}.audit_log WHERE request_id = $1 ORDER BY seq",
                request_id,
            )
        )
    finally:
        await connection.close()


async def enrol_worker(stack: Stack, settings: Settings, user: User) -> None:
    """`user` in their organisation's staff directory (planning), active, in their own team:
    what an assignment to them needs. Put there by an admin of that organisation."""
    admin = bearer(settings, User("ada", ("admin",), user.organization_id, None))
    path = f"/v1/workers/{user.subject}"
    body = {"team_id": user.team_id, "display_name": user.subject.title(), "languages": ["en"]}
    current = await stack.api["planning"].get(path, headers=admin)
    if_match = {"If-Match": current.headers["ETag"]} if current.status_code == 200 else {}
    response = await stack.api["planning"].put(path, json=body, headers={**admin, **if_match})
    assert response.status_code in (200, 201), response.text


async def open_case(
    stack: Stack, settings: Settings, client_id: str, user: User = CASEWORKER
) -> str:
    """The id of the client's open case in planning, opened by hand by `user` unless one is
    open already (e.g. from an assessment); waits until planning knows the client."""

    async def opened() -> str | None:
        response = await stack.api["planning"].post(
            "/v1/cases", json={"client_id": client_id}, headers=bearer(settings, user)
        )
        if response.status_code == 404:
            return None  # planning has not learnt of the client yet
        if response.status_code == 409:
            case_id: str = response.json()["case_id"]
            return case_id
        assert response.status_code == 201, response.text
        created: str = response.json()["id"]
        return created

    return await eventually(opened)
