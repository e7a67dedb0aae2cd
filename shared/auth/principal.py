"""Who is asking: the verified claims of a bearer token."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

# Where the verified principal is kept in the ASGI scope of its request (not `scope["state"]`:
# some servers share that dict between requests).
PRINCIPAL_SCOPE_KEY = "casework.principal"


class Role(StrEnum):
    CASEWORKER = (
        "caseworker"  # clients on their own caseload, and those they registered until assigned
    )
    SUPERVISOR = "supervisor"  # their team's caseloads; break-glass with a reason
    PARTNER = (
        "partner"  # staff of an organisation receiving referrals: only what is addressed to it
    )
    ADMIN = "admin"  # directory, users, configuration; no client data
    AUDITOR = "auditor"  # their organisation's audit trails, read-only
    # Oversight across organisations (e.g. the body that runs a shared platform): every
    # organisation's audit trails, read-only; never client records themselves.
    PLATFORM_AUDITOR = "platform_auditor"
    INTEGRATION = (
        "integration"  # agency systems (machine clients): their organisation's clients, read-only
    )


@dataclass(frozen=True)
class Principal:
    subject: str
    roles: frozenset[Role]
    organization_id: str
    team_id: str | None = None
    token_id: str | None = None

    def has(self, role: Role) -> bool:
        return role in self.roles
