"""What a referral asks of the rest of referrals before anything crosses: the directory (does
the service exist, who receives it, how long they have to accept) and the client's consent (does
one cover the receiving organisation, the purpose `referral`, each class shared, today)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from uuid import UUID

import asyncpg

from services.referrals.directory.lookup import ReferralTarget, referral_target
from shared.auth.consents import ConsentCoverage, consent_problem, covering_consent
from shared.events.consent import DataClass, Purpose
from shared.http.problems import ProblemError

__all__ = ["ConsentCoverage", "ReferralTarget", "consent_for", "target_of"]


async def target_of(connection: asyncpg.Connection, service_id: str) -> ReferralTarget:
    """The directory's service, or a 422 problem (an unknown service: nothing is written)."""
    target = await referral_target(connection, service_id)
    if target is None:
        raise ProblemError(
            422,
            "unknown-service",
            "Unknown service",
            detail=f"The resource directory has no service {service_id!r}.",
            errors=[{"field": "body.service_id", "message": "no such service", "code": "unknown"}],
        )
    return target


async def consent_for(
    connection: asyncpg.Connection,
    *,
    client_id: UUID,
    organization_id: str,
    data_classes: Sequence[DataClass],
    on: date,
) -> UUID:
    """The consent that lets `data_classes` reach `organization_id` for a referral on `on`;
    otherwise a 422 problem (shared/auth/consents.py `consent_problem`) saying exactly what is
    missing, with the organisation and the classes asked for."""
    coverage = await covering_consent(
        connection,
        client_id=client_id,
        organization_id=organization_id,
        purpose=Purpose.REFERRAL,
        data_classes=data_classes,
        on=on,
    )
    if coverage.consent_id is not None and coverage.covered:
        return coverage.consent_id
    problem = consent_problem(coverage)
    problem.detail = (
        f"No consent lets these data reach {organization_id} for a referral: {problem.detail} "
        "Record a consent at intake, share less, or log the referral (it shares nothing)."
    )
    problem.extra.update(
        organization_id=organization_id, data_classes=[c.value for c in data_classes]
    )
    raise problem
