"""Who may do what in planning. The one place; every endpoint asks the Guard, which reads this."""

from shared.auth.policy import Policy, Scope, merge_permissions
from shared.auth.principal import Role
from shared.client_refs import CLIENT_REF_PERMISSIONS

POLICY = Policy(
    permissions=merge_permissions(
        CLIENT_REF_PERMISSIONS,
        {
            Role.CASEWORKER: {"case.read": Scope.CASELOAD},
            Role.SUPERVISOR: {"case.read": Scope.TEAM, "case.assign": Scope.TEAM},
            Role.INTEGRATION: {"case.read": Scope.ORGANISATION},
        },
    )
)
