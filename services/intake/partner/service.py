"""The shared record: reduce intake's client and latest assessment to the classes shared.

The decision of what is shared (which referrals, which consents, which classes) is made by the
Guard (shared/auth/addressed.py); this module only applies it.
"""

from __future__ import annotations

from collections.abc import Collection
from uuid import UUID

import asyncpg

from services.intake.assessments import service as assessments
from services.intake.assessments.models import AssessmentPublic
from services.intake.clients import service as clients
from services.intake.clients.models import ClientPublic
from services.intake.partner.models import (
    SharedAssessment,
    SharedClientRecord,
    SharedDemographics,
    SharedNeed,
)
from shared.auth.addressed import AddressedAccess
from shared.events.consent import DataClass
from shared.events.protection import need_class


def demographics(client: ClientPublic) -> SharedDemographics:
    return SharedDemographics(
        given_name=client.given_name,
        family_name=client.family_name,
        birth_date=client.birth_date,
        preferred_language=client.preferred_language,
        interpreter_needed=client.interpreter_needed,
        phone=client.phone,
        email=client.email,
        address=client.address,
    )


def shared_assessment(
    assessment: AssessmentPublic, classes: Collection[DataClass]
) -> SharedAssessment | None:
    """Only needs of a shared class; an unclassified category counts as protected and is never
    shared (need_class None)."""
    needs = [
        SharedNeed(category=need.category, severity=need.severity, data_class=data_class)
        for need in assessment.needs
        if (data_class := need_class(need.category)) is not None and data_class in classes
    ]
    if not needs:
        return None
    return SharedAssessment(
        assessment_id=assessment.id,
        instrument_id=assessment.instrument_id,
        assessed_at=assessment.created_at,
        needs=needs,
    )


async def shared_record(
    connection: asyncpg.Connection, *, client_id: UUID, access: AddressedAccess
) -> SharedClientRecord:
    classes = access.data_classes
    client = await clients.get_client(connection, client_id=client_id)
    assert client is not None, "access facts exist for every registered client"
    latest = await assessments.list_assessments(
        connection, client_id=client_id, after=None, limit=1
    )
    return SharedClientRecord(
        client_id=client_id,
        referral_ids=list(access.referral_ids),
        consent_ids=list(access.consent_ids),
        data_classes=[data_class for data_class in DataClass if data_class in classes],
        demographics=demographics(client) if DataClass.GENERAL in classes else None,
        latest_assessment=shared_assessment(latest[0], classes) if latest else None,
    )
