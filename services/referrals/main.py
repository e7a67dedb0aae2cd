"""The referrals service: what it serves and which events it handles."""

from pathlib import Path

from services.referrals.access import POLICY
from services.referrals.directory import hsds_views
from services.referrals.directory import views as directory_views
from services.referrals.directory.assessments import on_client_assessed
from shared.audit.views import audit_router
from shared.client_refs import CLIENT_REF_HANDLERS, client_refs_router
from shared.events.assessment import ClientAssessed
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
        audit_router(),
        directory_views.router,
        hsds_views.router,
    ],
    handlers={**CLIENT_REF_HANDLERS, ClientAssessed.event_type: on_client_assessed},
    bulk_upload_paths=(directory_views.IMPORT_PATH,),
)
