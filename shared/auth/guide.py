"""What every service's OpenAPI page tells a frontend developer about access."""

AUTH_GUIDE = """

## Authentication

Send `Authorization: Bearer <token>` with every request. In production the token comes from
your identity provider (OpenID Connect, RS256/ES256); in development `make run` prints one per
role and `make token ROLE=caseworker SUB=alice` signs more. Claims used: `sub` (user id),
`roles` (list), `org_id` (organisation), `team_id` (optional).

| answer | meaning |
|---|---|
| 401 + `WWW-Authenticate` | no token, or it is malformed, expired, wrongly signed or for another audience |
| 403 | your roles never allow this action |
| 404 | the record does not exist *or* is outside your scope (another organisation's records always are), for reads and writes alike: the two are not told apart |

## Roles

| role | may |
|---|---|
| caseworker | register clients; read clients on their caseload (and those they registered until the case is assigned) |
| supervisor | what caseworkers may, for their whole team; assign cases to active workers of their team; read the audit trail of their team's clients; break the glass (read only, own organisation) |
| partner | referrals addressed to their organisation, within the client's consent (with the referrals service) |
| admin | their organisation's staff directory, configuration: no client data |
| auditor | their organisation's audit trails and equity reports, read-only |
| platform_auditor | every organisation's audit trails, read-only |
| integration | agency systems: read their organisation's clients; sync its staff directory |

Every read and write of client data, and every refused attempt, is audited with who, what,
when, from where and why. Optional headers: `X-Purpose-Of-Use` (e.g. `care-coordination`,
kept in the audit trail); `X-Break-Glass-Reason` (supervisors: read a record of your own
organisation outside your scope, for a reason of at least two words; flagged and audited;
never a write, never another organisation's record: those stay 404); `Idempotency-Key` on creating POSTs;
`X-Request-ID` (echoed, and in every log line and audit record). Errors are RFC 9457 problem
details (`application/problem+json`).
"""
