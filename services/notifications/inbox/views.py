"""HTTP for the caller's own inbox and its live stream: thin; rules in service.py.

A user reads only their own inbox (the token's `sub` in the token's organisation): another
user's notification is a 404 like one that does not exist. Reads and changes are audited
(resource type `inbox`); items carry ids and codes, never client personal data.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from services.notifications.access import INBOX_READ, INBOX_WRITE
from services.notifications.inbox import service
from services.notifications.inbox.models import InboxItem, InboxPage, Notification
from services.notifications.inbox.stream import (
    PING_SECONDS,
    TICKET_SECONDS,
    InboxBroadcaster,
    issue_ticket,
    redeem_ticket,
)
from services.notifications.preferences import service as preferences
from services.notifications.rules.models import RuleSet, render
from services.notifications.rules.service import rules_for
from shared.auth.guard import Guard, GuardDep, authenticate, bearer_scheme, get_guard
from shared.auth.principal import Principal
from shared.http.app import ClockDep, DatabaseDep
from shared.http.pagination import Cursor, Limit, decode_cursor, encode_cursor, invalid_cursor
from shared.http.problems import ProblemError, not_found, problem_responses
from shared.messaging.outbox import unit_of_work

router = APIRouter(prefix="/v1/inbox", tags=["inbox"])

REPLAY_BATCH = 200


class Reader:
    """How the caller reads messages: their language, their organisation's messages."""

    def __init__(self, language: str, rule_set: RuleSet) -> None:
        self.language = language
        self.rule_set = rule_set

    def item(self, notification: Notification) -> InboxItem:
        return InboxItem(
            id=notification.id,
            seq=notification.seq,
            kind=notification.kind,
            subject_type=notification.subject_type,
            subject_id=notification.subject_id,
            client_id=notification.client_id,
            urgency=notification.urgency,
            message_key=notification.message_key,
            message=render(
                self.rule_set,
                notification.message_key,
                self.language,
                notification.parameters,
            ),
            parameters=notification.parameters,
            created_at=notification.created_at,
            read_at=notification.read_at,
        )


async def reader_for(connection: asyncpg.Connection, organization_id: str, user_id: str) -> Reader:
    chosen = await preferences.load(connection, organization_id=organization_id, user_id=user_id)
    return Reader(chosen.language if chosen else "en", await rules_for(connection, organization_id))


