"""Permissions as data: role -> action -> scope. Each service declares its own table in one
place (`services/<name>/access.py`); this module only evaluates them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from shared.auth.facts import ClientFacts
from shared.auth.principal import Principal, Role


class Scope(StrEnum):
    CASELOAD = "caseload"  # assigned to the caller, or registered by them and not yet assigned
    TEAM = "team"  # the case belongs to the caller's team
    ORGANISATION = "organisation"  # the client belongs to the caller's organisation
    ADDRESSED = "addressed"  # addressed to the caller's organisation (referrals, with consent)
    ALL = "all"  # not tied to a client, or every record


Permissions = Mapping[Role, Mapping[str, Scope]]


def in_scope(scope: Scope, principal: Principal, facts: ClientFacts) -> bool:
    if scope is Scope.ALL:
        return True
    if scope is Scope.CASELOAD:
        if facts.owner_id is not None:
            return facts.owner_id == principal.subject
        return facts.registered_by == principal.subject
    same_organisation = facts.organization_id == principal.organization_id
    if scope is Scope.TEAM:
        return (
            same_organisation
            and principal.team_id is not None
            and (facts.team_id == principal.team_id)
        )
    if scope is Scope.ORGANISATION:
        return same_organisation
    # ADDRESSED needs referral and consent facts; until a service has them it grants nothing.
    return False


def scope_filter(scope: Scope, principal: Principal, first_parameter: int) -> tuple[str, list[str]]:
    """The same rule as `in_scope`, as SQL over client_access (alias `a`), for lists."""
    n = first_parameter
    if scope is Scope.ALL:
        return "TRUE", []
    if scope is Scope.CASELOAD:
        return (
            f"(a.owner_id = ${n} OR (a.owner_id IS NULL AND a.registered_by = ${n}))",
            [principal.subject],
        )
    if scope is Scope.TEAM and principal.team_id is not None:
        return (
            f"(a.organization_id = ${n} AND a.team_id = ${n + 1})",
            [principal.organization_id, principal.team_id],
        )
    if scope is Scope.ORGANISATION:
        return f"(a.organization_id = ${n})", [principal.organization_id]
    return "FALSE", []


@dataclass(frozen=True)
class Policy:
    permissions: Permissions
    break_glass_roles: frozenset[Role] = field(default_factory=lambda: frozenset({Role.SUPERVISOR}))

    def scopes(self, principal: Principal, action: str) -> set[Scope]:
        return {
            self.permissions[role][action]
            for role in principal.roles
            if action in self.permissions.get(role, {})
        }

    def allows_action(self, principal: Principal, action: str) -> bool:
        return bool(self.scopes(principal, action))

    def allows_client(self, principal: Principal, action: str, facts: ClientFacts) -> bool:
        return any(in_scope(scope, principal, facts) for scope in self.scopes(principal, action))

    def may_break_glass(self, principal: Principal, action: str) -> bool:
        return self.allows_action(principal, action) and bool(
            principal.roles & self.break_glass_roles
        )

    def list_filter(
        self, principal: Principal, action: str, first_parameter: int
    ) -> tuple[str, list[str]]:
        clauses: list[str] = []
        parameters: list[str] = []
        for scope in sorted(self.scopes(principal, action)):
            clause, values = scope_filter(scope, principal, first_parameter + len(parameters))
            clauses.append(clause)
            parameters.extend(values)
        return ("(" + " OR ".join(clauses) + ")" if clauses else "FALSE"), parameters


def merge_permissions(*tables: Permissions) -> dict[Role, dict[str, Scope]]:
    merged: dict[Role, dict[str, Scope]] = {}
    for table in tables:
        for role, actions in table.items():
            merged.setdefault(role, {}).update(actions)
    return merged
