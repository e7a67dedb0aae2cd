"""Who may do what in referrals. The one place; every endpoint asks the Guard, which reads this."""

from shared.auth.policy import ActionKind, Policy, Scope, merge_kinds, merge_permissions
from shared.auth.principal import Role
from shared.client_refs import CLIENT_REF_KINDS, CLIENT_REF_PERMISSIONS

READ, WRITE = ActionKind.READ, ActionKind.WRITE

# Closed-loop referrals. The sending side: workers whose scope reaches the client (a referral is
# about a client of their organisation). The receiving side: ADDRESSED, the staff (`partner`)
# and systems (`integration`) of the organisation a sent referral is addressed to; they see the
# referral's ids and codes, never the sending worker's note, and may set the receiving side's
# statuses (services/referrals/lifecycle/transitions.json). For the `integration` role,
# ORGANISATION reaches its organisation's referrals both ways: the clients it refers and the
# referrals addressed to it.
REFERRAL_KINDS = {
    "referral.create": WRITE, "referral.read": READ, "referral.list": READ,
    "referral.status": WRITE,
}  # fmt: skip
REFERRAL_PERMISSIONS = {
    Role.CASEWORKER: dict.fromkeys(REFERRAL_KINDS, Scope.CASELOAD),
    Role.SUPERVISOR: dict.fromkeys(REFERRAL_KINDS, Scope.TEAM),
    Role.PARTNER: {
        "referral.read": Scope.ADDRESSED,
        "referral.list": Scope.ADDRESSED,
        "referral.status": Scope.ADDRESSED,
    },
    Role.INTEGRATION: {
        "referral.read": Scope.ORGANISATION,
        "referral.list": Scope.ORGANISATION,
        "referral.status": Scope.ADDRESSED,
    },
}

POLICY = Policy(
    permissions=merge_permissions(CLIENT_REF_PERMISSIONS, REFERRAL_PERMISSIONS),
    kinds=merge_kinds(CLIENT_REF_KINDS, REFERRAL_KINDS),
)
