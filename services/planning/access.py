"""Who may do what in planning. The one place; every endpoint asks the Guard, which reads this."""

from shared.auth.policy import ActionKind, Policy, Scope, merge_kinds, merge_permissions
from shared.auth.principal import Role
from shared.client_refs import CLIENT_REF_KINDS, CLIENT_REF_PERMISSIONS

# What each action is: break-glass opens reads only (shared/auth/policy.py).
KINDS = {"case.read": ActionKind.READ, "case.assign": ActionKind.WRITE}

POLICY = Policy(
    permissions=merge_permissions(
        CLIENT_REF_PERMISSIONS,
        {
            Role.CASEWORKER: {"case.read": Scope.CASELOAD},
            Role.SUPERVISOR: {"case.read": Scope.TEAM, "case.assign": Scope.TEAM},
            Role.INTEGRATION: {"case.read": Scope.ORGANISATION},
        },
    ),
    kinds=merge_kinds(CLIENT_REF_KINDS, KINDS),
)
