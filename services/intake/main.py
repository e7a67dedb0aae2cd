"""The intake service: what it serves and which events it handles."""

from services.intake.clients.views import router as clients_router
from shared.spec import ServiceSpec

SPEC = ServiceSpec(
    name="intake",
    title="Intake",
    description="Client registration, consent and assessment. Publishes client events.",
    port_index=1,
    routers=[clients_router],
)
