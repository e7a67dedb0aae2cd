"""Everything notifications keeps in its own schema."""

from services.notifications.directory.models import add_directory_tables
from services.notifications.email.models import email_deliveries_table
from services.notifications.inbox.models import add_inbox_tables
from services.notifications.inbox.stream import stream_tickets_table
from services.notifications.preferences.models import preferences_table
from services.notifications.rules.models import rule_sets_table
from shared.client_refs import client_refs_table
from shared.db.metadata import service_metadata
from shared.db.platform_tables import add_platform_tables
from shared.timers import add_timer_tables

SCHEMA = "notifications"
metadata = service_metadata(SCHEMA)
add_platform_tables(metadata)
client_refs_table(metadata)
add_timer_tables(metadata)
add_inbox_tables(metadata)
add_directory_tables(metadata)
preferences_table(metadata)
rule_sets_table(metadata)
stream_tickets_table(metadata)
email_deliveries_table(metadata)
