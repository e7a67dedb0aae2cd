"""The ADDRESSED scope: what a partner organisation may see of a client referred to it.

A `partner` of organisation X may see client C under `Scope.ADDRESSED` while there is an open
referral of C sent to X that relies on a consent which, today, is in force, not revoked, and
reaches X for the purpose `referral`; and then only the classes of data that consent covers
for X. Protected classes (anything but `general`) only under a consent that names X: a network
consent opens demographics, never a protected need.

Every service that grants ADDRESSED keeps `referral_grants`, a projection of referrals' events
(`REFERRAL_GRANT_HANDLERS`), beside its consent facts (shared/auth/consents.py). Revoking the
consent ends the access as soon as the consent facts say so (at intake, in the transaction of
the revocation); closing the referral ends it as soon as the event arrives.

Stale events are ignored by the time the referral's own events carry: a status is replaced only
by a later one, and a final status is never replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID

import asyncpg
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Index,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.auth.consents import ConsentTerms, client_consents, covered_classes
from shared.db.metadata import create_tables
from shared.events.consent import DataClass, Purpose
from shared.events.envelope import Event
from shared.events.referrals import (
    ReferralClosed,
    ReferralMade,
    ReferralStatus,
    ReferralStatusChanged,
)
from shared.messaging.consumer import Handler

# A referral the receiving organisation is working on (or asked to): the partner may see.
OPEN_STATUSES = frozenset(
    {
        ReferralStatus.REQUESTED,
        ReferralStatus.ACCEPTED,
        ReferralStatus.IN_PROGRESS,
        ReferralStatus.ON_HOLD,
    }
)
FINAL_STATUSES = frozenset(
    {
        ReferralStatus.COMPLETED,
        ReferralStatus.REJECTED,
        ReferralStatus.CANCELLED,
        ReferralStatus.FAILED,
        ReferralStatus.EXPIRED,
        ReferralStatus.ENTERED_IN_ERROR,
    }
)
_OPEN_SQL = ", ".join(f"'{status.value}'" for status in sorted(OPEN_STATUSES))
_FINAL_SQL = ", ".join(f"'{status.value}'" for status in sorted(FINAL_STATUSES))


def referral_grants_table(metadata: MetaData) -> Table:
    return Table(
        "referral_grants",
        metadata,
        Column("referral_id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("receiving_organization_id", Text),
        Column("consent_id", PgUUID(as_uuid=True), comment="NULL: nothing shared (or not known)"),
        Column("sent", Boolean, nullable=False, server_default=text("false")),
        Column("status", Text, nullable=False),
        Column(
            "open",
            Boolean,
            nullable=False,
            server_default=text("false"),
            comment="sent, relying on a consent, in an open status",
        ),
        Column("status_at", DateTime(timezone=True), nullable=False, comment="event time"),
        Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
        Index("ix_referral_grants_client_id_receiving_organization_id", "client_id",
              "receiving_organization_id"),
    )  # fmt: skip


def create_referral_grants_v1(connection: Connection, schema: str) -> None:
    """For a service's migration."""
    create_tables(connection, schema, referral_grants_table)


# --------------------------------------------------------------------------------------------
# Keeping the projection

_REFRESH_OPEN = f"""
UPDATE referral_grants SET open = (
    sent AND consent_id IS NOT NULL AND receiving_organization_id IS NOT NULL
    AND status IN ({_OPEN_SQL})
)
WHERE referral_id = $1
"""

# A status is replaced only by a later one, and a final status never.
_NEWER_STATUS = f"(g.status NOT IN ({_FINAL_SQL}) AND g.status_at < EXCLUDED.status_at)"


async def record_referral_made(connection: asyncpg.Connection, data: ReferralMade) -> None:
    """What the referral relies on never changes; its status follows the newest event."""
    await connection.execute(
        f"""
        INSERT INTO referral_grants AS g
            (referral_id, client_id, receiving_organization_id, consent_id, sent, status,
             status_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (referral_id) DO UPDATE SET
            receiving_organization_id = EXCLUDED.receiving_organization_id,
            consent_id = EXCLUDED.consent_id,
            sent = EXCLUDED.sent,
            status = CASE WHEN {_NEWER_STATUS} THEN EXCLUDED.status ELSE g.status END,
            status_at = CASE WHEN {_NEWER_STATUS} THEN EXCLUDED.status_at ELSE g.status_at END,
            updated_at = now()
        """,
        data.referral_id,
        data.client_id,
        data.receiving_organization_id,
        data.consent_id,
        data.mode == "sent",
        data.status.value,
        data.made_at,
    )
    await connection.execute(_REFRESH_OPEN, data.referral_id)


