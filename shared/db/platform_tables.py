"""The tables every service has besides its domain tables."""

from sqlalchemy import MetaData

from shared.audit.attempts import unauthenticated_attempts_table
from shared.audit.log import audit_log_table
from shared.auth.consents import consent_facts_table
from shared.auth.facts import client_access_table
from shared.messaging.tables import add_messaging_tables


def add_platform_tables(metadata: MetaData) -> None:
    add_messaging_tables(metadata)
    client_access_table(metadata)
    audit_log_table(metadata)
    unauthenticated_attempts_table(metadata)
    consent_facts_table(metadata)