def _before(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    (seq,) = decode_cursor(cursor, 1)
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq < 2**62:
        raise invalid_cursor()
    return seq


@router.get(
    "",
    response_model=InboxPage,
    responses=problem_responses(400, 401, 403, 422),
    summary="Your notifications, newest first",
    description="Keyset pages (`next_cursor`); `unread=true` lists only unread ones. "
    "`unread_count` counts your whole inbox.",
)
async def list_inbox(
    guard: GuardDep,
    database: DatabaseDep,
    cursor: Cursor = None,
    limit: Limit = 50,
    unread: Annotated[bool, Query(description="Only unread notifications.")] = False,
) -> InboxPage:
    before = _before(cursor)
    principal = guard.principal
    grant = await guard.require(INBOX_READ, resource_type="inbox", resource_id=principal.subject)
    async with unit_of_work(database) as uow:
        connection = uow.connection
        found = await service.list_inbox(
            connection,
            organization_id=principal.organization_id,
            recipient_id=principal.subject,
            before_seq=before,
            unread_only=unread,
            limit=limit + 1,
        )
        count = await service.unread_count(
            connection, organization_id=principal.organization_id, recipient_id=principal.subject
        )
        reader = await reader_for(connection, principal.organization_id, principal.subject)
        await guard.audit(uow, grant)
    items = found[:limit]
    more = len(found) > limit
    return InboxPage(
        items=[reader.item(n) for n in items],
        next_cursor=encode_cursor(items[-1].seq) if more else None,
        unread_count=count,
    )


class ReadUpTo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    up_to: UUID = Field(description="A notification of yours: it and every older one are read.")


class ReadResult(BaseModel):
    marked: int = Field(description="How many were unread and are now read.")
    unread_count: int


@router.post(
    "/read",
    response_model=ReadResult,
    responses=problem_responses(400, 401, 403, 404, 413, 422),
    summary="Mark your notifications read up to one of them (included)",
)
async def mark_all_read(
    body: ReadUpTo, guard: GuardDep, database: DatabaseDep, clock: ClockDep
) -> ReadResult:
    principal = guard.principal
    grant = await guard.require(INBOX_WRITE, resource_type="inbox", resource_id=str(body.up_to))
    async with unit_of_work(database) as uow:
        connection = uow.connection
        seq = await connection.fetchval(
            "SELECT seq FROM notifications "
            "WHERE organization_id = $1 AND recipient_id = $2 AND id = $3",
            principal.organization_id,
            principal.subject,
            body.up_to,
        )
        if seq is None:
            raise await guard.refuse(grant, not_found("notification"))
        marked = await service.mark_read_up_to(
            connection,
            organization_id=principal.organization_id,
            recipient_id=principal.subject,
            up_to_seq=seq,
            now=clock.now(),
        )
        count = await service.unread_count(
            connection, organization_id=principal.organization_id, recipient_id=principal.subject
        )
        await guard.audit(uow, grant)
    return ReadResult(marked=marked, unread_count=count)


@router.post(
    "/{notification_id}/read",
    response_model=InboxItem,
    responses=problem_responses(400, 401, 403, 404, 422),
    summary="Mark one of your notifications read",
    description="Marking it again changes nothing. Another user's notification is a 404.",
)
async def mark_read(
    notification_id: Annotated[UUID, Path()],
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
) -> InboxItem:
    principal = guard.principal
    grant = await guard.require(
        INBOX_WRITE, resource_type="notification", resource_id=str(notification_id)
    )
    async with unit_of_work(database) as uow:
        connection = uow.connection
        notification = await guard.found(
            grant,
            await service.mark_read(
                connection,
                organization_id=principal.organization_id,
                recipient_id=principal.subject,
                notification_id=notification_id,
                now=clock.now(),
            ),
        )
        reader = await reader_for(connection, principal.organization_id, principal.subject)
        await guard.audit(
            uow, grant.about(resource_id=str(notification.id), client_id=notification.client_id)
        )
    return reader.item(notification)


class StreamTicket(BaseModel):
    ticket: str = Field(description="Pass as `?ticket=` to the stream; never your bearer token.")
    expires_at: datetime
    stream_url: str = Field(description="The stream's path with the ticket.")


@router.post(
    "/stream-tickets",
    response_model=StreamTicket,
    status_code=201,
    responses=problem_responses(400, 401, 403),
    summary="A short-lived ticket to open your live stream from a browser",
    description=f"Good for {TICKET_SECONDS} seconds, for your own stream only (also for the "
    "browser's automatic reconnects within that time). `EventSource` cannot send headers: "
    "open `stream_url` with it.",
)
async def create_stream_ticket(
    guard: GuardDep, database: DatabaseDep, clock: ClockDep
) -> StreamTicket:
    principal = guard.principal
    grant = await guard.require(INBOX_WRITE, resource_type="inbox_stream_ticket")
    async with unit_of_work(database) as uow:
        ticket, expires_at = await issue_ticket(
            uow.connection, principal=principal, now=clock.now()
        )
        await guard.audit(uow, grant)
    return StreamTicket(
        ticket=ticket, expires_at=expires_at, stream_url=f"/v1/inbox/stream?ticket={ticket}"
    )


def _invalid_ticket() -> ProblemError:
    return ProblemError(
        401,
        "unauthenticated",
        "Authentication required",
        detail="The stream ticket is unknown or expired: ask for a new one.",
        headers={"WWW-Authenticate": 'Bearer realm="casework", error="invalid_token"'},
    )


async def _bearer_if_any(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)] = None,
) -> Principal | None:
    """The bearer token's principal when one is sent (so a refusal is audited as theirs)."""
    if credentials is None:
        return None
    return await authenticate(request, credentials)


