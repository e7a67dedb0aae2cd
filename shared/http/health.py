"""Liveness, readiness and Prometheus metrics, for the API and the worker alike."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.db.database import Database
from shared.messaging.kafka import broker_is_reachable
from shared.messaging.relay import outbox_backlog
from shared.metrics import OUTBOX_BACKLOG, OUTBOX_OLDEST_SECONDS
from shared.settings import Settings


def health_router(*, service: str, broker_required: bool) -> APIRouter:
    """`broker_required=False` for the API: thanks to the outbox it accepts writes while the
    broker is away, so it reports `degraded` and stays in the load balancer."""
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
        summary="Database and broker reachable",
        responses={503: {"description": "Not ready: a required dependency is unreachable"}},
    )
    async def ready(request: Request) -> JSONResponse:
        database: Database = request.app.state.database
        settings: Settings = request.app.state.settings
        checks = {
            "database": "ok" if await database.is_reachable() else "unreachable",
            "broker": "ok" if await broker_is_reachable(settings) else "unreachable",
        }
        failing = {name for name, state in checks.items() if state != "ok"}
        required_failing = failing - (set() if broker_required else {"broker"})
        if required_failing:
            status, code = "not_ready", 503
        else:
            status, code = ("degraded", 200) if failing else ("ready", 200)
        return JSONResponse(
            {"status": status, "service": service, "checks": checks}, status_code=code
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
