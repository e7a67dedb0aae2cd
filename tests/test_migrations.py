"""Each service's migrations produce exactly the tables its code declares: no drift."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import create_async_engine

from services.registry import SERVICES
from shared.db.migrations import sqlalchemy_url
from shared.settings import Settings

pytestmark = pytest.mark.asyncio


def service_metadata(service: str) -> MetaData:
    importlib.import_module(f"services.{service}.main")  # imports (registers) every table
    metadata: MetaData = importlib.import_module(f"services.{service}.tables").metadata
    return metadata


@pytest.mark.parametrize("service", list(SERVICES))
async def test_migrations_match_the_declared_tables(settings: Settings, service: str) -> None:
    metadata = service_metadata(service)

    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": lambda name, kind, _parent: kind != "schema" or name == service,
                "version_table_schema": service,
                "compare_type": True,
                "compare_server_default": True,
            },
        )
        return list(compare_metadata(context, metadata))

    engine = create_async_engine(sqlalchemy_url(settings.database_url))
    try:
        async with engine.connect() as connection:
            found = await connection.run_sync(differences)
    finally:
        await engine.dispose()
    assert found == []
