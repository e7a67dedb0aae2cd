"""Each service's table metadata: its own schema and one naming convention for constraints."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, MetaData, Table

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def service_metadata(schema: str) -> MetaData:
    return MetaData(schema=schema, naming_convention=NAMING_CONVENTION)


def create_tables(
    connection: Connection, schema: str, *factories: Callable[[MetaData], Table]
) -> None:
    """Create tables defined by shared factories; for use inside a migration."""
    metadata = service_metadata(schema)
    for factory in factories:
        factory(metadata)
    metadata.create_all(connection)
