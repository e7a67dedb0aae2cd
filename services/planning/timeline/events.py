"""Timeline entries from other services' events: kinds, times, ids and codes only. Each goes
to the client's open case (or their latest); a client without a case has no timeline."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

from services.planning.cases.opening import case_for_client
from services.planning.timeline.service import NO_CODES, record_timeline
from shared.events.assessment import FlagAcknowledged, FlagRaised
from shared.events.consent import ConsentGranted, ConsentRevoked
from shared.events.envelope import Event
from shared.events.referrals import ReferralClosed, ReferralMade, ReferralStatusChanged
from shared.messaging.consumer import Handler


def _no_codes(_data: Any) -> Mapping[str, str]:
    return NO_CODES


def _status_change_codes(data: ReferralStatusChanged) -> Mapping[str, str]:
    codes = {"from_status": data.from_status.value, "to_status": data.to_status.value}
    if data.reason_code is not None:
        codes["reason_code"] = data.reason_code.value
    return codes


_TimelineData = (
    FlagRaised
    | FlagAcknowledged
    | ConsentGranted
    | ConsentRevoked
    | ReferralMade
    | ReferralStatusChanged
    | ReferralClosed
)


@dataclass(frozen=True)
class _Entry:
    """How one type of event becomes a timeline entry (`data` is of `data_type`)."""

    data_type: type[_TimelineData]
    kind: str
    subject_type: str
    subject_id: Callable[[Any], UUID]
    occurred_at: Callable[[Any, Event], datetime]
    codes: Callable[[Any], Mapping[str, str]] = _no_codes


_ENTRIES: dict[str, _Entry] = {
    FlagRaised.event_type: _Entry(
        FlagRaised, "flag.raised", "flag", lambda d: d.flag_id, lambda d, _e: d.raised_at,
        lambda d: {"severity": d.severity.value, "crisis": "true" if d.crisis else "false"},
    ),
    FlagAcknowledged.event_type: _Entry(
        FlagAcknowledged, "flag.acknowledged", "flag", lambda d: d.flag_id,
        lambda d, _e: d.acknowledged_at,
    ),
    # Only the general consent events: a consent's protected classes (ProtectedConsentGranted),
    # or that a consent of protected classes only exists, never show on a case's timeline,
    # which callers without protected access read.
    ConsentGranted.event_type: _Entry(
        ConsentGranted, "consent.granted", "consent", lambda d: d.consent_id,
        lambda _d, e: e.time,
    ),
    ConsentRevoked.event_type: _Entry(
        ConsentRevoked, "consent.revoked", "consent", lambda d: d.consent_id,
        lambda d, _e: d.revoked_at,
    ),
    ReferralMade.event_type: _Entry(
        ReferralMade, "referral.made", "referral", lambda d: d.referral_id,
        lambda d, _e: d.made_at, lambda d: {"status": d.status.value, "mode": d.mode},
    ),
    ReferralStatusChanged.event_type: _Entry(
        ReferralStatusChanged, "referral.status_changed", "referral", lambda d: d.referral_id,
        lambda d, _e: d.changed_at, _status_change_codes,
    ),
    ReferralClosed.event_type: _Entry(
        ReferralClosed, "referral.closed", "referral", lambda d: d.referral_id,
        lambda d, _e: d.closed_at,
        lambda d: {"final_status": d.final_status.value, "outcome": d.outcome.value},
    ),
}  # fmt: skip


async def on_event(connection: asyncpg.Connection, event: Event) -> None:
    """The timeline entry of one of the events in `_ENTRIES`."""
    how = _ENTRIES[event.type]
    data = event.data
    assert isinstance(data, how.data_type)
    case = await case_for_client(connection, data.client_id)
    if case is None:
        return
    await record_timeline(
        connection,
        case_id=case.id,
        client_id=data.client_id,
        kind=how.kind,
        occurred_at=how.occurred_at(data, event),
        subject_type=how.subject_type,
        subject_id=how.subject_id(data),
        codes=how.codes(data),
        source=event.source.rsplit("/", 1)[-1],
        event_id=UUID(event.id),
    )


TIMELINE_HANDLERS: dict[str, Handler] = dict.fromkeys(_ENTRIES, on_event)
