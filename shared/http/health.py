"""Liveness, readiness and Prometheus metrics, for the API and the worker alike.

Readiness runs its checks concurrently and answers within `readiness_timeout_seconds` whatever
they do: a check that has not answered by then counts as "timeout" (a frozen broker or database
must not make the probe itself hang). Each check answers "ok" (or "ok (...)") or what is wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.db.database import Database
from shared.messaging.kafka import topics_state
from shared.messaging.relay import outbox_backlog
from shared.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_SECONDS
from shared.settings import Settings


@dataclass(frozen=True)
class ReadinessCheck:
    name: str
    probe: Callable[[], Awaitable[str]]
    # Not required: a failure makes the answer "degraded" (200) rather than "not_ready" (503).
    required: bool = True


def database_check(database: Database, settings: Settings) -> ReadinessCheck:
    async def probe() -> str:
        reachable = await database.is_reachable(settings.readiness_timeout_seconds)
        return "ok" if reachable else "unreachable"

    return ReadinessCheck("database", probe)


def broker_check(settings: Settings, topics: Sequence[str], *, required: bool) -> ReadinessCheck:
    """The broker answers and has every declared topic."""

    async def probe() -> str:
        return await topics_state(settings, topics)

    return ReadinessCheck("broker", probe, required=required)


# Checks cut off by the deadline finish in the background; keep them referenced until then.
_abandoned: set[asyncio.Task[str]] = set()


async def run_checks(checks: Sequence[ReadinessCheck], timeout: float) -> dict[str, str]:
    tasks = {check.name: asyncio.ensure_future(check.probe()) for check in checks}
    await asyncio.wait(tasks.values(), timeout=timeout)
    results: dict[str, str] = {}
    for name, task in tasks.items():
        if not task.done():
            task.cancel()
            _abandoned.add(task)
            task.add_done_callback(_abandoned.discard)
            results[name] = "timeout"
        elif task.cancelled() or task.exception() is not None:
            results[name] = "error"
        else:
            results[name] = task.result()
    return results


def health_router(*, service: str) -> APIRouter:
    """The app's `state.readiness` (a list of ReadinessCheck) says what ready means; the API
    leaves the broker not required: thanks to the outbox it accepts writes while the broker is
    away, so it reports `degraded` and stays in the load balancer."""
    router = APIRouter(tags=["operations"])

    @router.get(
        "/health/live",
        summary="The process can still answer",
        responses={503: {"description": "Wedged: no database connection for too long"}},
    )
    async def live(request: Request) -> JSONResponse:
        database: Database = request.app.state.database
        settings: Settings = request.app.state.settings
        if database.is_starved(settings.liveness_starved_seconds):
            # Every request has been waiting for a connection for that long: restart me.
            return JSONResponse(
                {"status": "starved", "service": service, "checks": {"database_pool": "starved"}},
                status_code=503,
            )
        return JSONResponse({"status": "live", "service": service})

    @router.get(
        "/health/ready",
        summary="Every dependency answers within a second",
        responses={503: {"description": "Not ready: a required check failed or timed out"}},
    )
    async def ready(request: Request) -> JSONResponse:
        settings: Settings = request.app.state.settings
        checks: list[ReadinessCheck] = request.app.state.readiness
        results = await run_checks(checks, settings.readiness_timeout_seconds)
        failing = {name for name, state in results.items() if not state.startswith("ok")}
        required_failing = failing & {check.name for check in checks if check.required}
        if required_failing:
            status, code = "not_ready", 503
        else:
            status, code = ("degraded", 200) if failing else ("ready", 200)
        return JSONResponse(
            {"status": status, "service": service, "checks": results}, status_code=code
        )

    @router.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        database: Database = request.app.state.database
        if await database.is_reachable():
            async with database.pool.acquire() as connection:
                count, oldest = await outbox_backlog(connection)
            OUTBOX_BACKLOG.labels(service).set(count)
            OUTBOX_OLDEST_SECONDS.labels(service).set(oldest)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
