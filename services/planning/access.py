"""Who may do what in planning. The one place; every endpoint asks the Guard, which reads this."""

from shared.auth.policy import Policy, Scope, merge_permissions
from shared.auth.principal import Role
from shared.client_refs import CLIENT_REF_PERMISSIONS

# The staff directory (`worker.*`) is always within the caller's organisation; there the scope
# means: `organisation` every worker, `team` the caller's team, `caseload` the caller alone.
POLICY = Policy(
    permissions=merge_permissions(
        CLIENT_REF_PERMISSIONS,
        {
            Role.CASEWORKER: {"case.read": Scope.CASELOAD, "worker.read": Scope.CASELOAD},
            Role.SUPERVISOR: {
                "case.read": Scope.TEAM,
                "case.assign": Scope.TEAM,
                "worker.read": Scope.TEAM,
            },
            Role.INTEGRATION: {"case.read": Scope.ORGANISATION, "worker.sync": Scope.ORGANISATION},
            # Admins keep their organisation's directory; no client data.
            Role.ADMIN: {
                "worker.read": Scope.ORGANISATION,
                "worker.write": Scope.ORGANISATION,
                "worker.sync": Scope.ORGANISATION,
            },
        },
    )
)
