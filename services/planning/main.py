"""The planning service: what it serves and which events it handles."""

from shared.client_refs import CLIENT_REF_HANDLERS, client_refs_router
from shared.spec import ServiceSpec

SPEC = ServiceSpec(
    name="planning",
    title="Planning",
    description="Cases, service plans, goals and notes.",
    port_index=2,
    routers=[client_refs_router()],
    handlers=CLIENT_REF_HANDLERS,
)
