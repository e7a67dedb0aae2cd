"""ASGI middleware: request id and trace context, request metrics, and a body size limit.

Written as plain ASGI (not BaseHTTPMiddleware) because they sit on every request's hot path.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http.problems import PROBLEM_BASE, PROBLEM_JSON, log_unexpected
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS
from shared.tracing import continue_or_start, current_request_id, current_trace

log = logging.getLogger(__name__)


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
        request_id = supplied_id if supplied_id and len(supplied_id) <= 128 else str(uuid.uuid4())
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
    """Refuses bodies over the limit with 413 problem details, before any handler reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
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
            if size > self.max_bytes:
                await self._refuse(scope, send)
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

    async def _refuse(self, scope: Scope, send: Send) -> None:
        await send_problem(
            send,
            status=413,
            slug="payload-too-large",
            title="Request body too large",
            detail=f"Request bodies are limited to {self.max_bytes} bytes; nothing was changed.",
            instance=scope.get("path"),
        )


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
