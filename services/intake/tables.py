"""Everything intake keeps in its own schema."""

from sqlalchemy.orm import registry
from sqlmodel import SQLModel

from shared.auth.addressed import referral_grants_table
from shared.db.metadata import service_metadata
from shared.db.platform_tables import add_platform_tables

SCHEMA = "intake"
metadata = service_metadata(SCHEMA)
add_platform_tables(metadata)
# Intake grants Scope.ADDRESSED (partners' shared records): it keeps referrals' grants.
referral_grants_table(metadata)


class IntakeTable(SQLModel, registry=registry(metadata=metadata)):
    """Base of intake's SQLModel tables: they land in intake's own metadata and schema."""
