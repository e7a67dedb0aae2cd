"""Everything planning keeps in its own schema."""

from sqlalchemy import Index

from services.planning.approvals.models import approvals_table
from services.planning.cases.models import (
    assessment_needs_table,
    assessments_received_table,
    case_assignment_case_id,
    case_assignments_table,
    case_closures_table,
    case_needs_table,
    case_reopenings_table,
    cases_table,
)
from services.planning.notes.models import notes_table
from services.planning.plans.models import (
    goal_progress_table,
    goal_status_changes_table,
    plans_table,
)
from services.planning.reviews.models import case_crises_table, reviews_table
from services.planning.timeline.models import case_timeline_table
from services.planning.transfers.models import case_transfers_table
from services.planning.workers.models import workers_table
from shared.client_refs import client_refs_table
from shared.db.metadata import service_metadata
from shared.db.platform_tables import add_platform_tables

SCHEMA = "planning"
metadata = service_metadata(SCHEMA)
add_platform_tables(metadata)
client_refs_table(metadata)
assignments = case_assignments_table(metadata)
assignments.append_column(case_assignment_case_id())
Index("ix_case_assignments_case_id_assigned_at", assignments.c.case_id, assignments.c.assigned_at)
workers_table(metadata)
cases_table(metadata)
case_needs_table(metadata)
case_timeline_table(metadata)
approvals_table(metadata)
case_transfers_table(metadata)
reviews_table(metadata)
case_crises_table(metadata)
case_closures_table(metadata)
case_reopenings_table(metadata)
assessment_needs_table(metadata)
assessments_received_table(metadata)
plans_table(metadata)
goal_progress_table(metadata)
goal_status_changes_table(metadata)
notes_table(metadata)
