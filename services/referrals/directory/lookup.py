"""What a referral needs to know about its target service: the one read of the directory that
the referral workflow makes."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class ReferralTarget:
    service_id: str
    service_name: str
    organization_id: str
    # The Casework organisation that receives referrals to this service; None: the service is
    # outside the network (a referral to it can only be logged, nothing is sent).
    casework_organization_id: str | None
    # Days a referral may wait to be accepted; None: the default setting applies.
    acceptance_days: int | None


async def referral_target(connection: asyncpg.Connection, service_id: str) -> ReferralTarget | None:
    """The service and its organisation's mapping, or None when the directory has no such
    service."""
    row = await connection.fetchrow(
        """
        SELECT s.id AS service_id, s.name AS service_name, o.id AS organization_id,
               o.casework_organization_id, s.referral_acceptance_days AS acceptance_days
        FROM service s JOIN organization o ON o.id = s.organization_id
        WHERE s.id = $1
        """,
        service_id,
    )
    return None if row is None else ReferralTarget(**dict(row))
