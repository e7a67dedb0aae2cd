"""Everything planning keeps in its own schema."""

from shared.client_refs import client_refs_table
from shared.db.metadata import service_metadata
from shared.messaging.tables import add_messaging_tables

SCHEMA = "planning"
metadata = service_metadata(SCHEMA)
add_messaging_tables(metadata)
client_refs_table(metadata)
