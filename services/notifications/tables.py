"""Everything notifications keeps in its own schema."""

from shared.client_refs import client_refs_table
from shared.db.metadata import service_metadata
from shared.db.platform_tables import add_platform_tables
from shared.timers import add_timer_tables

SCHEMA = "notifications"
metadata = service_metadata(SCHEMA)
add_platform_tables(metadata)
client_refs_table(metadata)
add_timer_tables(metadata)
