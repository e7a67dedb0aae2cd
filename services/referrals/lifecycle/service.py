"""Referrals' decisions: making a referral and moving it through the transition table, with its
history and its events, in the caller's transaction.

Every change goes through `change_status`, whoever asks: a worker or partner through the API, a
receiving system through a FHIR Task, the expiry timer, the consent-revocation handler. Each
returns the events to publish, so the caller puts them in its own outbox write (a UnitOfWork in
the API, `enqueue` in a consumer or timer handler).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID, uuid4

import asyncpg

from services.referrals.lifecycle import expiry
from services.referrals.lifecycle.models import HistoryEntry, Mode, ReferralPublic
from services.referrals.lifecycle.transitions import Allowed, Refusal, Side, decide, table
from shared.events.consent import DataClass
from shared.events.contracts import EventData
from shared.events.referrals import (
    ReferralClosed,
    ReferralMade,
    ReferralOutcome,
    ReferralReason,
    ReferralStatus,
    ReferralStatusChanged,
)

Via = Literal["api", "fhir", "expiry", "consent"]

_COLUMNS = (
    "id, client_id, sending_organization_id, sent_by, service_id, receiving_organization_id, "
    "mode, status, reason_code, data_classes, consent_id, note, outcome, created_at, "
    "updated_at, requested_at, expires_at, closed_at, follow_up_due_at, version"
)


@dataclass(frozen=True)
class Referral:
    """A referral as stored."""

    id: UUID
    client_id: UUID
    sending_organization_id: str
    sent_by: str
    service_id: str
    receiving_organization_id: str | None
    mode: Mode
    status: ReferralStatus
    reason_code: ReferralReason | None
    data_classes: tuple[DataClass, ...]
    consent_id: UUID | None
    note: str | None
    outcome: ReferralOutcome | None
    created_at: datetime
    updated_at: datetime
    requested_at: datetime | None
    expires_at: datetime | None
    closed_at: datetime | None
    follow_up_due_at: datetime | None
    version: int

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> Referral:
        values: dict[str, Any] = dict(row)
        values["status"] = ReferralStatus(values["status"])
        values["reason_code"] = ReferralReason(row["reason_code"]) if row["reason_code"] else None
        values["outcome"] = ReferralOutcome(row["outcome"]) if row["outcome"] else None
        values["data_classes"] = tuple(DataClass(c) for c in row["data_classes"])
        return cls(**values)

    @property
    def was_sent(self) -> bool:
        """Whether the receiving organisation has it: a sent referral once requested."""
        return self.mode == "sent" and self.requested_at is not None

    def shown_to(self, sides: frozenset[Side]) -> ReferralPublic:
        """What a caller acting for `sides` is shown (no side: a break-glass read)."""
        return ReferralPublic(
            id=self.id,
            client_id=self.client_id,
            service_id=self.service_id,
            mode=self.mode,
            status=self.status,
            reason_code=self.reason_code,
            sending_organization_id=self.sending_organization_id,
            sent_by=self.sent_by,
            receiving_organization_id=self.receiving_organization_id,
            data_classes=list(self.data_classes),
            consent_id=self.consent_id,
            note=self.note if Side.SENDING in sides or not sides else None,
            outcome=self.outcome,
            created_at=self.created_at,
            updated_at=self.updated_at,
            requested_at=self.requested_at,
            expires_at=self.expires_at,
            closed_at=self.closed_at,
            follow_up_due_at=self.follow_up_due_at,
            version=self.version,
            your_sides=sorted(sides),
            allowed_next=table().allowed_next(self.status, sides),
        )


@dataclass(frozen=True)
class Actor:
    """Who sets a status: a side, and the organisation and user acting for it (None: system)."""

    side: Side
    organization_id: str | None
    user: str | None
    via: Via

    @classmethod
    def system(cls, via: Via) -> Actor:
        return cls(Side.SYSTEM, None, None, via)


@dataclass(frozen=True)
class Timing:
    """The time rules of a referral, from settings: the default acceptance deadline (when the
    directory's service has none) and when to follow up after completion."""

    default_acceptance_days: int
    follow_up_days: int


class TransitionRefused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.detail)
        self.refusal = refusal


class StaleVersion(Exception):
    """The referral changed since the caller read it."""


async def get_referral(
    connection: asyncpg.Connection, referral_id: UUID, *, for_update: bool = False
) -> Referral | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await connection.fetchrow(
        f"SELECT {_COLUMNS} FROM referrals WHERE id = $1{lock}", referral_id
    )
    return Referral.of(row) if row else None


def _expires_at(now: datetime, acceptance_days: int | None, timing: Timing) -> datetime:
    return now + timedelta(days=acceptance_days or timing.default_acceptance_days)


