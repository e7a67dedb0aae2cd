"""The intake service: what it serves and which events it handles."""

from pathlib import Path

from services.intake.access import POLICY
from services.intake.assessment_drafts.views import router as assessment_drafts_router
from services.intake.assessments.equity_views import router as equity_router
from services.intake.assessments.flag_queue_views import router as flag_queue_router
from services.intake.assessments.flag_views import router as flags_router
from services.intake.assessments.views import instruments_router
from services.intake.assessments.views import router as assessments_router
from services.intake.clients.history_views import router as client_history_router
from services.intake.clients.views import router as clients_router
from services.intake.code_lists.views import router as code_lists_router
from services.intake.consents.views import router as consents_router
from services.intake.links.views import router as links_router
from services.intake.partner.views import router as partner_router
from shared.audit.views import audit_router
from shared.auth.addressed import REFERRAL_GRANT_HANDLERS
from shared.auth.facts import on_case_assigned
from shared.events.contracts import CaseAssigned
from shared.spec import ServiceSpec

SPEC = ServiceSpec(
    name="intake",
    title="Intake",
    description="Client registration, consent and assessment. Publishes client events.",
    port_index=1,
    migrations=Path(__file__).parent / "migrations",
    policy=POLICY,
    routers=[
        code_lists_router,
        clients_router,
        client_history_router,
        consents_router,
        instruments_router,
        assessments_router,
        assessment_drafts_router,
        flags_router,
        flag_queue_router,
        equity_router,
        links_router,
        partner_router,
        audit_router(),
    ],
    handlers={CaseAssigned.event_type: on_case_assigned, **REFERRAL_GRANT_HANDLERS},
)
