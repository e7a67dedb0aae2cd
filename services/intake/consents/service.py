"""The consent ledger: recording, revoking and reading consents, and the rule of what a set of
consents covers.

Status is derived, never stored. A consent applies from `starts_on` up to, not including,
`expires_on`; before that it is pending, from then on expired, and once revoked it covers
nothing, whatever its dates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import Protocol
from uuid import UUID, uuid4

import asyncpg

from services.intake.consents.models import (
    ConsentCreate,
    ConsentPublic,
    ConsentStatus,
    DataClass,
    Purpose,
    RevocationRequest,
    today,
)
from shared.auth import consents as shared_consents
from shared.auth.consents import decide_coverage, record_consent_granted, record_consent_revoked
from shared.auth.principal import Principal
from shared.events.consent import ConsentGrant, revocation_event
from shared.messaging.outbox import UnitOfWork

_COLUMNS = (
    "id, client_id, given_by, recipients, network, purposes, data_classes, starts_on, "
    "expires_on, recorded_by, recorded_at, revoked_at, revoked_by, revocation_reason, "
    "revocation_note"
)

# The same rule as `consent_status`, as SQL; $1 is the day judged on.
_STATUS_SQL = (
    "CASE WHEN revoked_at IS NOT NULL THEN 'revoked' WHEN starts_on > $1 THEN 'pending' "
    "WHEN expires_on <= $1 THEN 'expired' ELSE 'active' END"
)


class ConsentTerms(Protocol):
    """What the status and covering rules read of intake's consent records."""

    @property
    def id(self) -> UUID: ...
    @property
    def recipients(self) -> Sequence[str]: ...
    @property
    def network(self) -> bool: ...
    @property
    def purposes(self) -> Sequence[str]: ...
    @property
    def data_classes(self) -> Sequence[str]: ...
    @property
    def starts_on(self) -> date: ...
    @property
    def expires_on(self) -> date: ...
    @property
    def revoked_at(self) -> datetime | None: ...


def consent_status(consent: ConsentTerms, *, on: date) -> ConsentStatus:
    if consent.revoked_at is not None:
        return ConsentStatus.REVOKED
    if on < consent.starts_on:
        return ConsentStatus.PENDING
    if on >= consent.expires_on:
        return ConsentStatus.EXPIRED
    return ConsentStatus.ACTIVE


def consent_covers(
    consents: Iterable[ConsentTerms],
    *,
    organization_id: str,
    purpose: Purpose,
    data_class: DataClass,
    on: date,
) -> bool:
    """Whether any of the consents lets `data_class` data go to `organization_id` for `purpose`
    on the day `on`: it must be active that day (started, not expired) and not revoked, name the
    organisation or cover the whole network, and include the purpose and the class.

    A revoked consent covers nothing, whatever `on` is. A network-wide consent never covers
    domestic_violence or substance_use data, even if one was somehow stored that way. The rule
    is the one every service applies (shared/auth/consents.py, `decide_coverage`).
    """
    coverage = decide_coverage(
        [
            shared_consents.ConsentTerms(
                consent_id=consent.id,
                recipients=frozenset(consent.recipients),
                network=consent.network,
                purposes=frozenset(consent.purposes),
                data_classes=frozenset(consent.data_classes),
                starts_on=consent.starts_on,
                expires_on=consent.expires_on,
                revoked_at=consent.revoked_at,
            )
            for consent in consents
        ],
        organization_id=organization_id,
        purpose=purpose,
        data_classes=[data_class],
        on=on,
    )
    return coverage.covered


def _public(row: asyncpg.Record, *, on: date) -> ConsentPublic:
    """The stored row, with the status it has on `on` (the rule reads the validated record)."""
    consent = ConsentPublic.model_validate({**dict(row), "status": ConsentStatus.ACTIVE})
    return consent.model_copy(update={"status": consent_status(consent, on=on)})


