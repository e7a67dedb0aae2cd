"""Who may do what in notifications. The one place; every endpoint asks the Guard, which reads this."""

from shared.auth.policy import ActionKind, Policy, Scope, merge_kinds, merge_permissions
from shared.auth.principal import Role
from shared.client_refs import CLIENT_REF_KINDS, CLIENT_REF_PERMISSIONS

KINDS = {"webhook.read": ActionKind.READ, "webhook.write": ActionKind.WRITE}

# Webhook subscriptions are an organisation's configuration (no client data): always within
# the caller's organisation, managed by its admins and its agency systems' machine clients.
_WEBHOOKS = {"webhook.read": Scope.ORGANISATION, "webhook.write": Scope.ORGANISATION}

POLICY = Policy(
    permissions=merge_permissions(
        CLIENT_REF_PERMISSIONS,
        {Role.ADMIN: _WEBHOOKS, Role.INTEGRATION: _WEBHOOKS},
    ),
    kinds=merge_kinds(CLIENT_REF_KINDS, KINDS),
)
