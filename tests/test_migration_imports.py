"""Migrations build the schema as it was at their revision, forever: they never import the
live application code, whose tables change after them (a migration built from a live model
creates a later shape on a fresh database, and the migration that later adds a column breaks).

A migration may import the standard library, alembic, sqlalchemy and `shared.db`; from the rest
of `shared/` only frozen, versioned helpers (`..._v1`, `..._v2`: their behaviour never changes
once a migration calls them).
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
MIGRATIONS = sorted(ROOT.glob("services/*/migrations/versions/*.py"))
VERSIONED = re.compile(r"_v\d+$")
THIRD_PARTY = {"alembic", "sqlalchemy"}
# Live table factories of shared/ that the first migrations of every service still build from;
# listed so that no new one joins them. (Freezing them is work of its own: client_refs' later
# columns are added conditionally by add_client_ref_links_v2.)
KNOWN_LIVE = {
    ("shared.auth.facts", "client_access_table"),
    ("shared.client_refs", "client_refs_table"),
}


def forbidden_imports(path: Path) -> list[str]:
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        modules: list[tuple[str, str | None]]
        if isinstance(node, ast.Import):
            modules = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level or node.module is None:
                found.append(f"line {node.lineno}: relative import")
                continue
            modules = [(node.module, alias.name) for alias in node.names]
        else:
            continue
        for module, name in modules:
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in THIRD_PARTY:
                continue
            if module == "shared.db" or module.startswith("shared.db."):
                continue
            if (
                top == "shared"
                and name is not None
                and (VERSIONED.search(name) or (module, name) in KNOWN_LIVE)
            ):
                continue
            shown = f"{module}.{name}" if name else module
            found.append(f"line {node.lineno}: {shown}")
    return found


def test_there_are_migrations_to_check() -> None:
    assert len(MIGRATIONS) > 40


@pytest.mark.parametrize("path", MIGRATIONS, ids=lambda path: str(path.relative_to(ROOT)))
def test_migration_imports_no_live_code(path: Path) -> None:
    assert forbidden_imports(path) == []


def test_the_check_catches_an_import_of_a_live_model(tmp_path: Path) -> None:
    migration = tmp_path / "0099_example.py"
    migration.write_text(
        "import sqlalchemy as sa\n"
        "from alembic import op\n"
        "from services.referrals.directory.tables import directory_tables\n"
        "import services.intake.clients.models\n"
        "from shared.db.metadata import create_tables\n"
        "from shared.timers import create_timers_v1\n"
        "from shared.auth.facts import load_facts\n"
    )
    assert forbidden_imports(migration) == [
        "line 3: services.referrals.directory.tables.directory_tables",
        "line 4: services.intake.clients.models",
        "line 7: shared.auth.facts.load_facts",
    ]