async def make_referral(
    connection: asyncpg.Connection,
    *,
    client_id: UUID,
    service_id: str,
    mode: Mode,
    receiving_organization_id: str | None,
    share: Sequence[DataClass],
    consent_id: UUID | None,
    note: str | None,
    draft: bool,
    acceptance_days: int | None,
    made_by: Actor,
    now: datetime,
    timing: Timing,
) -> tuple[Referral, list[EventData]]:
    """Store a referral (draft or requested) with its first history entry; schedule its expiry
    when a sent referral is requested. Returns it and `ReferralMade`."""
    assert made_by.organization_id is not None and made_by.user is not None
    status = ReferralStatus.DRAFT if draft else ReferralStatus.REQUESTED
    requested = status is ReferralStatus.REQUESTED
    expires_at = _expires_at(now, acceptance_days, timing) if requested and mode == "sent" else None
    row = await connection.fetchrow(
        f"INSERT INTO referrals (id, client_id, sending_organization_id, sent_by, service_id, "
        f"receiving_organization_id, mode, status, data_classes, consent_id, note, created_at, "
        f"updated_at, requested_at, expires_at) "
        f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14) "
        f"RETURNING {_COLUMNS}",
        uuid4(),
        client_id,
        made_by.organization_id,
        made_by.user,
        service_id,
        receiving_organization_id,
        mode,
        status.value,
        [c.value for c in share],
        consent_id,
        note,
        now,
        now if requested else None,
        expires_at,
    )
    referral = Referral.of(row)
    await _record_history(connection, referral, None, made_by, now)
    if referral.expires_at is not None:
        await expiry.schedule(connection, referral.id, referral.expires_at)
    made = ReferralMade(
        referral_id=referral.id,
        client_id=referral.client_id,
        sending_organization_id=referral.sending_organization_id,
        receiving_organization_id=referral.receiving_organization_id,
        service_id=referral.service_id,
        mode=referral.mode,
        consent_id=referral.consent_id,
        status=referral.status,
        made_by=referral.sent_by,
        made_at=now,
        expires_at=referral.expires_at,
    )
    return referral, [made]


async def change_status(
    connection: asyncpg.Connection,
    referral: Referral,
    *,
    to: ReferralStatus,
    reason: ReferralReason | None,
    outcome: ReferralOutcome | None,
    sides: frozenset[Side],
    actor: Actor,
    now: datetime,
    timing: Timing | None,
    acceptance_days: int | None = None,
    consent_id: UUID | None = None,
) -> tuple[Referral, list[EventData]]:
    """Move a referral (read FOR UPDATE by the caller) along the table, as any of `sides`;
    TransitionRefused when the table forbids it, StaleVersion when it changed meanwhile.
    `consent_id`: the consent a draft relies on as it is requested. `timing` is needed only
    for a move to requested or completed (the system's moves, expiry and cancellation, need
    none)."""
    decision = decide(
        table(), current=referral.status, to=to, sides=sides, reason=reason, outcome=outcome
    )
    if isinstance(decision, Refusal):
        raise TransitionRefused(decision)
    assert isinstance(decision, Allowed)
    actor = replace(actor, side=decision.side)
    final = table().is_final(to)
    if final and outcome is None:
        outcome = ReferralOutcome.UNKNOWN
    requested_now = to is ReferralStatus.REQUESTED and referral.requested_at is None
    expires_at = referral.expires_at
    if requested_now and referral.mode == "sent":
        expires_at = _expires_at(now, acceptance_days, _needed(timing))
    follow_up = None
    if to is ReferralStatus.COMPLETED:
        follow_up = now + timedelta(days=_needed(timing).follow_up_days)
    row = await connection.fetchrow(
        f"UPDATE referrals SET status = $3, reason_code = $4, outcome = $5, updated_at = $6, "
        f"requested_at = coalesce(requested_at, $7), expires_at = $8, closed_at = $9, "
        f"follow_up_due_at = coalesce($10, follow_up_due_at), "
        f"consent_id = coalesce($11, consent_id), version = version + 1 "
        f"WHERE id = $1 AND version = $2 RETURNING {_COLUMNS}",
        referral.id,
        referral.version,
        to.value,
        reason.value if reason else None,
        outcome.value if outcome else None,
        now,
        now if requested_now else None,
        expires_at,
        now if final else None,
        follow_up,
        consent_id,
    )
    if row is None:
        raise StaleVersion
    changed = Referral.of(row)
    await _record_history(connection, changed, referral.status, actor, now)
    if referral.status is ReferralStatus.REQUESTED and to is not ReferralStatus.EXPIRED:
        await expiry.cancel(connection, changed.id)  # (an expiry is its own timer firing)
    if to is ReferralStatus.REQUESTED and changed.expires_at is not None:
        await expiry.schedule(connection, changed.id, changed.expires_at)
    return changed, _change_events(changed, referral.status, actor, now)


def _needed(timing: Timing | None) -> Timing:
    if timing is None:
        raise ValueError("this move needs the referral time rules (settings)")
    return timing


