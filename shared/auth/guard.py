"""The per-request gatekeeper every endpoint that touches client data goes through.

`authenticate` turns the bearer token into a Principal (401 otherwise). `Guard` checks the
service's Policy: an action the caller's roles never have is 403; a client record outside the
caller's scope is 404, so its existence is not revealed, for reads and writes alike. The one
exception: a supervisor who gives a reason may *read* a record of their own organisation
outside their scope (break-glass; see shared/auth/policy.py and shared/auth/break_glass.py).
Every outcome is audited: allowed and break-glass in the transaction of the action itself; a
refusal rides on its error and is written right after the action's transaction rolls back, on
the same connection (never on a second one while the first is held), or by the problem handler
when no transaction was open.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Annotated, TypeVar
from uuid import UUID

import asyncpg
from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AfterValidator

from shared.audit import attempts
from shared.audit.attempts import record_attempt
from shared.audit.log import AuditEntry, AuditLog, Outcome
from shared.auth import break_glass
from shared.auth.addressed import AddressedAccess, addressed_access
from shared.auth.facts import load_facts
from shared.auth.policy import Policy, Scope
from shared.auth.principal import PRINCIPAL_SCOPE_KEY, Principal
from shared.auth.tokens import InvalidToken, TokenVerifier
from shared.clock import SYSTEM_CLOCK, Clock
from shared.db.database import Database, defer_after_rollback
from shared.http.problems import ProblemError, not_found
from shared.http.rate_limits import RateLimiter
from shared.messaging.outbox import UnitOfWork
from shared.tracing import current_request_id

T = TypeVar("T")

bearer_scheme = HTTPBearer(
    auto_error=False,
    description="A JWT from your identity provider (in development: `make token`).",
)

PurposeHeader = Annotated[
    str | None,
    Header(
        alias="X-Purpose-Of-Use",
        pattern=r"^[a-z][a-z0-9-]{1,49}$",
        description="Why you access the record, e.g. `care-coordination`; kept in the audit trail.",
    ),
]
BreakGlassHeader = Annotated[
    Annotated[str, AfterValidator(break_glass.substantive_reason)] | None,
    Header(
        alias="X-Break-Glass-Reason",
        min_length=break_glass.MIN_LENGTH,
        max_length=break_glass.MAX_LENGTH,
        description="Supervisors only: read a record of your organisation outside your scope, "
        "for this reason (at least two words of three or more letters). Reads only: a write, "
        "or a record of another organisation, stays 404. Allowed reads are flagged and audited.",
    ),
]


def _source_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def _unauthenticated(detail: str) -> ProblemError:
    return ProblemError(
        401,
        "unauthenticated",
        "Authentication required",
        detail=detail,
        headers={
            "WWW-Authenticate": f'Bearer realm="casework", error="invalid_token", '
            f'error_description="{detail.replace(chr(34), chr(39))[:200]}"'
        },
    )


async def _count_unauthenticated(request: Request) -> None:
    """An attempt without a valid token: counted per source and minute, the first one of the
    minute audited in full (shared/audit/attempts.py), under the route template, not the path."""
    route = request.scope.get("route")
    await record_attempt(
        request.app.state.database,
        audit_log=request.app.state.audit_log,
        action=attempts.action(request.method, getattr(route, "path", attempts.UNMATCHED_ROUTE)),
        source_address=_source_address(request),
        request_id=current_request_id.get(),
    )


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The caller's principal, or 401 (counted, see `_count_unauthenticated`); 429 when the caller, or
    the source of attempts without a valid token, is over its rate (checked before any
    database work). The principal is kept in the request's scope so that a refusal the
    endpoint itself does not audit (e.g. a 422) is audited by the RefusalAuditMiddleware."""
    verifier: TokenVerifier = request.app.state.verifier
    limiter: RateLimiter = request.app.state.rate_limiter
    try:
        if credentials is None:
            raise InvalidToken("a bearer token is required")
        principal = await verifier.verify(credentials.credentials)
    except InvalidToken as error:
        throttled = limiter.unauthenticated(_source_address(request))
        if throttled is not None:
            raise throttled from error
        await _count_unauthenticated(request)
        raise _unauthenticated(str(error)) from error
    throttled = limiter.principal(principal)
    if throttled is not None:
        raise throttled
    request.scope[PRINCIPAL_SCOPE_KEY] = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]


@dataclass(frozen=True)
class Grant:
    """Permission to perform one action on one resource, and how it was obtained."""

    action: str
    resource_type: str
    resource_id: str | None
    client_id: UUID | None
    outcome: str = Outcome.ALLOWED
    break_glass_reason: str | None = None
    # Set when the grant rests on a referral addressed to the caller's organisation (partner):
    # then the view shows only `addressed.data_classes` (shared/auth/addressed.py).
    addressed: AddressedAccess | None = None

    def about(self, *, resource_id: str, client_id: UUID | None) -> Grant:
        """The same grant, naming the resource once it exists (e.g. after a create)."""
        return replace(self, resource_id=resource_id, client_id=client_id)


