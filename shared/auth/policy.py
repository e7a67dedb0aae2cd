"""Permissions as data: role -> action -> scope, and each action's kind (read or write). Each
service declares its own tables in one place (`services/<name>/access.py`); this module only
evaluates them.

Organisations are walls. Every scope that names client records compares the organisation
first: a token with the same `sub` and another `org_id` is a stranger. Only
`Scope.ALL_ORGANISATIONS` crosses the wall, and only a role made for it holds that scope.

Break-glass (`may_break_glass`) opens a record outside the caller's scope for a role that may
break the glass, with a reason, for a *read* action only, and only inside the caller's own
organisation. What is a read is declared per action (`ActionKind`), never guessed from a name.
"""

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
    # Not about one client record (registering, code lists); applied to client records it means
    # the caller's organisation, like every other scope.
    ALL = "all"
    # Every organisation's records: for roles that explicitly span organisations (oversight).
    ALL_ORGANISATIONS = "all_organisations"


class ActionKind(StrEnum):
    READ = "read"  # shows data, changes nothing: break-glass may open it
    WRITE = "write"  # changes something: only ever within the caller's own scope


Permissions = Mapping[Role, Mapping[str, Scope]]
ActionKinds = Mapping[str, ActionKind]

# Scopes that reach beyond one team to the organisation or further: they may list whole trails.
ORGANISATION_WIDE = frozenset({Scope.ORGANISATION, Scope.ALL, Scope.ALL_ORGANISATIONS})


def in_scope(scope: Scope, principal: Principal, facts: ClientFacts) -> bool:
    if scope is Scope.ALL_ORGANISATIONS:
        return True
    if facts.organization_id is None or facts.organization_id != principal.organization_id:
        return False
    if scope is Scope.CASELOAD:
        if facts.owner_id is not None:
            return facts.owner_id == principal.subject
        return facts.registered_by == principal.subject
    if scope is Scope.TEAM:
        return principal.team_id is not None and facts.team_id == principal.team_id
    # ADDRESSED needs referral and consent facts, not client facts: the Guard checks it
    # (shared/auth/addressed.py); here it grants nothing.
    return scope in (Scope.ORGANISATION, Scope.ALL)


def scope_filter(scope: Scope, principal: Principal, first_parameter: int) -> tuple[str, list[str]]:
    """The same rule as `in_scope`, as SQL over client_access (alias `a`), for lists.
    ADDRESSED lists nothing: a partner reads one referred client at a time (each read checks
    the referral and its consent); the referrals service lists the referrals addressed to it."""
    n = first_parameter
    if scope is Scope.ALL_ORGANISATIONS:
        return "TRUE", []
    organisation = f"a.organization_id = ${n}"
    if scope is Scope.CASELOAD:
        return (
            f"({organisation} AND (a.owner_id = ${n + 1} "
            f"OR (a.owner_id IS NULL AND a.registered_by = ${n + 1})))",
            [principal.organization_id, principal.subject],
        )
    if scope is Scope.TEAM and principal.team_id is not None:
        return (
            f"({organisation} AND a.team_id = ${n + 1})",
            [principal.organization_id, principal.team_id],
        )
    if scope in (Scope.ORGANISATION, Scope.ALL):
        return f"({organisation})", [principal.organization_id]
    return "FALSE", []


@dataclass(frozen=True)
class Policy:
    """`kinds` must classify every action the permissions name (a ValueError otherwise), so a
    new action cannot be opened to break-glass by forgetting to say what it is."""

    permissions: Permissions
    kinds: ActionKinds
    break_glass_roles: frozenset[Role] = field(default_factory=lambda: frozenset({Role.SUPERVISOR}))

    def __post_init__(self) -> None:
        named = {action for actions in self.permissions.values() for action in actions}
        unclassified = sorted(named - set(self.kinds))
        if unclassified:
            raise ValueError(f"actions without a kind (read or write): {', '.join(unclassified)}")

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

    def is_read(self, action: str) -> bool:
        return self.kinds.get(action) is ActionKind.READ

    def may_break_glass(self, principal: Principal, action: str, facts: ClientFacts) -> bool:
        """Whether the caller may open this client's record for this action with a reason:
        a break-glass role that has the action at all, a read, in the caller's organisation."""
        return (
            self.is_read(action)
            and self.allows_action(principal, action)
            and bool(principal.roles & self.break_glass_roles)
            and facts.organization_id is not None
            and facts.organization_id == principal.organization_id
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


def merge_kinds(*tables: ActionKinds) -> dict[str, ActionKind]:
    """One table of action kinds from several; an action classified twice must agree."""
    merged: dict[str, ActionKind] = {}
    for table in tables:
        for action, kind in table.items():
            if merged.setdefault(action, kind) is not kind:
                raise ValueError(f"{action} is declared both {merged[action]} and {kind}")
    return merged
