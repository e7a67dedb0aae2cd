"""The notifications service: what it serves and which events it handles."""

from pathlib import Path

from services.notifications.access import POLICY
from shared.audit.views import audit_router
from shared.auth.consents import CONSENT_HANDLERS
from shared.client_refs import CLIENT_REF_HANDLERS, client_refs_router
from shared.spec import ServiceSpec

SPEC = ServiceSpec(
    name="notifications",
    title="Notifications",
    description="Inbox, reminders, escalations and webhooks.",
    port_index=4,
    migrations=Path(__file__).parent / "migrations",
    policy=POLICY,
    routers=[client_refs_router(), audit_router()],
    handlers={**CLIENT_REF_HANDLERS, **CONSENT_HANDLERS},
)
