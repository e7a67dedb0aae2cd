"""Consent facts: which consents a client has given, kept by every service in its own schema.

Intake writes them in the transaction that records (or revokes) a consent; the other services
learn them from intake's events (`CONSENT_HANDLERS`): `ConsentGranted` (the general class, on the
general topic) and `ProtectedConsentGranted` (the protected classes, on the protected-consents
topic) of one consent arrive in either order and the facts keep the union of their classes;
its revocation is `ConsentRevoked` or, for a consent of protected classes only,
`ProtectedConsentRevoked`. No service asks intake whether a consent holds.

`covering_consent` answers the one question every service asks before a client's data crosses
to another organisation: which consent lets these classes of data go to that organisation for
that purpose on that day, or, when none does, exactly what is missing. The decision itself
(`decide_coverage`) is pure; the SQL only loads the client's consents.

One consent must cover the whole share: classes are not pieced together from several consents,
so what crossed always rests on one signed document (the one a referral records).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from uuid import UUID

import asyncpg
from sqlalchemy import (
    ARRAY,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Index,
    MetaData,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import UUID as PgUUID

from shared.db.metadata import create_tables
from shared.events.consent import (
    RECIPIENT_SPECIFIC_DATA_CLASSES,
    ConsentGrant,
    ConsentGranted,
    ConsentRevocation,
    ConsentRevoked,
    DataClass,
    ProtectedConsentGranted,
    ProtectedConsentRevoked,
    Purpose,
)
from shared.events.envelope import Event
from shared.http.problems import ProblemError
from shared.messaging.consumer import Handler

# --------------------------------------------------------------------------------------------
# The table


def consent_facts_table(metadata: MetaData) -> Table:
    """One row per consent. A revocation that arrives before its grant makes a row with only
    the revocation (`starts_on` NULL: terms unknown); the grant fills in the terms later and
    the revocation stays."""
    return Table(
        "consent_facts",
        metadata,
        Column("consent_id", PgUUID(as_uuid=True), primary_key=True),
        Column("client_id", PgUUID(as_uuid=True), nullable=False),
        Column("recipients", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
        Column("network", Boolean, nullable=False, server_default=text("false")),
        Column("purposes", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
        Column("data_classes", ARRAY(Text), nullable=False, server_default=text("'{}'::text[]")),
        Column("starts_on", Date, comment="NULL: only the revocation has arrived yet"),
        Column("expires_on", Date, comment="first day the consent no longer applies"),
        Column("revoked_at", DateTime(timezone=True)),
        Column(
            "recorded_at", DateTime(timezone=True), nullable=False, server_default=text("now()")
        ),
        Index("ix_consent_facts_client_id", "client_id"),
    )


def create_consent_facts_v1(connection: Connection, schema: str) -> None:
    """For a service's migration (never the live factory's later changes)."""
    create_tables(connection, schema, consent_facts_table)


# --------------------------------------------------------------------------------------------
# Keeping the facts


async def record_consent_granted(connection: asyncpg.Connection, data: ConsentGrant) -> None:
    """Idempotent: a consent's terms never change, so a repeat changes nothing; a revocation
    that came first is kept. The classes are merged: the general and the protected event of one
    consent each bring their part, in either order."""
    await connection.execute(
        """
        INSERT INTO consent_facts AS f
            (consent_id, client_id, recipients, network, purposes, data_classes,
             starts_on, expires_on)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        ON CONFLICT (consent_id) DO UPDATE SET
            recipients = CASE WHEN f.starts_on IS NULL THEN EXCLUDED.recipients
                              ELSE f.recipients END,
            network = CASE WHEN f.starts_on IS NULL THEN EXCLUDED.network ELSE f.network END,
            purposes = CASE WHEN f.starts_on IS NULL THEN EXCLUDED.purposes ELSE f.purposes END,
            data_classes = ARRAY(
                SELECT DISTINCT c FROM unnest(f.data_classes || EXCLUDED.data_classes) AS c
                ORDER BY c
            ),
            starts_on = COALESCE(f.starts_on, EXCLUDED.starts_on),
            expires_on = COALESCE(f.expires_on, EXCLUDED.expires_on)
        WHERE f.starts_on IS NULL OR NOT f.data_classes @> EXCLUDED.data_classes
        """,
        data.consent_id,
        data.client_id,
        list(data.recipients),
        data.network,
        [purpose.value for purpose in data.purposes],
        [data_class.value for data_class in data.data_classes],
        data.starts_on,
        data.expires_on,
    )


async def record_consent_revoked(connection: asyncpg.Connection, data: ConsentRevocation) -> None:
    """Idempotent: the first revocation recorded stands; before the grant it is kept alone."""
    await connection.execute(
        """
        INSERT INTO consent_facts AS f (consent_id, client_id, revoked_at)
        VALUES ($1, $2, $3)
        ON CONFLICT (consent_id) DO UPDATE SET revoked_at = EXCLUDED.revoked_at
        WHERE f.revoked_at IS NULL
        """,
        data.consent_id,
        data.client_id,
        data.revoked_at,
    )


async def on_consent_granted(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ConsentGranted | ProtectedConsentGranted)
    await record_consent_granted(connection, data)


async def on_consent_revoked(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ConsentRevoked | ProtectedConsentRevoked)
    await record_consent_revoked(connection, data)


# A service that keeps consent facts reads both topics: the protected-consents topic names it
# among its readers (shared/events/protection.py).
CONSENT_HANDLERS: dict[str, Handler] = {
    ConsentGranted.event_type: on_consent_granted,
    ConsentRevoked.event_type: on_consent_revoked,
    ProtectedConsentGranted.event_type: on_consent_granted,
    ProtectedConsentRevoked.event_type: on_consent_revoked,
}


# --------------------------------------------------------------------------------------------
# The decision


class MissingCode(StrEnum):
    NO_CONSENT = "no-consent"
    ORGANISATION_NOT_NAMED = "organisation-not-named"
    CLASS_NOT_COVERED = "class-not-covered"
    PURPOSE_NOT_COVERED = "purpose-not-covered"
    EXPIRED = "expired"
    NOT_YET_VALID = "not-yet-valid"
    REVOKED = "revoked"


@dataclass(frozen=True)
class ConsentTerms:
    """A consent as the facts hold it. `starts_on`/`expires_on` are None while only its
    revocation is known."""

    consent_id: UUID
    recipients: frozenset[str]
    network: bool
    purposes: frozenset[str]
    data_classes: frozenset[str]
    starts_on: date | None
    expires_on: date | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class MissingConsent:
    """One thing that stops the share: a code, a sentence for people, and what it concerns."""

    code: MissingCode
    detail: str
    consent_id: UUID | None = None
    data_classes: tuple[DataClass, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code.value,
            "detail": self.detail,
            "consent_id": str(self.consent_id) if self.consent_id else None,
            "data_classes": [data_class.value for data_class in self.data_classes],
        }


@dataclass(frozen=True)
class ConsentCoverage:
    """`consent_id`: the consent that covers the share (None when none does, or nothing was
    asked). `missing`: empty when covered; otherwise what the nearest consent lacks (or
    `no-consent`)."""

    consent_id: UUID | None
    missing: list[MissingConsent] = field(default_factory=list)

    @property
    def covered(self) -> bool:
        return not self.missing


def _in_order(classes: Iterable[DataClass]) -> tuple[DataClass, ...]:
    wanted = set(classes)
    return tuple(member for member in DataClass if member in wanted)


def shortfalls(
    consent: ConsentTerms,
    *,
    organization_id: str,
    purpose: Purpose,
    data_classes: Collection[DataClass],
    on: date,
) -> list[MissingConsent]:
    """Everything this one consent lacks for the share; empty when it covers it."""
    cid = consent.consent_id
    if consent.revoked_at is not None or consent.starts_on is None or consent.expires_on is None:
        return [MissingConsent(MissingCode.REVOKED, f"Consent {cid} was revoked.", cid)]
    missing: list[MissingConsent] = []
    if on < consent.starts_on:
        missing.append(
            MissingConsent(
                MissingCode.NOT_YET_VALID,
                f"Consent {cid} applies from {consent.starts_on.isoformat()}.",
                cid,
            )
        )
    if on >= consent.expires_on:
        missing.append(
            MissingConsent(
                MissingCode.EXPIRED,
                f"Consent {cid} expired on {consent.expires_on.isoformat()}.",
                cid,
            )
        )
    if purpose.value not in consent.purposes:
        missing.append(
            MissingConsent(
                MissingCode.PURPOSE_NOT_COVERED,
                f"Consent {cid} does not cover the purpose {purpose.value}.",
                cid,
            )
        )
    if consent.network:
        unnamed = _in_order(c for c in data_classes if c in RECIPIENT_SPECIFIC_DATA_CLASSES)
        for data_class in unnamed:
            missing.append(
                MissingConsent(
                    MissingCode.ORGANISATION_NOT_NAMED,
                    f"Consent {cid} covers the network but not {data_class.value} data for "
                    f"{organization_id}: {RECIPIENT_SPECIFIC_DATA_CLASSES[data_class]}.",
                    cid,
                    (data_class,),
                )
            )
    elif organization_id not in consent.recipients:
        missing.append(
            MissingConsent(
                MissingCode.ORGANISATION_NOT_NAMED,
                f"Consent {cid} does not name the organisation {organization_id}.",
                cid,
                _in_order(data_classes),
            )
        )
    uncovered = _in_order(c for c in data_classes if c.value not in consent.data_classes)
    if uncovered:
        missing.append(
            MissingConsent(
                MissingCode.CLASS_NOT_COVERED,
                f"Consent {cid} does not cover " + ", ".join(c.value for c in uncovered) + " data.",
                cid,
                uncovered,
            )
        )
    return missing


_SEVERITY = {
    MissingCode.REVOKED: 1000,
    MissingCode.EXPIRED: 100,
    MissingCode.NOT_YET_VALID: 10,
}


def _distance(missing: Sequence[MissingConsent]) -> int:
    """How far a consent is from covering the share: a consent that is in force but narrow is
    nearer than one that expired, which is nearer than one revoked."""
    return sum(_SEVERITY.get(m.code, 1) * max(1, len(m.data_classes)) for m in missing)


def decide_coverage(
    consents: Iterable[ConsentTerms],
    *,
    organization_id: str,
    purpose: Purpose,
    data_classes: Collection[DataClass],
    on: date,
) -> ConsentCoverage:
    """The consent that covers sharing `data_classes` with `organization_id` for `purpose` on
    `on`; among several, the one that lasts longest (then the lowest id, so the answer is
    stable). When none covers it: what the nearest consent lacks, or `no-consent` when the
    client has none. A share of no classes needs no consent (covered, `consent_id` None).

    Rules: a consent applies from `starts_on` up to, not including, `expires_on`; revoked, it
    covers nothing; it must include the purpose and every class; it must name the organisation
    or cover the network, and a network consent never covers RECIPIENT_SPECIFIC_DATA_CLASSES.
    """
    if not data_classes:
        return ConsentCoverage(None, [])
    judged = [
        (
            consent,
            shortfalls(
                consent,
                organization_id=organization_id,
                purpose=purpose,
                data_classes=data_classes,
                on=on,
            ),
        )
        for consent in consents
    ]
    if not judged:
        return ConsentCoverage(
            None,
            [MissingConsent(MissingCode.NO_CONSENT, "The client has no consent on record.")],
        )
    covering = [consent for consent, missing in judged if not missing]
    if covering:
        best = min(
            covering,
            key=lambda c: (-(c.expires_on or date.min).toordinal(), str(c.consent_id)),
        )
        return ConsentCoverage(best.consent_id, [])
    _, nearest = min(judged, key=lambda pair: (_distance(pair[1]), str(pair[0].consent_id)))
    return ConsentCoverage(None, nearest)


def covered_classes(
    consent: ConsentTerms, *, organization_id: str, purpose: Purpose, on: date
) -> frozenset[DataClass]:
    """The classes of data this one consent lets go to `organization_id` for `purpose` on
    `on` (empty when it is revoked, not in force, or does not reach the organisation)."""
    return frozenset(
        data_class
        for data_class in DataClass
        if not shortfalls(
            consent,
            organization_id=organization_id,
            purpose=purpose,
            data_classes=(data_class,),
            on=on,
        )
    )


# --------------------------------------------------------------------------------------------
# Reading the facts

_COLUMNS = (
    "consent_id, recipients, network, purposes, data_classes, starts_on, expires_on, revoked_at"
)


def _terms(row: asyncpg.Record) -> ConsentTerms:
    return ConsentTerms(
        consent_id=row["consent_id"],
        recipients=frozenset(row["recipients"]),
        network=row["network"],
        purposes=frozenset(row["purposes"]),
        data_classes=frozenset(row["data_classes"]),
        starts_on=row["starts_on"],
        expires_on=row["expires_on"],
        revoked_at=row["revoked_at"],
    )


async def client_consents(connection: asyncpg.Connection, client_id: UUID) -> list[ConsentTerms]:
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM consent_facts WHERE client_id = $1", client_id
    )
    return [_terms(row) for row in rows]


async def load_consent(connection: asyncpg.Connection, consent_id: UUID) -> ConsentTerms | None:
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM consent_facts WHERE consent_id = $1", consent_id
    )
    return _terms(row) if row else None


async def covering_consent(
    connection: asyncpg.Connection,
    *,
    client_id: UUID,
    organization_id: str,
    purpose: Purpose,
    data_classes: Collection[DataClass],
    on: date,
) -> ConsentCoverage:
    """`decide_coverage` over the client's consents as this service knows them."""
    return decide_coverage(
        await client_consents(connection, client_id),
        organization_id=organization_id,
        purpose=purpose,
        data_classes=data_classes,
        on=on,
    )


def consent_problem(coverage: ConsentCoverage) -> ProblemError:
    """422 problem details saying exactly what is missing (`missing`: code, detail, consent_id,
    data_classes for each item)."""
    return ProblemError(
        422,
        "consent-required",
        "Consent does not cover this",
        detail=" ".join(m.detail for m in coverage.missing),
        missing=[m.as_dict() for m in coverage.missing],
    )
