"""The resource directory: the HSDS 3.1 tables, need categories, eligibility rules and
capacity status.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

from services.referrals.directory.hsds_tables import TABLES
from services.referrals.directory.tables import directory_tables
from shared.db.metadata import service_metadata

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "referrals"
CASEWORK_TABLES = ("service_capacity_status", "eligibility_rules", "service_need_categories")


def upgrade() -> None:
    metadata = service_metadata(SCHEMA)
    directory_tables(metadata)
    metadata.create_all(op.get_bind())


def downgrade() -> None:
    for name in (*CASEWORK_TABLES, *(table.name for table in reversed(TABLES))):
        op.drop_table(name, schema=SCHEMA)
