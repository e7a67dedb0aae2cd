"""Everything intake keeps in its own schema."""

from shared.db.metadata import service_metadata, table_base
from shared.messaging.tables import add_messaging_tables

SCHEMA = "intake"
metadata = service_metadata(SCHEMA)
add_messaging_tables(metadata)
IntakeTable = table_base(metadata)
