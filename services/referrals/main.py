"""The referrals service: what it serves and which events it handles."""

from pathlib import Path

from services.referrals.access import POLICY
from shared.audit.views import audit_router
from shared.auth.consents import CONSENT_HANDLERS
from shared.client_refs import CLIENT_REF_HANDLERS, client_refs_router
from shared.spec import ServiceSpec

SPEC = ServiceSpec(
    name="referrals",
    title="Referrals",
    description="Resource directory and closed-loop referrals.",
    port_index=3,
    migrations=Path(__file__).parent / "migrations",
    policy=POLICY,
    routers=[client_refs_router(), audit_router()],
    handlers={**CLIENT_REF_HANDLERS, **CONSENT_HANDLERS},
)
