"""Which side of a referral the caller acts for, if any: the one access rule of every referral
endpoint (the list applies the same rule as SQL, see `visibility`).

- Sending side: the caller's scope for the action reaches the referral's client (the Guard's
  client rule over client_access: caseload, team, organisation; organisations are walls). For
  a logged referral (nothing was sent) the sending side also records what the service did.
- Receiving side: a sent referral, once requested, addressed to the caller's organisation, for
  a role whose scope for the action is ADDRESSED (or organisation-wide).
- Neither: 404, audited; a supervisor's break-glass read of a referral of their own
  organisation is let through (no side: nothing to change), flagged in the audit trail.
"""

from __future__ import annotations

from dataclasses import replace
from uuid import UUID

import asyncpg

from services.referrals.lifecycle import service
from services.referrals.lifecycle.service import Referral, Visibility
from services.referrals.lifecycle.transitions import Side
from shared.audit.log import Outcome
from shared.auth.facts import load_facts
from shared.auth.guard import Grant, Guard
from shared.auth.policy import Scope, in_scope, scope_filter
from shared.http.problems import not_found

RECEIVING_SCOPES = frozenset({Scope.ADDRESSED, Scope.ORGANISATION, Scope.ALL})
RESOURCE = "referral"


async def authorize_referral(
    guard: Guard,
    connection: asyncpg.Connection,
    action: str,
    referral_id: UUID,
    *,
    for_update: bool = False,
) -> tuple[Grant, Referral, frozenset[Side]]:
    """The referral, the grant to audit, and the sides the caller acts for; 403 when the role
    never has the action, 404 (audited) when there is no such referral or it is outside scope."""
    grant = await guard.require(action, resource_type=RESOURCE, resource_id=str(referral_id))
    referral = await guard.found(
        grant, await service.get_referral(connection, referral_id, for_update=for_update)
    )
    grant = grant.about(resource_id=str(referral.id), client_id=referral.client_id)
    principal, policy = guard.principal, guard.policy
    scopes = policy.scopes(principal, action)
    sides: set[Side] = set()
    if (
        referral.was_sent
        and referral.receiving_organization_id == principal.organization_id
        and scopes & RECEIVING_SCOPES
    ):
        sides.add(Side.RECEIVING)
    facts = await load_facts(connection, referral.client_id)
    if facts is not None and any(
        in_scope(scope, principal, facts) for scope in scopes if scope is not Scope.ADDRESSED
    ):
        sides |= sending_sides(referral)
    if sides:
        return grant, referral, frozenset(sides)
    if (
        guard.break_glass_reason
        and facts is not None
        and policy.may_break_glass(principal, action, facts)
    ):
        opened = replace(
            grant, outcome=Outcome.BREAK_GLASS, break_glass_reason=guard.break_glass_reason
        )
        return opened, referral, frozenset()
    raise await guard.refuse(grant, not_found(RESOURCE))


def sending_sides(referral: Referral) -> frozenset[Side]:
    """The sides the sending organisation acts for: the receiving one too for a logged referral,
    whose service is not in Casework to act for itself."""
    if referral.mode == "logged":
        return frozenset({Side.SENDING, Side.RECEIVING})
    return frozenset({Side.SENDING})


def visibility(guard: Guard, action: str) -> Visibility:
    """The same rule as `authorize_referral`, for lists (break-glass opens single records only)."""
    principal = guard.principal
    scopes = guard.policy.scopes(principal, action)
    clauses: list[str] = []
    parameters: list[str] = []
    for scope in sorted(scopes - {Scope.ADDRESSED}):
        clause, values = scope_filter(scope, principal, 1 + len(parameters))
        clauses.append(clause)
        parameters.extend(values)
    outgoing = ("(" + " OR ".join(clauses) + ")" if clauses else "FALSE", parameters)
    receiving = bool(scopes & RECEIVING_SCOPES)
    return Visibility(
        outgoing=outgoing,
        incoming_organization_id=principal.organization_id if receiving else None,
    )
