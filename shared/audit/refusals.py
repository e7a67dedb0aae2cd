"""The audit record of a refusal the endpoint did not audit itself, after authentication.

Guard.refuse audits what the policy refuses (403, 404). Other refusals of an authenticated
caller happen before or beside it: a body or parameter that fails validation (422), a bad
cursor (400), a method the route does not have (405), a missing precondition (428). They are
attempts too (a probing caller shows up as a run of them), so the RefusalAuditMiddleware writes
one record for each, under the route template and with the caller's identity.
"""

from __future__ import annotations

from shared.audit.log import AuditEntry, AuditLog, Outcome
from shared.auth.principal import Principal
from shared.db.database import Database
from shared.messaging.outbox import unit_of_work

_OUTCOMES = {
    400: Outcome.INVALID,
    404: Outcome.NOT_FOUND,
    412: Outcome.PRECONDITION_FAILED,
    422: Outcome.INVALID,
}


def outcome_of(status: int) -> str:
    return _OUTCOMES.get(status, Outcome.DENIED)


async def record_refusal(
    database: Database,
    *,
    audit_log: AuditLog,
    principal: Principal,
    action: str,
    status: int,
    request_id: str | None,
    source_address: str | None,
) -> None:
    entry = AuditEntry.new(
        actor_id=principal.subject,
        actor_roles=sorted(principal.roles),
        actor_organization_id=principal.organization_id,
        action=action,
        resource_type="request",
        resource_id=None,
        client_id=None,
        outcome=outcome_of(status),
        request_id=request_id,
        source_address=source_address,
        purpose=None,
        break_glass_reason=None,
    )
    async with unit_of_work(database) as uow:
        await audit_log.record(uow, [entry])
