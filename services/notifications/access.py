"""Who may do what in notifications. The one place; every endpoint asks the Guard, which reads this."""

from shared.auth.policy import Policy, merge_permissions
from shared.client_refs import CLIENT_REF_KINDS, CLIENT_REF_PERMISSIONS

POLICY = Policy(permissions=merge_permissions(CLIENT_REF_PERMISSIONS), kinds=CLIENT_REF_KINDS)