async def record_referral_status(
    connection: asyncpg.Connection,
    *,
    referral_id: UUID,
    client_id: UUID,
    receiving_organization_id: str | None,
    status: ReferralStatus,
    at: datetime,
) -> None:
    """A status change (or a close). A final status replaces any open one whatever its time
    (nothing reopens a closed referral); an open one only an older status. Before the
    referral itself is known, the row waits with no consent: it opens nothing until
    `ReferralMade` fills that in."""
    await connection.execute(
        f"""
        INSERT INTO referral_grants AS g
            (referral_id, client_id, receiving_organization_id, status, status_at)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (referral_id) DO UPDATE SET
            status = EXCLUDED.status, status_at = EXCLUDED.status_at, updated_at = now()
        WHERE g.status NOT IN ({_FINAL_SQL}) AND (g.status_at < EXCLUDED.status_at OR $6)
        """,
        referral_id,
        client_id,
        receiving_organization_id,
        status.value,
        at,
        status in FINAL_STATUSES,
    )
    await connection.execute(_REFRESH_OPEN, referral_id)


async def on_referral_made(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ReferralMade)
    await record_referral_made(connection, data)


async def on_referral_status_changed(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ReferralStatusChanged)
    await record_referral_status(
        connection,
        referral_id=data.referral_id,
        client_id=data.client_id,
        receiving_organization_id=data.receiving_organization_id,
        status=data.to_status,
        at=data.changed_at,
    )


async def on_referral_closed(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ReferralClosed)
    await record_referral_status(
        connection,
        referral_id=data.referral_id,
        client_id=data.client_id,
        receiving_organization_id=data.receiving_organization_id,
        status=data.final_status,
        at=data.closed_at,
    )


REFERRAL_GRANT_HANDLERS: dict[str, Handler] = {
    ReferralMade.event_type: on_referral_made,
    ReferralStatusChanged.event_type: on_referral_status_changed,
    ReferralClosed.event_type: on_referral_closed,
}


# --------------------------------------------------------------------------------------------
# The rule


@dataclass(frozen=True)
class AddressedAccess:
    """What a partner organisation may see of one client today, and on what it rests."""

    referral_ids: tuple[UUID, ...]
    consent_ids: tuple[UUID, ...]
    data_classes: frozenset[DataClass]


def shared_classes(
    consent: ConsentTerms, *, organization_id: str, on: date
) -> frozenset[DataClass]:
    """The classes one consent lets a partner of `organization_id` see on `on`: what it covers
    for the purpose `referral`, and protected classes only when it names the organisation."""
    covered = covered_classes(
        consent, organization_id=organization_id, purpose=Purpose.REFERRAL, on=on
    )
    if consent.network and organization_id not in consent.recipients:
        return covered & {DataClass.GENERAL}
    return covered


def decide_addressed(
    grants: list[tuple[UUID, UUID]],
    consents: list[ConsentTerms],
    *,
    organization_id: str,
    on: date,
) -> AddressedAccess | None:
    """`grants`: (referral_id, consent_id) of the client's open referrals sent to the
    organisation. None when no consent of them lets anything through today."""
    by_id = {consent.consent_id: consent for consent in consents}
    referral_ids: list[UUID] = []
    consent_ids: list[UUID] = []
    classes: set[DataClass] = set()
    for referral_id, consent_id in sorted(grants):
        consent = by_id.get(consent_id)
        if consent is None:
            continue  # not known here yet: it opens nothing until it is
        shown = shared_classes(consent, organization_id=organization_id, on=on)
        if shown:
            referral_ids.append(referral_id)
            if consent_id not in consent_ids:
                consent_ids.append(consent_id)
            classes |= shown
    if not classes:
        return None
    return AddressedAccess(tuple(referral_ids), tuple(consent_ids), frozenset(classes))


async def addressed_access(
    connection: asyncpg.Connection, *, client_id: UUID, organization_id: str, on: date
) -> AddressedAccess | None:
    """`decide_addressed` over the referrals and consents this service knows."""
    rows = await connection.fetch(
        "SELECT referral_id, consent_id FROM referral_grants "
        "WHERE client_id = $1 AND receiving_organization_id = $2 AND open",
        client_id,
        organization_id,
    )
    if not rows:
        return None
    return decide_addressed(
        [(row["referral_id"], row["consent_id"]) for row in rows],
        await client_consents(connection, client_id),
        organization_id=organization_id,
        on=on,
    )
