"""`make chaos`: kill one part of a running stack at a time, under load, and count what survived.

The stack is the bench's private one (bench/stack.py: PostgreSQL, broker and every service's
API and worker on free ports, data in a temporary directory) with the dev stack's supervisor
running, as under `make run`: whatever is killed is started again by it. Per scenario, intake
receives a steady stream of registrations (`--rate` per second for `--seconds`, and on until
one sent after the fault is accepted); `--fault-at` seconds in, one thing is killed:

- `api`: the intake API, kill -9;
- `relay-leader`: intake's worker, kill -9. The dev stack runs one worker per service, so it
  is the relay that holds intake's leader lock;
- `consumer`: planning's worker (its consumer group's only member), kill -9;
- `postgres`: PostgreSQL's immediate shutdown (SIGQUIT: what a crash leaves, crash recovery
  on the next start), then started again by the supervisor;
- `broker`: the embedded broker, kill -9. It comes back empty (the Tansu build keeps its log
  in memory) and, Linux holding its port in TIME_WAIT, only after about a minute.

Then it waits (up to `--settle` seconds) for every accepted client to reach every consumer
and reports:

- `accepted`: registrations answered 201; `refused`: any other answer or none (the load does
  not retry, so these are the clients the outage turned away, not a loss);
- `lost`: accepted clients that some consumer (planning, referrals, notifications) never
  stored in its client_refs;
- `duplicated`: events about one client that a consumer applied more than once (its inbox
  holding two handled ClientRegistered events for one client);
- `recovery_s`: from the fault until the first client registered after it had reached every
  consumer (the whole path working again); none if that never happened.

The exit status is 1 if any scenario lost or duplicated something, or did not recover.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import httpx

from bench.people import ORGANIZATION, TEAM, WORKER
from bench.stack import BenchStack, wait_ready
from services.devstack import DevStack
from services.registry import SERVICES
from shared.auth.tokens import issue_dev_token
from shared.events.contracts import ClientRegistered
from shared.settings import Settings


@dataclass(frozen=True)
class Outcome:
    scenario: str
    accepted: int
    refused: int
    lost: int
    duplicated: int
    recovery_s: float | None
    lost_by_consumer: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.duplicated == 0 and self.recovery_s is not None


class ChaosStack:
    """The bench's private stack, supervised as `make run` supervises its own."""

    def __init__(self) -> None:
        self.bench = BenchStack()
        self._stop = threading.Event()
        self._supervision: threading.Thread | None = None

    def start(self) -> None:
        self.bench.start(with_baseline=False)
        self._supervision = threading.Thread(
            target=self.devstack.watch, args=(self._stop,), name="supervisor", daemon=True
        )
        self._supervision.start()

    def stop(self) -> None:
        self._stop.set()
        if self._supervision is not None:
            self._supervision.join()
        self.bench.stop()

    @property
    def devstack(self) -> DevStack:
        assert self.bench.devstack is not None, "the stack is not started"
        return self.bench.devstack

    @property
    def settings(self) -> Settings:
        assert self.bench.settings is not None, "the stack is not configured"
        return self.bench.settings

    def pid(self, name: str) -> int:
        """The process id of a service's child ("intake api"), the "broker" or "postgres"."""
        devstack = self.devstack
        processes = {child.name: child.process for child in devstack.children}
        processes["broker"] = devstack.broker.process if devstack.broker else None
        processes["postgres"] = devstack.postgres.process if devstack.postgres else None
        process = processes[name]
        assert process is not None, f"{name} is not running"
        return process.pid

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Every API and worker answers ready (a scenario starts on a healthy stack)."""
        settings = self.settings
        for spec in SERVICES.values():
            for port in (spec.http_port(settings), spec.worker_port(settings)):
                wait_ready(f"http://127.0.0.1:{port}/health/ready", timeout)


Fault = Callable[[ChaosStack], None]


def _kill(name: str, signum: int = signal.SIGKILL) -> Fault:
    def fault(stack: ChaosStack) -> None:
        os.kill(stack.pid(name), signum)

    return fault


SCENARIOS: dict[str, Fault] = {
    "api": _kill("intake api"),
    "relay-leader": _kill("intake worker"),
    "consumer": _kill("planning worker"),
    "postgres": _kill("postgres", signal.SIGQUIT),
    # Last: until the broker-loss healing lands, what a lost log does to the consumers'
    # positions spills into any scenario run after it.
    "broker": _kill("broker"),
}


def _registration() -> dict[str, str]:
    return {
        "given_name": "Chaos",
        "family_name": f"Load {uuid.uuid4().hex[:12]}",
        "birth_date": "1980-05-17",
        "preferred_language": "en",
        "duplicate_check": "confirmed_new",
    }


async def _load(
    http: httpx.AsyncClient,
    url: str,
    *,
    rate: float,
    seconds: float,
    fault: asyncio.Event,
    give_up_at: float,
) -> tuple[list[str], int]:
    """POST registrations at a steady `rate` for `seconds`, and on (same rate) until one sent
    after the fault is accepted, or `give_up_at` (loop time): without one, a short load would
    end before an API restarted and recovery could not be measured.
    Returns the ids accepted with 201 and the count of requests refused."""
    accepted: list[str] = []
    refused = 0
    recovered = asyncio.Event()

    async def register() -> None:
        nonlocal refused
        after_fault = fault.is_set()
        try:
            response = await http.post(url, json=_registration())
        except httpx.HTTPError:
            refused += 1
            return
        if response.status_code == 201:
            accepted.append(response.json()["id"])
            if after_fault:
                recovered.set()
        else:
            refused += 1

    loop = asyncio.get_running_loop()
    started = loop.time()
    requests: list[asyncio.Task[None]] = []
    index = 0
    while index < rate * seconds or not (recovered.is_set() or loop.time() > give_up_at):
        await asyncio.sleep(max(0.0, started + index / rate - loop.time()))
        requests.append(asyncio.create_task(register()))
        index += 1
    await asyncio.gather(*requests)
    return accepted, refused


def _consumers() -> list[str]:
    return [name for name, spec in SERVICES.items() if ClientRegistered.event_type in spec.handlers]


async def _arrivals(
    connection: asyncpg.Connection, client_ids: Sequence[str]
) -> dict[str, dict[str, datetime]]:
    """Per consumer service: client id -> when it stored the client's reference."""
    arrivals: dict[str, dict[str, datetime]] = {}
    for service in _consumers():
        rows = await connection.fetch(
            f'SELECT client_id::text, received_at FROM "{SERVICES[service].schema}".client_refs'
            " WHERE client_id = ANY($1::uuid[])",
            list(client_ids),
        )
        arrivals[service] = {row[0]: row[1] for row in rows}
    return arrivals


