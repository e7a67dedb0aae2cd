"""Who may do what in planning. The one place; every endpoint asks the Guard, which reads this."""

from shared.auth.policy import ActionKind, Policy, Scope, merge_kinds, merge_permissions
from shared.auth.principal import Role
from shared.client_refs import CLIENT_REF_KINDS, CLIENT_REF_PERMISSIONS

# What each action is: break-glass opens reads only (shared/auth/policy.py).
KINDS = {
    "case.read": ActionKind.READ,
    "case.assign": ActionKind.WRITE,
    "worker.read": ActionKind.READ,
    "worker.write": ActionKind.WRITE,
    "worker.sync": ActionKind.WRITE,
    # Service plans and progress notes: the case's own worker and the team's supervisors.
    "plan.read": ActionKind.READ,
    "plan.write": ActionKind.WRITE,
    "note.read": ActionKind.READ,
    "note.write": ActionKind.WRITE,
    "note.cosign": ActionKind.WRITE,
}

# The staff directory (`worker.*`) is always within the caller's organisation; there the scope
# means: `organisation` every worker, `team` the caller's team, `caseload` the caller alone.
POLICY = Policy(
    permissions=merge_permissions(
        CLIENT_REF_PERMISSIONS,
        {
            Role.CASEWORKER: {
                "case.read": Scope.CASELOAD,
                "worker.read": Scope.CASELOAD,
                "plan.read": Scope.CASELOAD,
                "plan.write": Scope.CASELOAD,
                "note.read": Scope.CASELOAD,
                "note.write": Scope.CASELOAD,
            },
            Role.SUPERVISOR: {
                "case.read": Scope.TEAM,
                "case.assign": Scope.TEAM,
                "worker.read": Scope.TEAM,
                "plan.read": Scope.TEAM,
                "plan.write": Scope.TEAM,
                "note.read": Scope.TEAM,
                "note.write": Scope.TEAM,
                "note.cosign": Scope.TEAM,
            },
            Role.INTEGRATION: {"case.read": Scope.ORGANISATION, "worker.sync": Scope.ORGANISATION},
            # Admins keep their organisation's directory; no client data.
            Role.ADMIN: {
                "worker.read": Scope.ORGANISATION,
                "worker.write": Scope.ORGANISATION,
                "worker.sync": Scope.ORGANISATION,
            },
        },
    ),
    kinds=merge_kinds(CLIENT_REF_KINDS, KINDS),
)