async def _stream_owner(
    request: Request,
    database: DatabaseDep,
    clock: ClockDep,
    bearer: Annotated[Principal | None, Depends(_bearer_if_any)],
    ticket: Annotated[
        str | None,
        Query(
            min_length=16,
            max_length=100,
            pattern=r"^[A-Za-z0-9_-]+$",
            description="A stream ticket from POST /v1/inbox/stream-tickets.",
        ),
    ] = None,
) -> Guard:
    """Who opens the stream: the holder of a valid ticket. A bearer token alone is refused
    (400): streams are opened with tickets, by browsers and servers alike, so a token never
    has to travel in a URL and every stream is bounded by its ticket's owner."""
    if ticket is None:
        if bearer is None:
            raise _invalid_ticket()
        guard = await get_guard(request, bearer)
        grant = await guard.require(INBOX_READ, resource_type="inbox_stream")
        raise await guard.refuse(
            grant,
            ProblemError(
                400,
                "stream-ticket-required",
                "Open the stream with a ticket",
                detail="POST /v1/inbox/stream-tickets with your bearer token, then open "
                "/v1/inbox/stream?ticket=… (what `stream_url` says).",
            ),
        )
    async with database.connection() as connection:
        holder = await redeem_ticket(connection, ticket, now=clock.now())
    if holder is None:
        raise _invalid_ticket()
    return await get_guard(request, holder)


@router.get(
    "/stream",
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"},
        **problem_responses(400, 401, 403, 422),
    },
    summary="Your notifications, live (Server-Sent Events)",
    description="Each frame's `id` is the notification's `seq`; after a reconnect "
    "(`Last-Event-ID`) the stream replays what came after it, then goes on live: nothing is "
    "missed. Open it with `?ticket=` (POST /v1/inbox/stream-tickets): `EventSource` cannot "
    f"send headers, and a bearer token never goes in a URL. A comment frame every "
    f"{PING_SECONDS} s keeps it open.",
    response_class=Response,
)
async def stream(
    request: Request,
    database: DatabaseDep,
    guard: Annotated[Guard, Depends(_stream_owner)],
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=20, pattern=r"^[0-9]{1,18}$"),
    ] = None,
) -> EventSourceResponse:
    principal = guard.principal
    grant = await guard.require(
        INBOX_READ, resource_type="inbox_stream", resource_id=principal.subject
    )
    async with unit_of_work(database) as uow:
        reader = await reader_for(uow.connection, principal.organization_id, principal.subject)
        await guard.audit(uow, grant)
    broadcaster: InboxBroadcaster = request.app.state.inbox_broadcaster
    after = int(last_event_id) if last_event_id is not None else None
    return EventSourceResponse(
        _frames(database, broadcaster, reader, principal.organization_id, principal.subject, after),
        ping=PING_SECONDS,
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _frames(
    database: Any,
    broadcaster: InboxBroadcaster,
    reader: Reader,
    organization_id: str,
    user_id: str,
    after: int | None,
) -> AsyncIterator[dict[str, str]]:
    """Replay after `after` (nothing when None: a fresh stream starts from now), then live.
    Subscribed before the first read, cleared before each read: a commit after a read wakes
    the next one, so no frame is lost between replay and live."""
    with broadcaster.subscribe(organization_id, user_id) as wake:
        if after is None:
            async with database.connection() as connection:
                state = await connection.fetchval(
                    "SELECT last_seq FROM inbox_state WHERE organization_id = $1 "
                    "AND recipient_id = $2",
                    organization_id,
                    user_id,
                )
            after = int(state or 0)
        while True:
            wake.clear()
            async with database.connection() as connection:
                found = await service.after_seq(
                    connection,
                    organization_id=organization_id,
                    recipient_id=user_id,
                    seq=after,
                    limit=REPLAY_BATCH,
                )
            for notification in found:
                after = notification.seq
                yield {
                    "id": str(notification.seq),
                    "event": "notification",
                    "data": reader.item(notification).model_dump_json(),
                }
            if len(found) == REPLAY_BATCH:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), PING_SECONDS)