async def _duplicated(connection: asyncpg.Connection, client_ids: Sequence[str]) -> int:
    """Handled ClientRegistered events beyond the first, per consumer and client."""
    total = 0
    for service in _consumers():
        total += await connection.fetchval(
            f"""
            SELECT coalesce(sum(handled - 1), 0) FROM (
                SELECT count(*) AS handled
                FROM "{SERVICES[service].schema}".inbox AS inbox
                JOIN intake.outbox AS outbox ON outbox.id::text = inbox.event_id
                WHERE inbox.event_type = $1 AND outbox.aggregateid = ANY($2::text[])
                GROUP BY outbox.aggregateid
            ) AS per_client
            """,
            ClientRegistered.event_type,
            list(client_ids),
        )
    return int(total)


async def _recovery_seconds(
    connection: asyncpg.Connection,
    arrivals: dict[str, dict[str, datetime]],
    client_ids: Sequence[str],
    fault_at: float,
) -> float | None:
    rows = await connection.fetch(
        "SELECT id::text, created_at FROM intake.clients WHERE id = ANY($1::uuid[])"
        " AND created_at >= to_timestamp($2)",
        list(client_ids),
        fault_at,
    )
    everywhere = [
        max(arrivals[service][row[0]] for service in arrivals)
        for row in rows
        if all(row[0] in seen for seen in arrivals.values())
    ]
    if not everywhere:
        return None
    return round(min(everywhere).timestamp() - fault_at, 2)


