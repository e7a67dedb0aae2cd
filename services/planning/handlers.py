"""Every event planning handles, by type: client access facts and references (shared), cases
from assessments and crises, and timeline entries from other services' events."""

from __future__ import annotations

from services.planning.cases import assessments
from services.planning.timeline.events import TIMELINE_HANDLERS
from shared.client_refs import CLIENT_REF_HANDLERS
from shared.events.assessment import (
    ClientAssessed,
    ProtectedFlagRaised,
    ProtectedNeedsAssessed,
)
from shared.messaging.consumer import Handler

HANDLERS: dict[str, Handler] = {
    **CLIENT_REF_HANDLERS,
    ClientAssessed.event_type: assessments.on_client_assessed,
    ProtectedNeedsAssessed.event_type: assessments.on_protected_needs_assessed,
    ProtectedFlagRaised.event_type: assessments.on_protected_flag_raised,
    **TIMELINE_HANDLERS,
}
