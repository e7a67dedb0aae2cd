"""Who may do what in intake. The one place; every endpoint asks the Guard, which reads this."""

from shared.auth.policy import ActionKind, Policy, Scope
from shared.auth.principal import Role

READ, WRITE = ActionKind.READ, ActionKind.WRITE

# What each action is: break-glass opens reads only (shared/auth/policy.py).
KINDS = {
    "client.create": WRITE, "client.search": READ, "client.read": READ, "client.list": READ,
    "client.update": WRITE,
    "consent.read": READ, "consent.write": WRITE,
    "assessment.read": READ, "assessment.write": WRITE, "assessment.override": WRITE,
    "flag.read": READ, "flag.write": WRITE,
    "link.read": READ, "link.write": WRITE,
    "code_list.read": READ, "report.equity": READ, "audit.read": READ,
    "client.shared_read": READ,
}  # fmt: skip

# What a worker may do on the clients in their scope (caseload, team, ...).
_CASE_WORK = (
    "client.read", "client.list", "client.update",
    "consent.read", "consent.write",
    "assessment.read", "assessment.write", "assessment.override",
    "flag.read", "flag.write",
    "link.read",
)  # fmt: skip

POLICY = Policy(
    permissions={
        Role.CASEWORKER: {
            "client.create": Scope.ALL,
            # Search before create looks across the organisation, or duplicates slip through;
            # candidates outside the caller's client.read scope show only what identifies them,
            # and each one shown is audited.
            "client.search": Scope.ORGANISATION,
            "code_list.read": Scope.ALL,
            **dict.fromkeys(_CASE_WORK, Scope.CASELOAD),
        },
        Role.SUPERVISOR: {
            "client.create": Scope.ALL,
            "client.search": Scope.ORGANISATION,
            "code_list.read": Scope.ALL,
            **dict.fromkeys(_CASE_WORK, Scope.TEAM),
            "link.write": Scope.ORGANISATION,
            "report.equity": Scope.ORGANISATION,
            "audit.read": Scope.TEAM,
        },
        Role.INTEGRATION: {
            "client.read": Scope.ORGANISATION,
            "client.list": Scope.ORGANISATION,
            "consent.read": Scope.ORGANISATION,
            "code_list.read": Scope.ALL,
        },
        Role.AUDITOR: {"audit.read": Scope.ORGANISATION, "report.equity": Scope.ORGANISATION},
        Role.PLATFORM_AUDITOR: {"audit.read": Scope.ALL_ORGANISATIONS},
        # Admins configure; aggregated figures carry no client data.
        Role.ADMIN: {"code_list.read": Scope.ALL, "report.equity": Scope.ORGANISATION},
        # Partners see the referrals addressed to them in the referrals service and, here,
        # what the consent behind an open one covers for their organisation (nothing else:
        # every other route stays 403/404 for them).
        Role.PARTNER: {"code_list.read": Scope.ALL, "client.shared_read": Scope.ADDRESSED},
    },
    kinds=KINDS,
)
