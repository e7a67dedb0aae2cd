"""The referrals service: what it serves and which events it handles."""

from pathlib import Path

from services.referrals.access import POLICY
from services.referrals.directory import hsds_views
from services.referrals.directory import views as directory_views
from services.referrals.directory.assessments import on_client_assessed
from services.referrals.lifecycle import expiry
from services.referrals.lifecycle.fhir_views import router as referral_fhir_router
from services.referrals.lifecycle.handlers import on_consent_revoked, on_expiry_due
from services.referrals.lifecycle.views import router as referrals_router
from shared.audit.views import audit_router
from shared.auth.consents import CONSENT_HANDLERS
from shared.client_refs import CLIENT_REF_HANDLERS, client_refs_router
from shared.events.assessment import ClientAssessed
from shared.events.consent import ConsentRevoked, ProtectedConsentRevoked
from shared.spec import ServiceSpec

SPEC = ServiceSpec(
    name="referrals",
    title="Referrals",
    description="Resource directory (Open Referral HSDS 3.1), matching, and closed-loop referrals.",
    port_index=3,
    migrations=Path(__file__).parent / "migrations",
    policy=POLICY,
    routers=[
        client_refs_router(),
        referrals_router,
        referral_fhir_router,
        directory_views.router,
        hsds_views.router,
        audit_router(),
    ],
    handlers={
        **CLIENT_REF_HANDLERS,
        **CONSENT_HANDLERS,
        # Records the revocation (as CONSENT_HANDLERS does), then cancels what relied on it.
        ConsentRevoked.event_type: on_consent_revoked,
        ProtectedConsentRevoked.event_type: on_consent_revoked,
        ClientAssessed.event_type: on_client_assessed,
    },
    timer_handlers={expiry.KIND: on_expiry_due},
    bulk_upload_paths=(directory_views.IMPORT_PATH,),
    api_lifespan=directory_views.matching_lifespan,
)