async def grant_consent(
    uow: UnitOfWork, *, client_id: UUID, data: ConsentCreate, recorded_by: Principal
) -> ConsentPublic:
    """Record a consent and publish it, in the caller's transaction: `ConsentGranted` (general
    topic, the general class only) when it covers the general class, `ProtectedConsentGranted`
    (protected-consents topic, the protected classes only) when it covers any protected class.
    A consent of protected classes only publishes nothing on the general topic."""
    on = today()
    row = await uow.connection.fetchrow(
        f"INSERT INTO consents (id, client_id, given_by, recipients, network, purposes, "
        f"data_classes, starts_on, expires_on, recorded_by, recorded_at) "
        f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {_COLUMNS}",
        uuid4(),
        client_id,
        data.given_by.value,
        data.recipients or [],
        data.network,
        [purpose.value for purpose in data.purposes],
        [data_class.value for data_class in data.data_classes],
        data.starts_on or on,
        data.expires_on,
        recorded_by.subject,
        datetime.now(UTC),
    )
    consent = _public(row, on=on)
    terms = ConsentGrant(
        consent_id=consent.id,
        client_id=consent.client_id,
        recipients=consent.recipients,
        network=consent.network,
        purposes=consent.purposes,
        data_classes=consent.data_classes,
        starts_on=consent.starts_on,
        expires_on=consent.expires_on,
        given_by=consent.given_by,
    )
    # Intake's own consent facts, every class, in this transaction: the shared checks (partner
    # access) read them here as every other service reads its copy.
    await record_consent_granted(uow.connection, terms)
    for event in (terms.general_event(), terms.protected_event()):
        if event is not None:
            uow.publish(event)
    return consent


async def revoke_consent(
    uow: UnitOfWork,
    *,
    client_id: UUID,
    consent_id: UUID,
    data: RevocationRequest,
    revoked_by: Principal,
) -> ConsentPublic | None:
    """Revoke a consent that is not revoked yet and publish its revocation: `ConsentRevoked`
    when its grant went on the general topic, otherwise (protected classes only)
    `ProtectedConsentRevoked`. None when the client has no such consent, or it was revoked
    already (see `get_consent`)."""
    row = await uow.connection.fetchrow(
        f"UPDATE consents SET revoked_at = $3, revoked_by = $4, revocation_reason = $5, "
        f"revocation_note = $6 WHERE id = $1 AND client_id = $2 AND revoked_at IS NULL "
        f"RETURNING {_COLUMNS}",
        consent_id,
        client_id,
        datetime.now(UTC),
        revoked_by.subject,
        data.reason.value,
        data.note,
    )
    if row is None:
        return None
    consent = _public(row, on=today())
    assert consent.revoked_at is not None and consent.revocation_reason is not None
    revoked = revocation_event(
        data_classes=consent.data_classes,
        consent_id=consent.id,
        client_id=consent.client_id,
        revoked_at=consent.revoked_at,
        reason=consent.revocation_reason,
    )
    # Ends every access resting on this consent at intake as this transaction commits.
    await record_consent_revoked(uow.connection, revoked)
    uow.publish(revoked)
    return consent


async def get_consent(
    connection: asyncpg.Connection, *, client_id: UUID, consent_id: UUID
) -> ConsentPublic | None:
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM consents WHERE id = $1 AND client_id = $2",
        consent_id,
        client_id,
    )
    return _public(row, on=today()) if row else None


async def list_consents(
    connection: asyncpg.Connection,
    *,
    client_id: UUID,
    status: ConsentStatus | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[ConsentPublic]:
    """A client's consents, newest first, keyset-paginated on (recorded_at, id)."""
    on = today()
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM consents WHERE client_id = $2 "
        f"AND ($3::text IS NULL OR {_STATUS_SQL} = $3) "
        f"AND ($4::timestamptz IS NULL OR (recorded_at, id) < ($4, $5)) "
        f"ORDER BY recorded_at DESC, id DESC LIMIT $6",
        on,
        client_id,
        status.value if status else None,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )
    return [_public(row, on=on) for row in rows]
