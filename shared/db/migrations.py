"""Alembic per service: each service's `migrations/` folder, its version table in its schema.

Migrations run as the service's owner role (SET ROLE), so every object they create is owned by
it and the login role the service runs with gets only the default privileges granted to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from alembic import command, context
from alembic.config import Config
from sqlalchemy import Connection, MetaData
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from shared.db.provisioning import ensure_database, provision_service
from shared.settings import owner_role
from shared.spec import ServiceSpec


def alembic_config(spec: ServiceSpec, admin_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(spec.migrations))
    config.attributes["admin_url"] = admin_url
    config.attributes["service"] = spec.name
    return config


def upgrade(spec: ServiceSpec, admin_url: str, revision: str = "head") -> None:
    """Apply a service's migrations. Synchronous: Alembic drives its own event loop."""
    command.upgrade(alembic_config(spec, admin_url), revision)


async def migrate_services(admin_url: str, specs: Iterable[ServiceSpec], password: str) -> None:
    await ensure_database(admin_url)
    for spec in specs:
        await provision_service(admin_url, service=spec.name, password=password)
        await asyncio.to_thread(upgrade, spec, admin_url)


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+asyncpg://", 1).replace(
        "postgres://", "postgresql+asyncpg://", 1
    )


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's `migrations/env.py`."""
    config = context.config
    service: str = config.attributes["service"]
    admin_url: str = config.attributes["admin_url"]

    def run(connection: Connection) -> None:
        connection.exec_driver_sql(f'SET ROLE "{owner_role(service)}"')
        connection.exec_driver_sql(f'SET search_path = "{service}", extensions')
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=service,
            include_schemas=True,
            include_name=lambda name, kind, _parent: kind != "schema" or name == service,
        )
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(sqlalchemy_url(admin_url), poolclass=NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(run)
            await connection.commit()
        await engine.dispose()

    asyncio.run(run_async())
