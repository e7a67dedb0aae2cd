"""ASGI middleware: request id and trace context, request metrics, a body size limit, a rate
limit per source address, refusal of malformed requests, and the audit of refusals after
authentication that no endpoint audited.

Written as plain ASGI (not BaseHTTPMiddleware) because they sit on every request's hot path.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.audit import attempts
from shared.audit.attempts import record_attempt
from shared.audit.log import written_in_request
from shared.audit.refusals import record_refusal
from shared.auth.principal import PRINCIPAL_SCOPE_KEY, Principal
from shared.auth.tokens import InvalidToken, TokenVerifier
from shared.db.database import UNAVAILABLE_ERRORS, DatabaseUnavailable
from shared.http.problems import PROBLEM_BASE, PROBLEM_JSON, ProblemError, log_unexpected
from shared.http.rate_limits import RateLimiter
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS
from shared.text import refusal
from shared.tracing import continue_or_start, current_request_id, current_trace

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"[!-~]{1,128}")
# Control characters in a header value (tab allowed); real servers refuse most, not all.
_HEADER_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_UNAVAILABLE: tuple[type[Exception], ...] = (DatabaseUnavailable, *UNAVAILABLE_ERRORS)
# Probes and scrapes, from the platform, are not rate limited.
_UNLIMITED_PREFIXES = ("/health/", "/metrics")


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return None


class RequestContextMiddleware:
    """Sets the request id and trace context for logs and events; records request metrics."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied_id = _header(scope, b"x-request-id")
        # The id lands in logs and audit rows: visible ASCII only, or a fresh one.
        request_id = (
            supplied_id if supplied_id and _REQUEST_ID.fullmatch(supplied_id) else str(uuid.uuid4())
        )
        trace = continue_or_start(_header(scope, b"traceparent"))
        request_token = current_request_id.set(request_id)
        trace_token = current_trace.set(trace)
        status = 500
        started = time.perf_counter()

        status_sent = False

        async def send_with_context(message: Message) -> None:
            nonlocal status, status_sent
            if message["type"] == "http.response.start":
                status = message["status"]
                status_sent = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                headers.append((b"traceparent", trace.traceparent.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        except Exception as error:
            # Answer here, while the request id is still in force, rather than letting the
            # server's outermost handler answer without it (and drop the connection).
            log_unexpected(error)
            if status_sent:
                raise
            status = 500
            await send_problem(
                send,
                status=500,
                slug="internal-error",
                title="Internal error",
                detail="The request failed on our side; quote the request id when reporting it.",
                instance=scope.get("path"),
                extra_headers=[
                    (b"x-request-id", request_id.encode()),
                    (b"traceparent", trace.traceparent.encode()),
                ],
            )
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "unmatched")
            HTTP_REQUESTS.labels(self.service, scope["method"], template, status).inc()
            HTTP_LATENCY.labels(self.service, scope["method"], template).observe(
                time.perf_counter() - started
            )
            current_request_id.reset(request_token)
            current_trace.reset(trace_token)


class BodySizeLimitMiddleware:
    """Refuses bodies over the limit with 413 problem details, before any handler reads them.

    `bulk_paths` (exact paths, e.g. a directory import) take bodies up to `bulk_max_bytes`,
    and only from callers that present a bearer token (checked by the endpoint), so an
    anonymous caller never makes the service hold more than `max_bytes`."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        bulk_max_bytes: int | None = None,
        bulk_paths: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.bulk_max_bytes = max(bulk_max_bytes or max_bytes, max_bytes)
        self.bulk_paths = frozenset(bulk_paths)

    def _limit(self, scope: Scope) -> int:
        authorization = _header(scope, b"authorization") or ""
        if scope.get("path") in self.bulk_paths and authorization.lower().startswith("bearer "):
            return self.bulk_max_bytes
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, send, limit)
            return
        # Read the whole (small) body first, so an over-long chunked body is refused before
        # the application sees any of it; then replay it.
        chunks: list[bytes] = []
        size = 0
        more_body = True
        while more_body:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._refuse(scope, send, limit)
                return
            chunks.append(chunk)
            more_body = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, send: Send, limit: int) -> None:
        await send_problem(
            send,
            status=413,
            slug="payload-too-large",
            title="Request body too large",
            detail=f"Request bodies are limited to {limit} bytes; nothing was changed.",
            instance=scope.get("path"),
        )


def _source_address(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


async def _send_error(scope: Scope, send: Send, error: ProblemError) -> None:
    await send_problem(
        send,
        status=error.status,
        slug=error.slug,
        title=error.title,
        detail=error.detail or error.title,
        instance=None,
        extra_headers=[
            (name.lower().encode(), value.encode()) for name, value in (error.headers or {}).items()
        ],
    )


class SourceRateLimitMiddleware:
    """Any request over the per-source rate is answered 429 before routing or database work."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(_UNLIMITED_PREFIXES):
            await self.app(scope, receive, send)
            return
        limiter: RateLimiter = scope["app"].state.rate_limiter
        throttled = limiter.source(_source_address(scope))
        if throttled is not None:
            await _send_error(scope, send, throttled)
            return
        await self.app(scope, receive, send)


def malformation(scope: Scope) -> str | None:
    """Why the request cannot be routed safely, or None: a path that does not decode as
    UTF-8 or holds control, bidirectional or zero-width characters (`%00`), or a header value
    with control characters."""
    raw_path = scope.get("raw_path")
    if raw_path is not None:
        try:
            unquote_to_bytes(bytes(raw_path)).decode("utf-8")
        except UnicodeDecodeError:
            return "The path is not valid UTF-8."
    path = str(scope.get("path", ""))
    if "\ufffd" in path or refusal(path) is not None:
        return "The path holds characters no resource name has."
    for _name, value in scope.get("headers", ()):
        if _HEADER_CONTROL.search(value):
            return "A header value holds control characters."
    return None


class MalformedRequestMiddleware:
    """A malformed request is a 400 problem before routing (it used to reach a query and come
    back as a 500), counted like an attempt without a valid token: rate limited per source,
    then aggregated per source and minute in the audit (never with its path)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reason = malformation(scope) if scope["type"] == "http" else None
        if reason is None:
            await self.app(scope, receive, send)
            return
        app_state = scope["app"].state
        source = _source_address(scope)
        throttled = app_state.rate_limiter.unauthenticated(source)
        if throttled is not None:
            await _send_error(scope, send, throttled)
            return
        try:
            await record_attempt(
                app_state.database,
                audit_log=app_state.audit_log,
                action=attempts.action(str(scope.get("method", "")), attempts.MALFORMED_ROUTE),
                source_address=source,
                request_id=current_request_id.get(),
            )
        except _UNAVAILABLE as error:  # the refusal changed nothing: still send it
            log.warning(
                "malformed request not counted: database unavailable",
                extra={"error_type": type(error).__name__},
            )
        await send_problem(
            send,
            status=400,
            slug="malformed-request",
            title="Malformed request",
            detail=reason,
            instance=None,
        )


class RefusalAuditMiddleware:
    """Every 4xx leaves a trace, written before the answer leaves: when nothing in the request
    audited or counted it (a validation error, an unknown method, a body FastAPI could not
    parse before any dependency ran...), it is audited under the caller's identity if the
    request carries a valid token, and counted as an unauthenticated attempt otherwise (within
    the per-source rate for those; over it, only logged). 429s are the rate limiter's own
    answers and leave nothing. If the database is unavailable the refusal is still sent: it
    changed nothing, and the failure is logged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        written: list[int] = []
        token = written_in_request.set(written)

        async def send_audited(message: Message) -> None:
            if (
                message["type"] == "http.response.start"
                and 400 <= message["status"] < 500
                and message["status"] != 429
                and not written
            ):
                await self._audit(scope, message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_audited)
        finally:
            written_in_request.reset(token)

    @staticmethod
    async def _audit(scope: Scope, status: int) -> None:
        app_state = scope["app"].state
        route = getattr(scope.get("route"), "path", attempts.UNMATCHED_ROUTE)
        action = attempts.action(str(scope.get("method", "")), route)
        source = _source_address(scope)
        try:
            principal = scope.get(PRINCIPAL_SCOPE_KEY) or await _bearer_principal(scope)
            if principal is not None:
                await record_refusal(
                    app_state.database,
                    audit_log=app_state.audit_log,
                    principal=principal,
                    action=action,
                    status=status,
                    request_id=current_request_id.get(),
                    source_address=source,
                )
            elif app_state.rate_limiter.unauthenticated(source) is None:
                await record_attempt(
                    app_state.database,
                    audit_log=app_state.audit_log,
                    action=action,
                    source_address=source,
                    request_id=current_request_id.get(),
                )
            else:
                log.warning("refusal not counted: over the unauthenticated rate")
        except _UNAVAILABLE as error:
            log.warning(
                "refusal not audited: database unavailable",
                extra={"error_type": type(error).__name__, "status": status},
            )


async def _bearer_principal(scope: Scope) -> Principal | None:
    """The principal of the request's bearer token, when it carries a valid one."""
    authorization = _header(scope, b"authorization") or ""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    verifier: TokenVerifier = scope["app"].state.verifier
    try:
        return await verifier.verify(credentials.strip())
    except InvalidToken:
        return None


async def send_problem(
    send: Send,
    *,
    status: int,
    slug: str,
    title: str,
    detail: str,
    instance: str | None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """A problem-details response written straight to ASGI, for middleware."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "request_id": current_request_id.get(),
    }
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(payload)).encode()),
                *(extra_headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
