"""The notifications service: what it serves and which events it handles."""

from pathlib import Path

from services.notifications.access import POLICY
from services.notifications.channels import CHANNELS
from services.notifications.directory.views import router as on_call_router
from services.notifications.email.channel import email_channel
from services.notifications.email.digest import DIGEST_TIMER, on_digest_timer
from services.notifications.email.sender import run_email_sender
from services.notifications.flows import HANDLERS, TIMER_HANDLERS
from services.notifications.inbox.stream import broadcasting
from services.notifications.inbox.views import router as inbox_router
from services.notifications.preferences.views import router as preferences_router
from services.notifications.rules.views import router as rules_router
from services.notifications.webhooks.fanout import WEBHOOK_HANDLERS
from services.notifications.webhooks.secrets_at_rest import check_settings
from services.notifications.webhooks.sender import run_webhook_sender
from services.notifications.webhooks.views import router as webhooks_router
from shared.audit.views import audit_router
from shared.auth.consents import CONSENT_HANDLERS
from shared.client_refs import client_refs_router
from shared.messaging.handlers import combine_handlers
from shared.spec import ServiceSpec

# The e-mail channel, beside the built-in inbox: rules and preferences may name it.
CHANNELS["email"] = email_channel

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
        webhooks_router,
        client_refs_router(),
        audit_router(),
    ],
    # Projections first (client references are among HANDLERS): the webhook fan-out reads the
    # access and consent facts they keep.
    handlers=combine_handlers(HANDLERS, CONSENT_HANDLERS, WEBHOOK_HANDLERS),
    timer_handlers={**TIMER_HANDLERS, DIGEST_TIMER: on_digest_timer},
    loops={"webhook-sender": run_webhook_sender, "email-sender": run_email_sender},
    api_lifespan=broadcasting,
    settings_checks=[check_settings],
)
