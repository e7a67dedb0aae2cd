"""A referral nobody accepts expires by itself, through a durable timer that survives a worker
restart and fires exactly once; a referral that moved on in time never expires.

The stack (APIs and workers) runs on a clock that stays before every deadline, so its own
referrals worker never fires these timers; the worker under test is referrals' timer loop with
a clock of its own, stopped, moved past the deadline and started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.referrals.lifecycle import expiry
from services.referrals.main import SPEC as REFERRALS
from shared.clock import FrozenClock
from shared.db.database import Database
from shared.events.referrals import ReferralClosed, ReferralStatusChanged
from shared.http.app import service_database
from shared.settings import Settings
from shared.timers.runner import TimerRunner
from tests.referrals_support import (
    ACCEPTANCE_DAYS,
    PAT,
    Directory,
    fetch,
    grant_consent,
    refer,
    register_client,
    seed_directory,
    set_status,
    wait_row,
)
from tests.support import Stack, running_stack

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
async def frozen_stack(settings: Settings) -> AsyncIterator[Stack]:
    async with running_stack(settings, clock=FrozenClock(NOW)) as stack:
        yield stack


@pytest.fixture(scope="module")
async def directory(settings: Settings) -> Directory:
    return await seed_directory(settings)


@pytest.fixture(scope="module")
async def database(settings: Settings) -> AsyncIterator[Database]:
    database = service_database(REFERRALS, settings)
    await database.connect()
    try:
        yield database
    finally:
        await database.close()


@contextlib.asynccontextmanager
async def timer_worker(
    database: Database, settings: Settings, clock: FrozenClock
) -> AsyncIterator[None]:
    """Referrals' timer loop, as its worker runs it, until the block ends (a stop)."""
    runner = TimerRunner(
        service="referrals",
        database=database,
        settings=settings.model_copy(update={"timer_poll_seconds": 0.05}),
        handlers=REFERRALS.timer_handlers,
        clock=clock,
    )
    task = asyncio.create_task(runner.run())
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _sent(stack: Stack, settings: Settings, directory: Directory) -> dict[str, Any]:
    client_id = await register_client(stack, settings)
    await grant_consent(stack, settings, client_id)
    made = await refer(stack, settings, client_id, directory.in_network)
    assert made.status_code == 201, made.text
    return dict(made.json())


async def _events(settings: Settings, referral_id: str, event_type: str) -> list[dict[str, Any]]:
    rows = await fetch(
        settings,
        "SELECT payload FROM referrals.outbox WHERE type = $1 AND payload->>'referral_id' = $2",
        event_type,
        referral_id,
    )
    return [
        json.loads(row["payload"]) if isinstance(row["payload"], str) else dict(row["payload"])
        for row in rows
    ]


async def test_an_unaccepted_referral_expires_once_across_a_worker_restart(
    frozen_stack: Stack, settings: Settings, directory: Directory, database: Database
) -> None:
    referral = await _sent(frozen_stack, settings, directory)
    referral_id = referral["id"]
    deadline = datetime.fromisoformat(referral["expires_at"])
    assert deadline == NOW + timedelta(days=ACCEPTANCE_DAYS)
    [timer] = await fetch(
        settings,
        "SELECT due_at, fired_at FROM referrals.timers WHERE kind = $1 AND key = $2",
        expiry.KIND,
        referral_id,
    )
    assert (timer["due_at"], timer["fired_at"]) == (deadline, None)
    clock = FrozenClock(NOW)

    async with timer_worker(database, settings, clock):
        clock.set(deadline - timedelta(seconds=1))
        await asyncio.sleep(0.3)  # a worker running just before the deadline leaves it
    assert (await _status(settings, referral_id)) == "requested"

    clock.set(deadline + timedelta(hours=1))  # while no worker runs
    async with timer_worker(database, settings, clock), timer_worker(database, settings, clock):
        await wait_row(
            settings,
            "SELECT 1 FROM referrals.referrals WHERE id = $1 AND status = 'expired'",
            referral_id,
        )
    async with timer_worker(database, settings, clock):  # and once more, after another restart
        await asyncio.sleep(0.3)

    history = await fetch(
        settings,
        "SELECT to_status, set_by_side, via, at FROM referrals.referral_history "
        "WHERE referral_id = $1 ORDER BY seq",
        referral_id,
    )
    assert [tuple(h) for h in history] == [
        ("requested", "sending", "api", NOW),
        ("expired", "system", "expiry", deadline),
    ]
    [changed] = await _events(settings, referral_id, ReferralStatusChanged.event_type)
    assert (changed["from_status"], changed["to_status"], changed["set_by_organization_id"]) == (
        "requested",
        "expired",
        None,
    )
    assert datetime.fromisoformat(changed["changed_at"]) == deadline
    [closed] = await _events(settings, referral_id, ReferralClosed.event_type)
    assert (closed["final_status"], closed["outcome"]) == ("expired", "unknown")
    seen = await frozen_stack.api["referrals"].get(f"/v1/referrals/{referral_id}")
    assert (seen.json()["status"], seen.json()["allowed_next"]) == ("expired", ["entered-in-error"])


async def test_an_accepted_referral_never_expires(
    frozen_stack: Stack, settings: Settings, directory: Directory, database: Database
) -> None:
    referral = await _sent(frozen_stack, settings, directory)
    accepted = await set_status(frozen_stack, settings, referral["id"], PAT, "accepted")
    assert accepted.status_code == 200, accepted.text
    timers = await fetch(
        settings,
        "SELECT 1 FROM referrals.timers WHERE kind = $1 AND key = $2",
        expiry.KIND,
        referral["id"],
    )
    assert timers == []  # cancelled with the acceptance

    clock = FrozenClock(datetime.fromisoformat(referral["expires_at"]) + timedelta(days=1))
    async with timer_worker(database, settings, clock):
        await asyncio.sleep(0.3)

    assert await _status(settings, referral["id"]) == "accepted"
    assert await _events(settings, referral["id"], ReferralClosed.event_type) == []


async def _status(settings: Settings, referral_id: str) -> str:
    [row] = await fetch(
        settings, "SELECT status FROM referrals.referrals WHERE id = $1", referral_id
    )
    return str(row["status"])
