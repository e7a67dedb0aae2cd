"""Every event planning handles, by type: client access facts and references (shared), cases
from assessments and crises, and timeline entries from other services' events."""

from __future__ import annotations

from services.planning.cases import assessments
from services.planning.timeline import events as timeline
from shared.client_refs import CLIENT_REF_HANDLERS
from shared.events.assessment import (
    ClientAssessed,
    FlagAcknowledged,
    FlagRaised,
    ProtectedFlagRaised,
    ProtectedNeedsAssessed,
)
from shared.events.consent import ConsentGranted, ConsentRevoked
from shared.events.referrals import ReferralClosed, ReferralMade, ReferralStatusChanged
from shared.messaging.consumer import Handler

HANDLERS: dict[str, Handler] = {
    **CLIENT_REF_HANDLERS,
    ClientAssessed.event_type: assessments.on_client_assessed,
    ProtectedNeedsAssessed.event_type: assessments.on_protected_needs_assessed,
    ProtectedFlagRaised.event_type: assessments.on_protected_flag_raised,
    FlagRaised.event_type: timeline.on_flag_raised,
    FlagAcknowledged.event_type: timeline.on_flag_acknowledged,
    ConsentGranted.event_type: timeline.on_consent_granted,
    ConsentRevoked.event_type: timeline.on_consent_revoked,
    ReferralMade.event_type: timeline.on_referral_made,
    ReferralStatusChanged.event_type: timeline.on_referral_status_changed,
    ReferralClosed.event_type: timeline.on_referral_closed,
}
