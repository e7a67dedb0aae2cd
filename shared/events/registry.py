"""Every event type Casework publishes, by CloudEvents type."""

from __future__ import annotations

from shared.events import assessment, consent, identity, planning, referrals
from shared.events.contracts import PLATFORM_EVENTS, EventData

EVENT_TYPES: dict[str, type[EventData]] = {
    model.event_type: model
    for model in (
        *PLATFORM_EVENTS,
        *consent.EVENTS,
        *assessment.EVENTS,
        *identity.EVENTS,
        *planning.EVENTS,
        *referrals.EVENTS,
    )
}
