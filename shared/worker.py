"""A service's worker: its outbox relay, its event consumers and its timers, beside (not inside)
the API.

It serves /health/live, /health/ready and /metrics on its own port so ops can probe it, and
restarts a crashed loop with backoff instead of dying with it. Ready means events flow: the
database answers, the broker has every declared topic, the service's relay has a leader (this
worker or another: the advisory lock is held), and the consumer group has completed its
rebalance for this worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

import uvicorn
from fastapi import FastAPI

from shared.audit.checkpoints import Checkpointer
from shared.clock import SYSTEM_CLOCK, Clock
from shared.db.database import Database
from shared.http.app import service_database
from shared.http.health import ReadinessCheck, broker_check, database_check, health_router
from shared.http.idempotency import purge_expired
from shared.messaging.consumer import ConsumerRunner
from shared.messaging.relay import OutboxRelay
from shared.settings import Settings
from shared.spec import LoopContext, ServiceSpec, WorkerLoop
from shared.timers.runner import TimerRunner

log = logging.getLogger(__name__)

# How long the loops get to finish their clean-up (leave the consumer group, close clients)
# when the worker stops, before they are cut short: a stop never hangs.
SHUTDOWN_GRACE_SECONDS = 10.0


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to the worker that runs it."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


async def supervise(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run a loop forever; if it crashes, log and start it again after a growing pause."""
    delay = 0.5
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("worker loop crashed; restarting", extra={"loop": name})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


def _bound(loop: WorkerLoop, context: LoopContext) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        await loop(context)

    return run


class Worker:
    def __init__(
        self,
        spec: ServiceSpec,
        settings: Settings,
        *,
        topics: Sequence[str],
        serve_http: bool = True,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """`topics`: every declared topic (services/registry.py TOPICS): readiness checks them
        and the relay recreates them when the broker lost its log."""
        for check in spec.settings_checks:
            check(settings)
        self.spec = spec
        self.settings = settings
        self.topics = list(topics)
        self.serve_http = serve_http
        self.clock = clock
        self.database: Database = service_database(spec, settings)
        self.relay = OutboxRelay(
            service=spec.name, database=self.database, settings=settings, topics=self.topics
        )
        self.checkpointer = Checkpointer(
            service=spec.name, database=self.database, settings=settings
        )
        self.consumer: ConsumerRunner | None = None
        if spec.handlers:
            self.consumer = ConsumerRunner(
                group=spec.name,
                topics=spec.topics,
                handlers=spec.handlers,
                database=self.database,
                settings=settings,
            )
        self.timers: TimerRunner | None = None
        if spec.timer_handlers:
            self.timers = TimerRunner(
                service=spec.name,
                database=self.database,
                settings=settings,
                handlers=spec.timer_handlers,
                clock=clock,
            )

    def http_app(self) -> FastAPI:
        app = FastAPI(title=f"Casework {self.spec.title} worker", docs_url=None, redoc_url=None)
        app.state.database = self.database
        app.state.settings = self.settings
        app.state.readiness = self.readiness_checks()
        app.include_router(health_router(service=f"{self.spec.name}-worker"))
        return app

    async def purge_idempotency_keys(self) -> None:
        """Forget Idempotency-Key records (and the responses they hold) past their time to
        live, every ten minutes."""
        while True:
            async with self.database.connection() as connection:
                purged = await purge_expired(
                    connection, ttl_hours=self.settings.idempotency_ttl_hours
                )
            if purged:
                log.info("purged expired idempotency keys", extra={"purged": purged})
            await asyncio.sleep(600)

    def readiness_checks(self) -> list[ReadinessCheck]:
        checks = [
            database_check(self.database, self.settings),
            broker_check(self.settings, self.topics, required=True),
            ReadinessCheck("relay", self.relay.leader_state),
        ]
        consumer = self.consumer
        if consumer is not None:

            async def consumer_state() -> str:
                return consumer.state()

            checks.append(ReadinessCheck("consumer", consumer_state))
        return checks

    async def run(self) -> None:
        """Run until cancelled."""
        await self.database.connect()
        tasks = [
            asyncio.create_task(supervise("relay", self.relay.run)),
            asyncio.create_task(supervise("idempotency-purge", self.purge_idempotency_keys)),
        ]
        if self.consumer is not None:
            tasks.append(asyncio.create_task(supervise("consumer", self.consumer.run)))
        if self.timers is not None:
            tasks.append(asyncio.create_task(supervise("timers", self.timers.run)))
        tasks.append(asyncio.create_task(supervise("audit-checkpoints", self.checkpointer.run)))
        context = LoopContext(
            service=self.spec.name, database=self.database, settings=self.settings, clock=self.clock
        )
        for name, loop in self.spec.loops.items():
            tasks.append(asyncio.create_task(supervise(name, _bound(loop, context))))
        server: uvicorn.Server | None = None
        if self.serve_http:
            server = _EmbeddedServer(
                uvicorn.Config(
                    self.http_app(),
                    host=self.settings.http_host,
                    port=self.spec.worker_port(self.settings),
                    log_config=None,
                    access_log=False,
                )
            )
            tasks.append(asyncio.create_task(server.serve()))
        try:
            await asyncio.gather(*tasks)
        finally:
            if server is not None:
                server.should_exit = True
            for task in tasks:
                # Once first: a task already cancelled (gather passes the worker's own
                # cancellation on) is running its clean-up, e.g. the consumer leaving its
                # group; cutting that short leaves the group waiting for the member's session
                # to time out before anyone else gets partitions.
                if not task.done() and not task.cancelling():
                    task.cancel()
            _done, stuck = await asyncio.wait(tasks, timeout=SHUTDOWN_GRACE_SECONDS)
            for task in stuck:
                task.cancel()  # a clean-up that hangs (a broker that never answers) is cut short
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.database.close()
