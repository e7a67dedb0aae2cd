"""The directory's version: one number moved by every statement that writes what matching keeps
in memory, so that each process reloads it when (and only when) the directory changed.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "referrals"
TABLES = (
    "organization",
    "service",
    "service_need_categories",
    "eligibility_rules",
    "language",
    "service_area",
    "schedule",
)


def upgrade() -> None:
    op.execute(
        f"CREATE TABLE {SCHEMA}.directory_version ("
        "id integer NOT NULL, version bigint NOT NULL, "
        "CONSTRAINT pk_directory_version PRIMARY KEY (id), "
        "CONSTRAINT ck_directory_version_one_row CHECK (id = 1))"
    )
    op.execute(f"INSERT INTO {SCHEMA}.directory_version (id, version) VALUES (1, 1)")
    op.execute(
        f"CREATE FUNCTION {SCHEMA}.directory_changed() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN UPDATE {SCHEMA}.directory_version SET version = version + 1 WHERE id = 1; "
        "RETURN NULL; END $$"
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER directory_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            f"ON {SCHEMA}.{table} FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.directory_changed()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER directory_changed ON {SCHEMA}.{table}")
    op.execute(f"DROP FUNCTION {SCHEMA}.directory_changed()")
    op.execute(f"DROP TABLE {SCHEMA}.directory_version")
