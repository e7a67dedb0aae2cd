"""Builds a service's FastAPI application: conventions applied the same way everywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline

from shared.audit.keys import chain_keys
from shared.audit.log import AuditLog
from shared.auth.guide import AUTH_GUIDE
from shared.auth.tokens import TokenVerifier
from shared.clock import SYSTEM_CLOCK, Clock
from shared.db.database import Database
from shared.http.health import broker_check, database_check, health_router
from shared.http.middleware import (
    BodySizeLimitMiddleware,
    MalformedRequestMiddleware,
    RefusalAuditMiddleware,
    RequestContextMiddleware,
    SourceRateLimitMiddleware,
)
from shared.http.problems import PROBLEM_JSON, Problem, install_problem_handlers
from shared.http.rate_limits import RateLimiter
from shared.settings import Settings
from shared.spec import ServiceSpec


def service_database(spec: ServiceSpec, settings: Settings) -> Database:
    return Database(
        settings.database_url_for(spec.name),
        schema=spec.schema,
        pool_size=settings.database_pool_size,
        acquire_timeout=settings.database_acquire_timeout_seconds,
    )


def create_app(
    spec: ServiceSpec,
    settings: Settings | None = None,
    *,
    topics: Sequence[str] = (),
    clock: Clock = SYSTEM_CLOCK,
) -> FastAPI:
    """`topics`: the declared topics, which readiness checks exist (services/registry.py
    TOPICS); without them readiness checks only that the broker answers. `clock`: what time it
    is for the service's rules (`ClockDep`); tests pass a `FrozenClock`."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = service_database(spec, settings)
        await database.connect()
        app.state.database = database
        app.state.readiness = [
            database_check(database, settings),
            broker_check(settings, topics, required=False),
        ]
        try:
            if spec.api_lifespan is None:
                yield
            else:
                async with spec.api_lifespan(app):
                    yield
        finally:
            await database.close()

    # /docs and /redoc serve their scripts from the package, not a CDN: they work offline and,
    # with the server's root path (settings.http_root_path), behind the gateway's prefix.
    app = FastAPIOffline(
        title=f"Casework {spec.title}",
        description=spec.description + AUTH_GUIDE,
        version="1.0.0",
        lifespan=lifespan,
        generate_unique_id_function=partial(operation_id, spec.name),
    )
    app.state.settings = settings
    app.state.spec = spec
    app.state.clock = clock
    app.state.verifier = TokenVerifier(settings)
    app.state.rate_limiter = RateLimiter(settings)
    app.state.audit_log = AuditLog(schema=spec.schema, keys=chain_keys(settings))
    for check in spec.settings_checks:
        check(settings)
    install_problem_handlers(app)
    # The last added runs first: request id, then the per-source rate (before any work),
    # malformed requests, the audit of unaudited refusals, the body limit.
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=settings.max_request_body_bytes,
        bulk_max_bytes=settings.max_bulk_body_bytes,
        bulk_paths=tuple(spec.bulk_upload_paths),
    )
    app.add_middleware(RefusalAuditMiddleware)
    app.add_middleware(MalformedRequestMiddleware)
    app.add_middleware(SourceRateLimitMiddleware)
    if settings.cors_allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allowed_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=list(CORS_REQUEST_HEADERS),
            expose_headers=list(CORS_RESPONSE_HEADERS),
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware, service=spec.name)
    app.include_router(health_router(service=spec.name))
    for router in spec.routers:
        app.include_router(router)
    refine_openapi(app)
    return app


_ANY_OPERATION = {
    "400": "Malformed request (a path or header with control characters, or not UTF-8)",
    "429": "Too many requests; retry after the `Retry-After` seconds",
}


# What a browser may send and read across origins: the API's own headers, no more.
CORS_REQUEST_HEADERS = (
    "Authorization",
    "Content-Type",
    "If-Match",
    "Idempotency-Key",
    "Last-Event-ID",
    "X-Request-Id",
    "X-Purpose-Of-Use",
    "X-Break-Glass-Reason",
    "traceparent",
)
CORS_RESPONSE_HEADERS = ("ETag", "Location", "Retry-After", "X-Request-Id", "traceparent")


def operation_id(service: str, route: APIRoute) -> str:
    """Stable, unique and service-prefixed (`intake_get_client`): what generated clients name
    their methods after. Function names are unique within a service (checked by a test)."""
    return f"{service}_{route.name}"


def refine_openapi(app: FastAPI) -> None:
    """Make the document say what the service does: every error is application/problem+json
    (FastAPI documents its automatic 422 as application/json HTTPValidationError), any request
    may be answered 400 (malformed) or 429 (over a rate), and `If-Match` is required wherever
    its absence is answered 428."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        if "Problem" not in schemas:
            problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(problem.pop("$defs", {}))
            schemas["Problem"] = problem
        problem_ref = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for operation in (op for path in document["paths"].values() for op in path.values()):
            # Any request may be malformed (400) or over a rate (429): middleware answers them.
            for status, description in _ANY_OPERATION.items():
                operation.setdefault("responses", {}).setdefault(
                    status, {"description": description, "content": problem_ref}
                )
            if "428" in operation.get("responses", {}):
                for parameter in operation.get("parameters", []):
                    if parameter["in"] == "header" and parameter["name"].lower() == "if-match":
                        parameter["required"] = True
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if status.startswith(("4", "5")) and "application/json" in content:
                    # A typed problem (documented_problem) keeps its schema; FastAPI's own
                    # validation error and untyped errors are the generic Problem.
                    schema = content["application/json"].get("schema", {})
                    typed = schema.get("$ref", "").rsplit("/", 1)[-1] not in (
                        "",
                        "HTTPValidationError",
                        "Problem",
                    )
                    problem = schema if typed else {"$ref": "#/components/schemas/Problem"}
                    response["content"] = {PROBLEM_JSON: {"schema": problem}}
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


async def get_database(request: Request) -> Database:
    # async on purpose: FastAPI runs a plain `def` dependency in a thread pool on every request.
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]


def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


ClockDep = Annotated[Clock, Depends(get_clock)]


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]