async def run_scenario(
    stack: ChaosStack,
    name: str,
    *,
    rate: float = 20.0,
    seconds: float = 15.0,
    fault_at: float = 5.0,
    settle: float = 120.0,
) -> Outcome:
    """Load, fault, wait for the consumers, count."""
    await asyncio.to_thread(stack.wait_ready)
    token = issue_dev_token(
        stack.settings,
        subject=WORKER,
        roles=["caseworker"],
        organization_id=ORGANIZATION,
        team_id=TEAM,
    )
    async with httpx.AsyncClient(timeout=10, headers={"Authorization": f"Bearer {token}"}) as http:
        faulted = asyncio.Event()
        load = asyncio.create_task(
            _load(
                http,
                f"{stack.bench.api_url('intake')}/v1/clients",
                rate=rate,
                seconds=seconds,
                fault=faulted,
                give_up_at=asyncio.get_running_loop().time() + seconds + settle,
            )
        )
        await asyncio.sleep(fault_at)  # when the fault strikes: part of the scenario, not a wait
        faulted_at = time.time()  # compared with PostgreSQL's clock: the same machine's
        await asyncio.to_thread(SCENARIOS[name], stack)
        faulted.set()
        accepted, refused = await load

    connection: asyncpg.Connection = await _connect(stack.bench.admin_url, settle)
    try:
        deadline = time.monotonic() + settle
        while True:
            arrivals = await _arrivals(connection, accepted)
            lost = sum(
                1 for client in accepted if any(client not in seen for seen in arrivals.values())
            )
            if lost == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        duplicated = await _duplicated(connection, accepted)
        recovery = await _recovery_seconds(connection, arrivals, accepted, faulted_at)
    finally:
        await connection.close()
    lost_by_consumer = {
        service: sum(1 for client in accepted if client not in seen)
        for service, seen in arrivals.items()
    }
    return Outcome(name, len(accepted), refused, lost, duplicated, recovery, lost_by_consumer)


async def _connect(url: str, timeout: float) -> asyncpg.Connection:
    """The admin connection, once PostgreSQL is back (the postgres scenario restarts it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            connection: asyncpg.Connection = await asyncpg.connect(url)
            return connection
        except (OSError, asyncpg.PostgresError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


def table(outcomes: Sequence[Outcome]) -> str:
    lines = [
        f"{'scenario':<14}{'accepted':>9}{'refused':>9}{'lost':>6}{'duplicated':>11}"
        f"{'recovery_s':>12}"
    ]
    for outcome in outcomes:
        recovery = "never" if outcome.recovery_s is None else f"{outcome.recovery_s:.2f}"
        lines.append(
            f"{outcome.scenario:<14}{outcome.accepted:>9}{outcome.refused:>9}{outcome.lost:>6}"
            f"{outcome.duplicated:>11}{recovery:>12}"
        )
    return "\n".join(lines)


async def _run_all(stack: ChaosStack, names: Sequence[str], args: argparse.Namespace) -> bool:
    outcomes: list[Outcome] = []
    for name in names:
        print(f"[chaos] {name}: {args.rate:g}/s for {args.seconds:g}s", file=sys.stderr)
        outcomes.append(
            await run_scenario(
                stack,
                name,
                rate=args.rate,
                seconds=args.seconds,
                fault_at=args.fault_at,
                settle=args.settle,
            )
        )
        print(table(outcomes[-1:]).splitlines()[1], file=sys.stderr)
        if outcomes[-1].lost:
            print(f"[chaos] lost by consumer: {outcomes[-1].lost_by_consumer}", file=sys.stderr)
    print(table(outcomes), flush=True)
    return all(outcome.clean for outcome in outcomes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos", description="Kill parts of a running stack under load."
    )
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma-separated, in order"
    )
    parser.add_argument("--rate", type=float, default=20.0, help="registrations per second")
    parser.add_argument("--seconds", type=float, default=15.0, help="load per scenario")
    parser.add_argument("--fault-at", type=float, default=5.0, help="seconds into the load")
    parser.add_argument("--settle", type=float, default=120.0, help="wait for consumers, at most")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    stack = ChaosStack()
    try:
        stack.start()
        clean = asyncio.run(_run_all(stack, names, args))
    except KeyboardInterrupt:
        return 130
    finally:
        stack.stop()
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
