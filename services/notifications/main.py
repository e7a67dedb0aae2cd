"""The notifications service: what it serves and which events it handles."""

from pathlib import Path

from services.notifications.access import POLICY
from services.notifications.directory.views import router as on_call_router
from services.notifications.flows import HANDLERS, TIMER_HANDLERS
from services.notifications.inbox.stream import broadcasting
from services.notifications.inbox.views import router as inbox_router
from services.notifications.preferences.views import router as preferences_router
from services.notifications.rules.views import router as rules_router
from shared.audit.views import audit_router
from shared.auth.consents import CONSENT_HANDLERS
from shared.client_refs import client_refs_router
from shared.spec import ServiceSpec

SPEC = ServiceSpec(
    name="notifications",
    title="Notifications",
    description="Inbox, live stream, reminders, escalations and webhooks.",
    port_index=4,
    migrations=Path(__file__).parent / "migrations",
    policy=POLICY,
    routers=[
        inbox_router,
        preferences_router,
        rules_router,
        on_call_router,
        client_refs_router(),
        audit_router(),
    ],
    handlers={**HANDLERS, **CONSENT_HANDLERS},
    timer_handlers=TIMER_HANDLERS,
    api_lifespan=broadcasting,
)
