"""Who may do what in referrals. The one place; every endpoint asks the Guard, which reads this.

The directory (HSDS records) is public: the HSDS API reads it without a token. Writing it is
`directory.write`: administrators and partner organisations' staff hold it, and the service
narrows it to the records they may change (the directory operator's administrators: all;
anyone else: their own organisation's, see directory/importer.py). `capacity.write`: the
same people, for the capacity of a service. Matching reads a client's facts: `match.read`
(suggestions, a GET) and `match.run` (a match asked with POST, a write by kind, so break-glass
never opens it) for the workers in whose scope the client is.
"""

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


DIRECTORY_KINDS = {
    "directory.read": READ,
    "directory.write": WRITE,
    "capacity.write": WRITE,
    "match.read": READ,
    "match.run": WRITE,
}

DIRECTORY_PERMISSIONS = {
    Role.ADMIN: {"directory.read": Scope.ALL, "directory.write": Scope.ALL,
                 "capacity.write": Scope.ALL},
    Role.PARTNER: {"directory.read": Scope.ALL, "directory.write": Scope.ALL,
                   "capacity.write": Scope.ALL},
    Role.CASEWORKER: {"match.read": Scope.CASELOAD, "match.run": Scope.CASELOAD},
    Role.SUPERVISOR: {"match.read": Scope.TEAM, "match.run": Scope.TEAM},
}  # fmt: skip

POLICY = Policy(
    permissions=merge_permissions(
        CLIENT_REF_PERMISSIONS, REFERRAL_PERMISSIONS, DIRECTORY_PERMISSIONS
    ),
    kinds=merge_kinds(CLIENT_REF_KINDS, REFERRAL_KINDS, DIRECTORY_KINDS),
)
