"""Who may receive an event by webhook: the rule, in one place.

- An event about a client (it has `client_id`) goes to the client's own organisation (the
  organisation in this service's access facts, or the one the event names: a case's
  `organization_id`, a referral's `sending_organization_id`), whose integration users read
  that client at intake anyway; and to another organisation only while a consent of the client
  covers it for the general data class and the purpose of the event: `referral` for referral
  events, `care_coordination` for every other. The general consent events themselves
  (`ConsentGranted` names a consent's recipients and terms) go to the client's own
  organisation only.
- An event about no client (`WorkerUpdated`) goes to subscribers of the organisation the event
  names, and nobody else; an event naming no organisation goes to nobody.
- Protected-topic events are never deliverable at all (catalogue.py), to any organisation:
  `ProtectedConsentGranted` and `ProtectedConsentRevoked` included.

Consent is checked when the delivery is created and again before every attempt (sender.py),
so a revocation stops deliveries still waiting for a retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from uuid import UUID

import asyncpg

from shared.auth.consents import covering_consent
from shared.auth.facts import load_facts
from shared.events.consent import ConsentGranted, ConsentRevoked, DataClass, Purpose
from shared.events.contracts import EventData
from shared.events.referrals import ReferralClosed, ReferralMade, ReferralStatusChanged

REFERRAL_EVENTS = frozenset(
    {ReferralMade.event_type, ReferralStatusChanged.event_type, ReferralClosed.event_type}
)
OWN_ORGANISATION_ONLY = frozenset({ConsentGranted.event_type, ConsentRevoked.event_type})


@dataclass(frozen=True)
class Admission:
    """A subscriber may receive the event; `consent_purpose` is set when only a consent lets it
    (then checked again before each attempt)."""

    consent_purpose: Purpose | None


def purpose_of(event_type: str) -> Purpose:
    return Purpose.REFERRAL if event_type in REFERRAL_EVENTS else Purpose.CARE_COORDINATION


def _named_organisations(data: EventData) -> set[str]:
    names = {getattr(data, "organization_id", None), getattr(data, "sending_organization_id", None)}
    return {name for name in names if isinstance(name, str)}


async def owners(connection: asyncpg.Connection, data: EventData) -> set[str]:
    """The organisations whose client (or, for no client, whose record) the event is about."""
    found = _named_organisations(data)
    client_id = getattr(data, "client_id", None)
    if isinstance(client_id, UUID):
        facts = await load_facts(connection, client_id)
        if facts is not None and facts.organization_id is not None:
            found.add(facts.organization_id)
    return found


async def consent_covers(
    connection: asyncpg.Connection,
    *,
    client_id: UUID,
    organization_id: str,
    purpose: Purpose,
    on: date,
) -> bool:
    coverage = await covering_consent(
        connection,
        client_id=client_id,
        organization_id=organization_id,
        purpose=purpose,
        data_classes=[DataClass.GENERAL],
        on=on,
    )
    return coverage.consent_id is not None


async def admit(
    connection: asyncpg.Connection,
    *,
    event_type: str,
    data: EventData,
    owned_by: set[str],
    subscriber: str,
    on: date,
) -> Admission | None:
    """Whether `subscriber` (an organisation) may receive this event, and on what ground."""
    if subscriber in owned_by:
        return Admission(consent_purpose=None)
    client_id = getattr(data, "client_id", None)
    if not isinstance(client_id, UUID) or event_type in OWN_ORGANISATION_ONLY:
        return None
    purpose = purpose_of(event_type)
    covered = await consent_covers(
        connection, client_id=client_id, organization_id=subscriber, purpose=purpose, on=on
    )
    return Admission(consent_purpose=purpose) if covered else None
