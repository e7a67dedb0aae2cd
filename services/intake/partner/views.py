"""HTTP for the shared record a partner organisation reads: thin; what is shared is decided by
the Guard (Scope.ADDRESSED, shared/auth/addressed.py) and applied in service.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path

from services.intake.partner import service
from services.intake.partner.models import SharedClientRecord
from shared.auth.guard import GuardDep
from shared.http.app import DatabaseDep
from shared.http.problems import problem_responses
from shared.messaging.outbox import unit_of_work

router = APIRouter(prefix="/v1/clients", tags=["shared records"])


@router.get(
    "/{client_id}/shared-record",
    response_model=SharedClientRecord,
    responses=problem_responses(401, 403, 404, 422),
    summary="Read what a client's consent lets your organisation see (partners)",
    description="For staff of an organisation a client was referred to (`partner`): while a "
    "referral sent to your organisation is open (requested, accepted, in progress or on hold) "
    "and the consent it relies on is in force and not revoked, the classes of data that "
    "consent covers for your organisation: demographics (`general`) and the latest "
    "assessment's needs of those classes; protected classes only under a consent naming your "
    "organisation. Otherwise 404. Revoking the consent ends this at once.",
)
async def get_shared_record(
    client_id: Annotated[UUID, Path()], guard: GuardDep, database: DatabaseDep
) -> SharedClientRecord:
    async with unit_of_work(database) as uow:
        grant = await guard.authorize_client(
            uow.connection, "client.shared_read", client_id, resource_type="shared_record"
        )
        # The action is the partner's only (Scope.ADDRESSED): the grant always says what is
        # shared. Another way in would have to say so here first.
        assert grant.addressed is not None, "client.shared_read is granted only as ADDRESSED"
        record = await service.shared_record(
            uow.connection, client_id=client_id, access=grant.addressed
        )
        shown = [grant]
        if record.latest_assessment is not None:
            shown.append(
                replace(
                    grant,
                    resource_type="assessment",
                    resource_id=str(record.latest_assessment.assessment_id),
                )
            )
        await guard.audit(uow, *shown)
    return record
