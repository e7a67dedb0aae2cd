"""RFC 9457 problem details for every error a service returns."""

from __future__ import annotations

import logging
import traceback
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from shared.db.database import UNAVAILABLE_ERRORS, Database, DatabaseUnavailable
from shared.tracing import current_request_id

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://casework.dev/problems/"


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. `body.birth_date`.")
    message: str
    code: str = Field(description="Machine-readable reason, e.g. `missing`, `date_future`.")


class Problem(BaseModel):
    """The body of every error response (media type application/problem+json)."""

    type: str = Field(description="A URI naming the kind of problem.")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    errors: list[FieldError] | None = None


def not_found(resource_type: str) -> ProblemError:
    return ProblemError(404, "not-found", "Not found", detail=f"No {resource_type} with this id.")


class ProblemError(Exception):
    """Raise to answer with problem details; `extra` members are added to the body."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.headers = headers
        self.extra = extra


def problem_response(
    request: Request,
    *,
    status: int,
    slug: str,
    title: str,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "instance": request.url.path,
        "request_id": current_request_id.get(),
    }
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


_STATUS_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthenticated", "Authentication required"),
    403: ("forbidden", "Not allowed"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    412: ("precondition-failed", "Precondition failed"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    428: ("precondition-required", "Precondition required"),
    429: ("too-many-requests", "Too many requests"),
    503: ("service-unavailable", "Service unavailable"),
}


def unavailable(retry_after_seconds: int = 2) -> ProblemError:
    return ProblemError(
        503,
        "service-unavailable",
        "Service unavailable",
        detail="A dependency of this service is unavailable or busy; nothing was changed. "
        "Retry after the time in Retry-After.",
        headers={"Retry-After": str(retry_after_seconds)},
    )


def log_unexpected(error: BaseException) -> None:
    """Log an unhandled error without the values it may quote: a database error's message and
    detail can carry row values (client data), so only its class, SQLSTATE, constraint and
    the stack are logged."""
    if isinstance(error, asyncpg.PostgresError):
        log.error(
            "unhandled database error",
            extra={
                "error_type": type(error).__name__,
                "sqlstate": getattr(error, "sqlstate", None),
                "constraint": getattr(error, "constraint_name", None),
                "table": getattr(error, "table_name", None),
                "column": getattr(error, "column_name", None),
                "stack": "".join(traceback.format_tb(error.__traceback__)),
            },
        )
        return
    log.error("unhandled error", exc_info=error)


def _field_errors(error: RequestValidationError) -> list[dict[str, str]]:
    return [
        {
            "field": ".".join(str(part) for part in item.get("loc", ())),
            "message": str(item.get("msg", "")).removeprefix("Value error, "),
            "code": str(item.get("type", "invalid")),
        }
        for item in error.errors()
    ]


def allowed_methods(request: Request) -> list[str]:
    """Every method the service documents at the request's path (for a 405's Allow header),
    read from its OpenAPI paths: the public description of its routes."""
    path: str = request.scope["path"]
    root_path: str = request.scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path.removeprefix(root_path)
    methods: set[str] = set()
    for template, operations in request.app.openapi()["paths"].items():
        pattern, _format, _converters = compile_path(template)
        if pattern.match(path):
            methods |= {method.upper() for method in operations}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def on_problem(request: Request, error: ProblemError) -> JSONResponse:
        # A refusal raised before the request took a connection still carries its audit.
        database: Database | None = getattr(request.app.state, "database", None)
        if database is not None:
            try:
                await database.run_deferred(error)
            except DatabaseUnavailable as outage:
                return await on_unavailable(request, outage)
        return problem_response(
            request,
            status=error.status,
            slug=error.slug,
            title=error.title,
            detail=error.detail,
            headers=error.headers,
            **error.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, error: RequestValidationError) -> JSONResponse:
        return problem_response(
            request,
            status=422,
            slug="validation-error",
            title="The request is not valid",
            detail="One or more fields are missing or invalid; nothing was changed.",
            errors=_field_errors(error),
        )

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        slug, title = _STATUS_SLUGS.get(error.status_code, ("http-error", "Request failed"))
        detail = error.detail if isinstance(error.detail, str) and error.detail != title else None
        headers = dict(error.headers) if error.headers else {}
        if error.status_code == 405:
            # Starlette names only the first route whose path matched; list every method.
            headers["Allow"] = ", ".join(allowed_methods(request))
        return problem_response(
            request,
            status=error.status_code,
            slug=slug,
            title=title,
            detail=detail,
            headers=headers or None,
        )

    @app.exception_handler(DatabaseUnavailable)
    async def on_unavailable(request: Request, error: Exception) -> JSONResponse:
        retry_after = getattr(error, "retry_after_seconds", 2)
        log.warning("database unavailable", extra={"error_type": type(error).__name__})
        problem = unavailable(retry_after)
        return problem_response(
            request,
            status=problem.status,
            slug=problem.slug,
            title=problem.title,
            detail=problem.detail,
            headers=problem.headers,
        )

    for outage in UNAVAILABLE_ERRORS:
        app.add_exception_handler(outage, on_unavailable)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        log_unexpected(error)
        return problem_response(
            request,
            status=500,
            slug="internal-error",
            title="Internal error",
            detail="The request failed on our side; quote the request id when reporting it.",
        )


def _documented(description: str) -> dict[str, Any]:
    return {"model": Problem, "content": {PROBLEM_JSON: {}}, "description": description}


def documented_problem(model: type[Problem], description: str) -> dict[str, Any]:
    """For `responses=`: a problem whose body has members of its own (e.g. a 409's candidates),
    documented with its own schema under application/problem+json."""
    return {"model": model, "content": {PROBLEM_JSON: {}}, "description": description}


# The headers a created or read resource comes with, for `responses={201: {"headers": ...}}`.
RESOURCE_HEADERS: dict[str, Any] = {
    "ETag": {"description": "The version read or written: send it in If-Match to change it.",
             "schema": {"type": "string"}},
    "Location": {"description": "Where the created resource is.", "schema": {"type": "string"}},
}  # fmt: skip


# For `responses=` in route decorators, so OpenAPI documents the problem bodies.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    **{status: _documented(title) for status, (_slug, title) in _STATUS_SLUGS.items()},
    422: _documented("Validation error"),
    500: _documented("Internal error"),
}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """For `responses=`: the documented problem bodies of these status codes."""
    return {code: PROBLEM_RESPONSES[code] for code in codes}
