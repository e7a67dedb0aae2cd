"""The system's side of the loop: moves nobody asks for through the API, made by the worker in
the transaction of the event or timer that causes them, with their events in that transaction's
outbox write.

- Consent revoked (intake's `ConsentRevoked`, or `ProtectedConsentRevoked` for a consent of
  protected classes only): the consent projection records it, and every open
  referral that shares data under that consent is cancelled with `consent-revoked`; the
  receiving organisation learns it from `ReferralStatusChanged`. The same revocation arriving
  again (or under another event id) finds nothing open: nothing happens twice.
- Expiry (the `referral-expiry` timer): a referral still requested when its deadline comes
  expires; one that moved on meanwhile (its timer was cancelled, or the move raced the timer)
  is left alone. The change is dated at the deadline, whenever the timer fires.
"""

from __future__ import annotations

import asyncpg

from services.referrals.lifecycle import expiry, service
from services.referrals.lifecycle.service import Actor, TransitionRefused
from services.referrals.lifecycle.transitions import Side
from shared.auth.consents import record_consent_revoked
from shared.events.consent import ConsentRevoked, ProtectedConsentRevoked
from shared.events.envelope import Event, OutgoingEvent
from shared.events.referrals import ReferralReason, ReferralStatus
from shared.messaging.outbox import enqueue
from shared.timers import Timer

SYSTEM = frozenset({Side.SYSTEM})


async def on_consent_revoked(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ConsentRevoked | ProtectedConsentRevoked)
    await record_consent_revoked(connection, data)
    for referral in await service.open_referrals_relying_on(connection, data.consent_id):
        _, events = await service.change_status(
            connection,
            referral,
            to=ReferralStatus.CANCELLED,
            reason=ReferralReason.CONSENT_REVOKED,
            outcome=None,
            sides=SYSTEM,
            actor=Actor.system("consent"),
            now=max(data.revoked_at, referral.updated_at),
            timing=None,
        )
        await enqueue(connection, *(OutgoingEvent.of(e) for e in events))


async def on_expiry_due(connection: asyncpg.Connection, timer: Timer) -> None:
    referral = await service.get_referral(connection, expiry.referral_of(timer), for_update=True)
    if referral is None or referral.status is not ReferralStatus.REQUESTED:
        return
    if referral.expires_at is None or referral.expires_at > timer.due_at:
        return  # re-requested with a later deadline: its own timer will come
    try:
        _, events = await service.change_status(
            connection,
            referral,
            to=ReferralStatus.EXPIRED,
            reason=None,
            outcome=None,
            sides=SYSTEM,
            actor=Actor.system("expiry"),
            now=referral.expires_at,
            timing=None,
        )
    except TransitionRefused:  # the table no longer lets requested expire: nothing to do
        return
    await enqueue(connection, *(OutgoingEvent.of(e) for e in events))
