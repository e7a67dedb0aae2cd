"""Who may do what in notifications. The one place; every endpoint asks the Guard, which reads this.

The inbox and preferences are always the caller's own (their `sub` in their organisation):
the scope `caseload` means exactly that here. Rules and the on-call list are an
organisation's: its admins keep them (supervisors may read who is on call).
"""

from shared.auth.policy import ActionKind, Policy, Scope, merge_kinds, merge_permissions
from shared.auth.principal import Role
from shared.client_refs import CLIENT_REF_KINDS, CLIENT_REF_PERMISSIONS

INBOX_READ, INBOX_WRITE = "inbox.read", "inbox.write"
PREFERENCES_READ, PREFERENCES_WRITE = "preferences.read", "preferences.write"
RULES_READ, RULES_WRITE = "rules.read", "rules.write"
ON_CALL_READ, ON_CALL_WRITE = "on_call.read", "on_call.write"

KINDS = {
    INBOX_READ: ActionKind.READ,
    INBOX_WRITE: ActionKind.WRITE,
    PREFERENCES_READ: ActionKind.READ,
    PREFERENCES_WRITE: ActionKind.WRITE,
    RULES_READ: ActionKind.READ,
    RULES_WRITE: ActionKind.WRITE,
    ON_CALL_READ: ActionKind.READ,
    ON_CALL_WRITE: ActionKind.WRITE,
    "webhook.read": ActionKind.READ,
    "webhook.write": ActionKind.WRITE,
}

_OWN = {
    INBOX_READ: Scope.CASELOAD,
    INBOX_WRITE: Scope.CASELOAD,
    PREFERENCES_READ: Scope.CASELOAD,
    PREFERENCES_WRITE: Scope.CASELOAD,
}


# Webhook subscriptions are an organisation's configuration (no client data): always within
# the caller's organisation, managed by its admins and its agency systems' machine clients.
_WEBHOOKS = {"webhook.read": Scope.ORGANISATION, "webhook.write": Scope.ORGANISATION}

POLICY = Policy(
    permissions=merge_permissions(
        CLIENT_REF_PERMISSIONS,
        {
            Role.CASEWORKER: dict(_OWN),
            Role.SUPERVISOR: {**_OWN, ON_CALL_READ: Scope.ORGANISATION},
            Role.PARTNER: dict(_OWN),
            Role.ADMIN: {
                **_OWN,
                RULES_READ: Scope.ORGANISATION,
                RULES_WRITE: Scope.ORGANISATION,
                ON_CALL_READ: Scope.ORGANISATION,
                ON_CALL_WRITE: Scope.ORGANISATION,
                **_WEBHOOKS,
            },
            Role.INTEGRATION: _WEBHOOKS,
        },
    ),
    kinds=merge_kinds(CLIENT_REF_KINDS, KINDS),
)
