"""Two of `make chaos`'s scenarios, on a small load: killing intake's relay leader or the
embedded broker loses no accepted client and applies none twice (bench/chaos.py runs them
all, with the figures). The stack is a private `casework dev` stack with its supervisor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bench.chaos import ChaosStack, run_scenario

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
async def chaos_stack() -> AsyncIterator[ChaosStack]:
    stack = ChaosStack()
    try:
        await asyncio.to_thread(stack.start)
        yield stack
    finally:
        await asyncio.to_thread(stack.stop)


async def test_killing_the_relay_leader_loses_and_duplicates_nothing(
    chaos_stack: ChaosStack,
) -> None:
    leader = chaos_stack.pid("intake worker")

    outcome = await run_scenario(
        chaos_stack, "relay-leader", rate=5, seconds=6, fault_at=2, settle=120
    )

    assert chaos_stack.pid("intake worker") != leader  # the supervisor started a new one
    assert outcome.accepted >= 25
    assert (outcome.lost, outcome.duplicated) == (0, 0)
    assert outcome.recovery_s is not None


async def test_killing_the_broker_loses_and_duplicates_nothing(chaos_stack: ChaosStack) -> None:
    broker = chaos_stack.pid("broker")

    outcome = await run_scenario(chaos_stack, "broker", rate=5, seconds=6, fault_at=2, settle=180)

    assert chaos_stack.pid("broker") != broker
    assert outcome.accepted >= 25
    assert (outcome.lost, outcome.duplicated) == (0, 0)
    assert outcome.recovery_s is not None