def _change_events(
    referral: Referral, previous: ReferralStatus, actor: Actor, now: datetime
) -> list[EventData]:
    common: dict[str, Any] = {
        "referral_id": referral.id,
        "client_id": referral.client_id,
        "sending_organization_id": referral.sending_organization_id,
        "receiving_organization_id": referral.receiving_organization_id,
    }
    events: list[EventData] = [
        ReferralStatusChanged(
            **common,
            from_status=previous,
            to_status=referral.status,
            reason_code=referral.reason_code,
            set_by_organization_id=actor.organization_id,
            changed_at=now,
        )
    ]
    if table().is_final(referral.status):
        events.append(
            ReferralClosed(
                **common,
                final_status=referral.status,
                outcome=referral.outcome or ReferralOutcome.UNKNOWN,
                closed_at=now,
                follow_up_due_at=referral.follow_up_due_at,
            )
        )
    return events


async def _record_history(
    connection: asyncpg.Connection,
    referral: Referral,
    previous: ReferralStatus | None,
    actor: Actor,
    now: datetime,
) -> None:
    await connection.execute(
        "INSERT INTO referral_history (referral_id, from_status, to_status, reason_code, "
        "outcome, set_by_side, set_by_organization_id, set_by_user, via, at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        referral.id,
        previous.value if previous else None,
        referral.status.value,
        referral.reason_code.value if referral.reason_code else None,
        referral.outcome.value if referral.outcome else None,
        actor.side.value,
        actor.organization_id,
        actor.user,
        actor.via,
        now,
    )


async def history(connection: asyncpg.Connection, referral_id: UUID) -> list[HistoryEntry]:
    rows = await connection.fetch(
        "SELECT from_status, to_status, reason_code, outcome, set_by_side, "
        "set_by_organization_id, set_by_user, via, at FROM referral_history "
        "WHERE referral_id = $1 ORDER BY seq",
        referral_id,
    )
    return [HistoryEntry.model_validate(dict(row)) for row in rows]


async def open_referrals_relying_on(
    connection: asyncpg.Connection, consent_id: UUID
) -> list[Referral]:
    """The open referrals that share data under this consent, locked for a change."""
    rows = await connection.fetch(
        f"SELECT {_COLUMNS} FROM referrals WHERE consent_id = $1 AND status = ANY($2::text[]) "
        f"ORDER BY id FOR UPDATE",
        consent_id,
        [status.value for status in table().open],
    )
    return [Referral.of(row) for row in rows]


@dataclass(frozen=True)
class Visibility:
    """Which referrals a caller may list: those of clients their scope reaches (an SQL clause
    over client_access `a`, with its parameters) and, for the receiving side, those addressed
    to their organisation."""

    outgoing: tuple[str, list[str]]
    incoming_organization_id: str | None


async def list_referrals(
    connection: asyncpg.Connection,
    *,
    visibility: Visibility,
    direction: Literal["incoming", "outgoing"] | None,
    client_id: UUID | None,
    status: ReferralStatus | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[tuple[Referral, bool]]:
    """Newest first, keyset-paginated on (created_at, id); each with whether the caller's
    client scope reaches it (the sending side), as opposed to it being addressed to them."""
    clause, parameters = visibility.outgoing
    values: list[Any] = [*parameters]

    def parameter(value: Any) -> str:
        values.append(value)
        return f"${len(values)}"

    parts: list[str] = []
    if direction in (None, "outgoing"):
        parts.append(clause)
    if direction in (None, "incoming") and visibility.incoming_organization_id is not None:
        parts.append(
            f"(r.receiving_organization_id = {parameter(visibility.incoming_organization_id)} "
            "AND r.mode = 'sent' AND r.requested_at IS NOT NULL)"
        )
    where = ["(" + " OR ".join(f"({p})" for p in parts) + ")" if parts else "FALSE"]
    if client_id is not None:
        where.append(f"r.client_id = {parameter(client_id)}")
    if status is not None:
        where.append(f"r.status = {parameter(status.value)}")
    if after is not None:
        where.append(f"(r.created_at, r.id) < ({parameter(after[0])}, {parameter(after[1])})")
    columns = ", ".join(f"r.{c.strip()}" for c in _COLUMNS.split(","))
    rows = await connection.fetch(
        f"SELECT {columns}, coalesce({clause}, FALSE) AS by_client_scope "
        f"FROM referrals r LEFT JOIN client_access a ON a.client_id = r.client_id "
        f"WHERE {' AND '.join(where)} ORDER BY r.created_at DESC, r.id DESC "
        f"LIMIT {parameter(limit)}",
        *values,
    )
    return [
        (
            Referral.of({k: v for k, v in row.items() if k != "by_client_scope"}),
            row["by_client_scope"],
        )
        for row in rows
    ]
