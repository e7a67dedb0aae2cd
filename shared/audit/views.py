"""GET /v1/audit: a service's audit trail, for auditors (their organisation's: records about its
clients, and its people's records about no known client), platform auditors (every
organisation's) and supervisors (one client in their scope at a time). Reading the trail is
itself audited."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from shared.auth.guard import Guard, GuardDep
from shared.auth.policy import ORGANISATION_WIDE, Scope
from shared.http.app import DatabaseDep
from shared.http.pagination import (
    Cursor,
    Limit,
    Page,
    decode_cursor,
    encode_cursor,
    invalid_cursor,
)
from shared.http.problems import ProblemError, problem_responses
from shared.messaging.outbox import unit_of_work

ACTION = "audit.read"


class AuditRecordPublic(BaseModel):
    seq: int
    id: UUID
    occurred_at: datetime
    actor_id: str | None
    actor_roles: list[str]
    actor_organization_id: str | None
    action: str
    resource_type: str
    resource_id: str | None
    client_id: UUID | None
    outcome: str
    request_id: str | None
    source_address: str | None
    purpose: str | None
    break_glass_reason: str | None
    chain: int
    prev_hash: str
    hash: str
    key_id: str | None = Field(
        description="The id of the HMAC key that sealed the row; null: sealed with plain "
        "SHA-256 before keys existed."
    )


_COLUMNS = ", ".join(f"l.{column}" for column in AuditRecordPublic.model_fields)


def _visible_records(guard: Guard, spans_organisations: bool) -> tuple[str, list[str]]:
    """The records the caller may read, as SQL over audit_log (alias `l`) and client_access
    (alias `a`): about a client in the caller's scope; about no known client (a refused or
    unauthenticated request, a search that showed nobody), those of the caller's own
    organisation's people. A role that spans organisations reads them all."""
    if spans_organisations:
        return "TRUE", []
    in_scope, values = guard.policy.list_filter(guard.principal, ACTION, first_parameter=5)
    return (
        f"(CASE WHEN a.client_id IS NULL THEN l.actor_organization_id = $4 ELSE {in_scope} END)",
        [guard.principal.organization_id, *values],
    )


def _seq_cursor(cursor: str) -> int:
    [seq] = decode_cursor(cursor, 1)
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq < 2**63:
        raise invalid_cursor()
    return seq


def audit_router() -> APIRouter:
    router = APIRouter(prefix="/v1/audit", tags=["audit"])

    @router.get(
        "",
        response_model=Page[AuditRecordPublic],
        responses=problem_responses(400, 401, 403, 404, 422),
        summary="The audit trail of this service, newest first",
        description="Auditors may list their organisation's trail, platform auditors every "
        "organisation's; supervisors must name a client in their scope. Every record is "
        "HMAC-chained; `casework audit-verify` checks the chains.",
    )
    async def list_audit(
        guard: GuardDep,
        database: DatabaseDep,
        client_id: Annotated[UUID | None, Query(description="Only this client's records.")] = None,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> Page[AuditRecordPublic]:
        before = _seq_cursor(cursor) if cursor else None
        scopes = guard.policy.scopes(guard.principal, ACTION)
        spans_organisations = Scope.ALL_ORGANISATIONS in scopes
        async with unit_of_work(database) as uow:
            connection = uow.connection
            if client_id is not None and not spans_organisations:
                grant = await guard.authorize_client(
                    connection, ACTION, client_id, resource_type="audit_trail"
                )
            else:
                grant = await guard.require(
                    ACTION,
                    resource_type="audit_trail",
                    resource_id=str(client_id) if client_id else None,
                    client_id=client_id,
                )
                if not scopes & ORGANISATION_WIDE:
                    raise await guard.refuse(
                        grant,
                        ProblemError(
                            403,
                            "forbidden",
                            "Not allowed",
                            detail="Your role may read the audit trail of one client at a "
                            "time: pass client_id.",
                        ),
                    )
            # One client's trail: the grant above decided. The whole trail: filtered.
            visible, values = (
                ("TRUE", [])
                if client_id is not None
                else _visible_records(guard, spans_organisations)
            )
            rows = await connection.fetch(
                f"SELECT {_COLUMNS} FROM audit_log l "
                "LEFT JOIN client_access a ON a.client_id = l.client_id "
                "WHERE ($1::uuid IS NULL OR l.client_id = $1) "
                f"AND ($2::bigint IS NULL OR l.seq < $2) AND {visible} "
                "ORDER BY l.seq DESC LIMIT $3",
                client_id,
                before,
                limit + 1,
                *values,
            )
            await guard.audit(uow, grant)
        items = [AuditRecordPublic(**dict(row)) for row in rows[:limit]]
        next_cursor = encode_cursor(items[-1].seq) if len(rows) > limit else None
        return Page[AuditRecordPublic](items=items, next_cursor=next_cursor)

    return router
