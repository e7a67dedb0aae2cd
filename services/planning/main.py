"""The planning service: what it serves and which events it handles."""

from pathlib import Path

from services.planning.access import POLICY
from services.planning.approvals.views import router as approvals_router
from services.planning.caseloads.views import router as caseloads_router
from services.planning.cases.views import router as cases_router
from services.planning.code_lists.views import router as code_lists_router
from services.planning.handlers import HANDLERS
from services.planning.notes.views import router as notes_router
from services.planning.plans.views import router as plans_router
from services.planning.reviews.views import router as reviews_router
from services.planning.timeline.views import router as timeline_router
from services.planning.transfers.views import case_transfers_router
from services.planning.transfers.views import router as transfers_router
from services.planning.work.views import router as work_router
from services.planning.workers.views import router as workers_router
from shared.audit.views import audit_router
from shared.auth.consents import CONSENT_HANDLERS
from shared.client_refs import client_refs_router
from shared.messaging.handlers import combine_handlers
from shared.spec import ServiceSpec

SPEC = ServiceSpec(
    name="planning",
    title="Planning",
    description="Cases, the staff directory, service plans, goals and notes.",
    port_index=2,
    migrations=Path(__file__).parent / "migrations",
    policy=POLICY,
    routers=[
        client_refs_router(),
        cases_router,
        reviews_router,
        timeline_router,
        code_lists_router,
        approvals_router,
        case_transfers_router,
        transfers_router,
        caseloads_router,
        work_router,
        workers_router,
        plans_router,
        notes_router,
        audit_router(),
    ],
    # The consent facts first: the timeline's consent entries come after them.
    handlers=combine_handlers(CONSENT_HANDLERS, HANDLERS),
)
