"""Everything planning keeps in its own schema."""

from services.planning.approvals.models import approvals_table
from services.planning.cases.models import case_assignments_table, case_needs_table, cases_table
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
case_assignments_table(metadata)
workers_table(metadata)
cases_table(metadata)
case_needs_table(metadata)
case_timeline_table(metadata)
approvals_table(metadata)
case_transfers_table(metadata)
