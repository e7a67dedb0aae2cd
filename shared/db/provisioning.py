"""Creates the database, each service's schema and its two roles, before migrations run.

Per service: `<service>_owner` (no login) owns the schema and every table; migrations run as
it. `<service>_svc` (login) is what the service connects as: data access on its own schema,
nothing on any other, no DDL. Later migrations can withhold UPDATE/DELETE on a table (audit).
"""

from __future__ import annotations

import asyncpg

from shared.settings import database_name, owner_role, service_role, with_database

EXTENSIONS = "extensions"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def ensure_database(admin_url: str) -> None:
    name = database_name(admin_url)
    connection = await asyncpg.connect(with_database(admin_url, "postgres"))
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f"CREATE DATABASE {_ident(name)}")
    finally:
        await connection.close()


async def provision_service(admin_url: str, *, service: str, password: str) -> None:
    owner, login = owner_role(service), service_role(service)
    database = database_name(admin_url)
    connection = await asyncpg.connect(admin_url)
    try:
        # Role creation races between parallel migrators; one lock per database serialises them.
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(hashtext('casework-provision'))")
            for role, can_login in ((owner, False), (login, True)):
                exists = await connection.fetchval(
                    "SELECT 1 FROM pg_roles WHERE rolname = $1", role
                )
                verb = "ALTER" if exists else "CREATE"
                options = "LOGIN" if can_login else "NOLOGIN"
                await connection.execute(f"{verb} ROLE {_ident(role)} {options}")
            # Identifiers cannot be bound as parameters, and neither can a password in ALTER ROLE.
            quoted_password = password.replace("'", "''")
            await connection.execute(f"ALTER ROLE {_ident(login)} PASSWORD '{quoted_password}'")
            await connection.execute(f"GRANT {_ident(owner)} TO CURRENT_USER")
            await connection.execute(f"REVOKE ALL ON DATABASE {_ident(database)} FROM PUBLIC")
            await connection.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            await connection.execute(
                f"GRANT CONNECT, TEMPORARY ON DATABASE {_ident(database)} TO {_ident(login)}"
            )
            await connection.execute(
                f"CREATE SCHEMA IF NOT EXISTS {_ident(service)} AUTHORIZATION {_ident(owner)}"
            )
            await connection.execute(f"REVOKE ALL ON SCHEMA {_ident(service)} FROM PUBLIC")
            await connection.execute(f"GRANT USAGE ON SCHEMA {_ident(service)} TO {_ident(login)}")
            # Shared extensions (trigram similarity, phonetic codes) live in their own schema,
            # usable by every service, owned by none.
            await connection.execute(f"CREATE SCHEMA IF NOT EXISTS {EXTENSIONS}")
            for extension in ("pg_trgm", "fuzzystrmatch", "btree_gin"):
                await connection.execute(
                    f"CREATE EXTENSION IF NOT EXISTS {extension} WITH SCHEMA {EXTENSIONS}"
                )
            await connection.execute(
                f"GRANT USAGE ON SCHEMA {EXTENSIONS} TO {_ident(login)}, {_ident(owner)}"
            )
            await connection.execute(
                f"ALTER ROLE {_ident(login)} IN DATABASE {_ident(database)} "
                f"SET search_path = {_ident(service)}, {EXTENSIONS}"
            )
            for grant in (
                "SELECT, INSERT, UPDATE, DELETE ON TABLES",
                "USAGE, SELECT ON SEQUENCES",
                "EXECUTE ON FUNCTIONS",
            ):
                await connection.execute(
                    f"ALTER DEFAULT PRIVILEGES FOR ROLE {_ident(owner)} IN SCHEMA "
                    f"{_ident(service)} GRANT {grant} TO {_ident(login)}"
                )
    finally:
        await connection.close()
