"""Timeline entries from other services' events: kinds, times, ids and codes only. Each goes
to the client's open case (or their latest); a client without a case has no timeline."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from uuid import UUID

import asyncpg

from services.planning.cases.opening import case_for_client
from services.planning.timeline.service import NO_CODES, record_timeline
from shared.events.assessment import FlagAcknowledged, FlagRaised
from shared.events.consent import ConsentGranted, ConsentRevoked
from shared.events.envelope import Event
from shared.events.referrals import ReferralClosed, ReferralMade, ReferralStatusChanged


async def _entry(
    connection: asyncpg.Connection,
    event: Event,
    *,
    client_id: UUID,
    kind: str,
    occurred_at: datetime,
    subject_type: str,
    subject_id: UUID,
    codes: Mapping[str, str] = NO_CODES,
) -> None:
    case = await case_for_client(connection, client_id)
    if case is None:
        return
    await record_timeline(
        connection,
        case_id=case.id,
        client_id=client_id,
        kind=kind,
        occurred_at=occurred_at,
        subject_type=subject_type,
        subject_id=subject_id,
        codes=codes,
        source=event.source.rsplit("/", 1)[-1],
        event_id=UUID(event.id),
    )


async def on_flag_raised(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, FlagRaised)
    await _entry(
        connection, event, client_id=data.client_id, kind="flag.raised",
        occurred_at=data.raised_at, subject_type="flag", subject_id=data.flag_id,
        codes={"severity": data.severity.value, "crisis": "true" if data.crisis else "false"},
    )  # fmt: skip


async def on_flag_acknowledged(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, FlagAcknowledged)
    await _entry(
        connection, event, client_id=data.client_id, kind="flag.acknowledged",
        occurred_at=data.acknowledged_at, subject_type="flag", subject_id=data.flag_id,
    )  # fmt: skip


async def on_consent_granted(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ConsentGranted)
    await _entry(
        connection, event, client_id=data.client_id, kind="consent.granted",
        occurred_at=event.time, subject_type="consent", subject_id=data.consent_id,
    )  # fmt: skip


async def on_consent_revoked(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ConsentRevoked)
    await _entry(
        connection, event, client_id=data.client_id, kind="consent.revoked",
        occurred_at=data.revoked_at, subject_type="consent", subject_id=data.consent_id,
    )  # fmt: skip


async def on_referral_made(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ReferralMade)
    await _entry(
        connection, event, client_id=data.client_id, kind="referral.made",
        occurred_at=data.made_at, subject_type="referral", subject_id=data.referral_id,
        codes={"status": data.status.value, "mode": data.mode},
    )  # fmt: skip


async def on_referral_status_changed(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ReferralStatusChanged)
    codes = {"from_status": data.from_status.value, "to_status": data.to_status.value}
    if data.reason_code is not None:
        codes["reason_code"] = data.reason_code.value
    await _entry(
        connection, event, client_id=data.client_id, kind="referral.status_changed",
        occurred_at=data.changed_at, subject_type="referral", subject_id=data.referral_id,
        codes=codes,
    )  # fmt: skip


async def on_referral_closed(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ReferralClosed)
    await _entry(
        connection, event, client_id=data.client_id, kind="referral.closed",
        occurred_at=data.closed_at, subject_type="referral", subject_id=data.referral_id,
        codes={"final_status": data.final_status.value, "outcome": data.outcome.value},
    )  # fmt: skip
