"""Builds a service's FastAPI application: conventions applied the same way everywhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from shared.auth.guide import AUTH_GUIDE
from shared.auth.tokens import TokenVerifier
from shared.db.database import Database
from shared.http.health import health_router
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


def create_app(spec: ServiceSpec, settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = service_database(spec, settings)
        await database.connect()
        app.state.database = database
        try:
            yield
        finally:
            await database.close()

    app = FastAPI(
        title=f"Casework {spec.title}",
        description=spec.description + AUTH_GUIDE,
        version="1.0.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.spec = spec
    app.state.verifier = TokenVerifier(settings)
    app.state.rate_limiter = RateLimiter(settings)
    install_problem_handlers(app)
    # The last added runs first: request id, then the per-source rate (before any work),
    # malformed requests, the audit of unaudited refusals, the body limit.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_request_body_bytes)
    app.add_middleware(RefusalAuditMiddleware)
    app.add_middleware(MalformedRequestMiddleware)
    app.add_middleware(SourceRateLimitMiddleware)
    app.add_middleware(RequestContextMiddleware, service=spec.name)
    app.include_router(health_router(service=spec.name, broker_required=False))
    for router in spec.routers:
        app.include_router(router)
    document_problems(app)
    return app


_ANY_OPERATION = {
    "400": "Malformed request (a path or header with control characters, or not UTF-8)",
    "429": "Too many requests; retry after the `Retry-After` seconds",
}


def document_problems(app: FastAPI) -> None:
    """FastAPI documents its automatic 422 as application/json HTTPValidationError; this
    service answers every error as application/problem+json. Make the document say so."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
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
            for status, response in operation.get("responses", {}).items():
                if status.startswith(("4", "5")) and "application/json" in response.get(
                    "content", {}
                ):
                    response["content"] = problem_ref
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]


async def get_database(request: Request) -> Database:
    # async on purpose: FastAPI runs a plain `def` dependency in a thread pool on every request.
    database: Database = request.app.state.database
    return database


DatabaseDep = Annotated[Database, Depends(get_database)]