class Guard:
    def __init__(
        self,
        *,
        principal: Principal,
        policy: Policy,
        database: Database,
        audit_log: AuditLog,
        request_id: str | None,
        source_address: str | None,
        purpose: str | None,
        break_glass_reason: str | None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.principal = principal
        self.policy = policy
        self.database = database
        self.audit_log = audit_log
        self.request_id = request_id
        self.source_address = source_address
        self.purpose = purpose
        self.break_glass_reason = break_glass_reason
        self.clock = clock

    def _entry(self, grant: Grant) -> AuditEntry:
        return AuditEntry.new(
            actor_id=self.principal.subject,
            actor_roles=sorted(self.principal.roles),
            actor_organization_id=self.principal.organization_id,
            action=grant.action,
            resource_type=grant.resource_type,
            resource_id=grant.resource_id,
            client_id=grant.client_id,
            outcome=grant.outcome,
            request_id=self.request_id,
            source_address=self.source_address,
            purpose=self.purpose,
            break_glass_reason=grant.break_glass_reason,
        )

    async def audit(self, uow: UnitOfWork, *grants: Grant) -> None:
        """Record granted actions in the action's own unit of work; call it last there."""
        await self.audit_log.record(uow, [self._entry(g) for g in grants])

    async def refuse(
        self,
        grant: Grant,
        error: ProblemError,
        outcome: str = Outcome.DENIED,
        *,
        shown: tuple[Grant, ...] = (),
    ) -> ProblemError:
        """The error to raise, carrying its audit records: the refusal, and `shown` (what the
        refusal itself reveals, e.g. a duplicate's candidates). They are written after the
        rollback of the transaction the error aborts, on its connection."""
        refused = replace(grant, outcome=outcome, break_glass_reason=None)
        entries = [self._entry(g) for g in (*shown, refused)]

        async def write(connection: asyncpg.Connection) -> None:
            uow = UnitOfWork(connection)
            await self.audit_log.record(uow, entries)
            await uow.flush()

        defer_after_rollback(error, write)
        return error

    async def found(self, grant: Grant, record: T | None) -> T:
        """The record the grant names, or a 404 (audited) when the client has no such record."""
        if record is None:
            raise await self.refuse(grant, not_found(grant.resource_type), Outcome.NOT_FOUND)
        return record

    async def require(
        self,
        action: str,
        *,
        resource_type: str,
        resource_id: str | None = None,
        client_id: UUID | None = None,
    ) -> Grant:
        """The caller's roles must allow the action at all (403 otherwise)."""
        grant = Grant(action, resource_type, resource_id, client_id)
        if not self.policy.allows_action(self.principal, action):
            raise await self.refuse(
                grant,
                ProblemError(
                    403,
                    "forbidden",
                    "Not allowed",
                    detail=f"Your roles do not allow {action}.",
                ),
            )
        return grant

    async def authorize_client(
        self,
        connection: asyncpg.Connection,
        action: str,
        client_id: UUID,
        *,
        resource_type: str,
        resource_id: str | None = None,
    ) -> Grant:
        """The client must exist here and be in the caller's scope (404 otherwise). Under
        Scope.ADDRESSED the grant carries what the partner may see (`Grant.addressed`)."""
        resource_id = resource_id or str(client_id)
        await self.require(
            action, resource_type=resource_type, resource_id=resource_id, client_id=client_id
        )
        facts = await load_facts(connection, client_id)
        missing = not_found(resource_type)
        grant = Grant(action, resource_type, resource_id, client_id)
        if facts is None:
            raise await self.refuse(grant, missing, Outcome.NOT_FOUND)
        if self.policy.allows_client(self.principal, action, facts):
            return grant
        # A partner's organisation sees a client referred to it, within the consent, today.
        if Scope.ADDRESSED in self.policy.scopes(self.principal, action):
            access = await addressed_access(
                connection,
                client_id=client_id,
                organization_id=self.principal.organization_id,
                on=self.clock.now().date(),
            )
            if access is not None:
                return replace(grant, addressed=access)
        # Break-glass reads a record of the caller's own organisation; a write, or another
        # organisation's record, is refused like any record outside scope (404), so no view
        # has to ask how its grant was obtained.
        if self.break_glass_reason and self.policy.may_break_glass(self.principal, action, facts):
            return Grant(
                action,
                resource_type,
                resource_id,
                client_id,
                Outcome.BREAK_GLASS,
                self.break_glass_reason,
            )
        raise await self.refuse(grant, missing)


async def get_guard(
    request: Request,
    principal: CurrentPrincipal,
    purpose: PurposeHeader = None,
    break_glass_reason: BreakGlassHeader = None,
) -> Guard:
    return Guard(
        principal=principal,
        policy=request.app.state.spec.policy,
        database=request.app.state.database,
        audit_log=request.app.state.audit_log,
        request_id=current_request_id.get(),
        source_address=_source_address(request),
        purpose=purpose,
        break_glass_reason=break_glass_reason,
        clock=request.app.state.clock,
    )


GuardDep = Annotated[Guard, Depends(get_guard)]
