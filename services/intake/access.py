"""Who may do what in intake. The one place; every endpoint asks the Guard, which reads this."""

from shared.auth.policy import Policy, Scope
from shared.auth.principal import Role

POLICY = Policy(
    permissions={
        Role.CASEWORKER: {
            "client.create": Scope.ALL,
            "client.read": Scope.CASELOAD,
            "client.list": Scope.CASELOAD,
        },
        Role.SUPERVISOR: {
            "client.create": Scope.ALL,
            "client.read": Scope.TEAM,
            "client.list": Scope.TEAM,
            "audit.read": Scope.TEAM,
        },
        Role.INTEGRATION: {
            "client.read": Scope.ORGANISATION,
            "client.list": Scope.ORGANISATION,
        },
        Role.AUDITOR: {"audit.read": Scope.ALL},
        # Partners see referral data in the referrals service, within the client's consent;
        # admins manage the directory and configuration. Neither reads the registry.
        Role.PARTNER: {},
        Role.ADMIN: {},
    }
)
