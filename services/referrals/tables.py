"""Everything referrals keeps in its own schema."""

from services.referrals.directory.assessments import client_assessments_table
from services.referrals.directory.tables import directory_tables
from services.referrals.lifecycle.tables import referral_history_table, referrals_table
from shared.client_refs import client_refs_table
from shared.db.metadata import service_metadata
from shared.db.platform_tables import add_platform_tables
from shared.timers import add_timer_tables

SCHEMA = "referrals"
metadata = service_metadata(SCHEMA)
add_platform_tables(metadata)
client_refs_table(metadata)
directory_tables(metadata)
add_timer_tables(metadata)
client_assessments_table(metadata)
referrals_table(metadata)
referral_history_table(metadata)
