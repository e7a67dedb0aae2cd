"""Who may do what in planning. The one place; every endpoint asks the Guard, which reads this."""

from shared.auth.policy import ActionKind, Policy, Scope, merge_kinds, merge_permissions
from shared.auth.principal import Role
from shared.client_refs import CLIENT_REF_KINDS, CLIENT_REF_PERMISSIONS

# What each action is: break-glass opens reads only (shared/auth/policy.py).
KINDS = {
    "case.read": ActionKind.READ,
    "case.assign": ActionKind.WRITE,
    "case.open": ActionKind.WRITE,
    "case.update": ActionKind.WRITE,
    "approval.read": ActionKind.READ,
    "approval.decide": ActionKind.WRITE,
    "approval.withdraw": ActionKind.WRITE,
    "work.read": ActionKind.READ,
    "transfer.request": ActionKind.WRITE,
    "transfer.read": ActionKind.READ,
    "transfer.answer": ActionKind.WRITE,
    "transfer.revoke": ActionKind.WRITE,
    "caseload.read": ActionKind.READ,
    "team.read": ActionKind.READ,
    "assignment.suggest": ActionKind.READ,
    "review.complete": ActionKind.WRITE,
    "code_list.read": ActionKind.READ,
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

# Cases: a caseworker on their caseload, a supervisor on their team (and only a supervisor of
# the case's team decides its approvals: services/planning/approvals/service.py); auditors
# through the audit trail only; partners and admins see no case content. `work.read` is the
# caller's own due work (each source shows only what is the caller's).
# Transfers (`transfer.*`): asked on a case in the caller's scope; by id, the scope applies to
# a side of the transfer: `caseload` the receiving worker or the requester (and the worker the
# case was of), `team` a supervisor of the receiving worker's team or of the case's team.
# Caseloads: `caseload` the caller's own, `team` each worker of the caller's team; the team
# view and assignment suggestions are a supervisor's, of their own team.
# The staff directory (`worker.*`) is always within the caller's organisation; there the scope
# means: `organisation` every worker, `team` the caller's team, `caseload` the caller alone.
# Code lists (closure reasons, destinations) are reference data for everyone signed in.
CODE_LISTS: dict[Role, dict[str, Scope]] = {role: {"code_list.read": Scope.ALL} for role in Role}

POLICY = Policy(
    permissions=merge_permissions(
        CLIENT_REF_PERMISSIONS,
        CODE_LISTS,
        {
            Role.CASEWORKER: {
                "case.read": Scope.CASELOAD,
                "case.open": Scope.CASELOAD,
                "case.update": Scope.CASELOAD,
                "approval.read": Scope.CASELOAD,
                "approval.withdraw": Scope.CASELOAD,
                "work.read": Scope.CASELOAD,
                "transfer.request": Scope.CASELOAD,
                "transfer.read": Scope.CASELOAD,
                "transfer.answer": Scope.CASELOAD,
                "transfer.revoke": Scope.CASELOAD,
                "caseload.read": Scope.CASELOAD,
                "review.complete": Scope.CASELOAD,
                "worker.read": Scope.CASELOAD,
                "plan.read": Scope.CASELOAD,
                "plan.write": Scope.CASELOAD,
                "note.read": Scope.CASELOAD,
                "note.write": Scope.CASELOAD,
            },
            Role.SUPERVISOR: {
                "case.read": Scope.TEAM,
                "case.open": Scope.TEAM,
                "case.update": Scope.TEAM,
                "case.assign": Scope.TEAM,
                "approval.read": Scope.TEAM,
                "approval.decide": Scope.TEAM,
                "approval.withdraw": Scope.TEAM,
                "work.read": Scope.TEAM,
                "transfer.request": Scope.TEAM,
                "transfer.read": Scope.TEAM,
                "transfer.answer": Scope.TEAM,
                "transfer.revoke": Scope.TEAM,
                "caseload.read": Scope.TEAM,
                "team.read": Scope.TEAM,
                "assignment.suggest": Scope.TEAM,
                "review.complete": Scope.TEAM,
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
