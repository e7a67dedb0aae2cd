"""The directory read back as HSDS 3.1 objects: nested (`service_full`, `organization_full`,
`service_at_location_full`) or one-to-one (`service_list`, ...), for the HSDS API and export.

Rows are fetched table by table for all the objects at once (a query per table and relation,
never per object), then nested by the same relations the import flattens (`records.py`).
Values go out in their JSON types: numbers as numbers, dates as `YYYY-MM-DD`, date-times in
UTC with a `Z`; empty fields are left out. A directory organisation nested in a service carries
its own small lists but not its locations (those of the service are under its
`service_at_locations`) nor its services, so a service's answer stays the size of the service.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from services.referrals.directory.hsds_tables import BY_NAME
from services.referrals.directory.records import ARRAYS, OBJECTS

CASEWORK_COLUMNS = {"changed_at", "casework_organization_id", "referral_acceptance_days"}
# Lists a directory organisation nested in a service leaves out (see the module's note).
_ORGANIZATION_IN_SERVICE_SKIPS = {"locations", "services"}


def json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        text = value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
        return text + "Z"
    if isinstance(value, date):
        return value.isoformat()
    return value


def plain(table: str, row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    """A row's HSDS fields, as JSON values, without empty ones."""
    fields = BY_NAME[table].fields
    return {name: json_value(row[name]) for name in fields if row[name] is not None}


class Graph:
    """Rows fetched so far, by table and id, and who asked for which relation."""

    def __init__(self, connection: asyncpg.Connection) -> None:
        self.connection = connection
        self.rows: dict[str, dict[str, asyncpg.Record]] = defaultdict(dict)
        self.children: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.asked: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.links: dict[tuple[str, str], dict[str, list[str]]] = defaultdict(
            lambda: defaultdict(list)
        )

    async def load(self, table: str, ids: set[str]) -> None:
        missing = ids - set(self.rows[table])
        if missing:
            fetched = await self.connection.fetch(
                f'SELECT * FROM "{table}" WHERE id = ANY($1::text[])', list(missing)
            )
            await self._keep(table, fetched)

    async def load_children(self, child: str, field: str, parents: set[str]) -> None:
        missing = parents - self.asked[(child, field)]
        if not missing:
            return
        self.asked[(child, field)] |= missing
        fetched = await self.connection.fetch(
            f'SELECT * FROM "{child}" WHERE "{field}" = ANY($1::text[]) ORDER BY id',
            list(missing),
        )
        await self._keep(child, fetched)

    async def _keep(self, table: str, fetched: list[asyncpg.Record]) -> None:
        new = [row for row in fetched if row["id"] not in self.rows[table]]
        for row in fetched:
            self.rows[table][row["id"]] = row
        for row in new:
            for field in BY_NAME[table].references:
                if row[field] is not None:
                    self.children[(table, field)][row[field]].append(row["id"])
        if new:
            await self.expand(table, {row["id"] for row in new})

    async def expand(self, table: str, ids: set[str]) -> None:
        """Fetch everything that nests under these rows."""
        for key, (child, field) in ARRAYS.get(table, {}).items():
            if table == "organization" and key in _ORGANIZATION_IN_SERVICE_SKIPS:
                continue
            await self.load_children(child, field, ids)
        for child, field in OBJECTS.get(table, {}).values():
            targets = {self.rows[table][i][field] for i in ids} - {None}
            await self.load(child, targets)
        if table not in ("attribute", "metadata", "taxonomy_term", "taxonomy"):
            await self._load_links("attribute", "link_id", "link_entity", table, ids)
        if table != "metadata":
            await self._load_links("metadata", "resource_id", "resource_type", table, ids)

    async def _load_links(
        self, child: str, field: str, entity_field: str, table: str, ids: set[str]
    ) -> None:
        """Attributes (or metadata) of these rows of `table`."""
        key = (child, f"{entity_field}:{table}")
        missing = ids - self.asked[key]
        if not missing:
            return
        self.asked[key] |= missing
        # By id alone: HSDS ids are unique across tables, and `link_entity` / `resource_type`
        # are free text that publishers fill in loosely (the specification's own example
        # says "link_entity").
        fetched = await self.connection.fetch(
            f'SELECT * FROM "{child}" WHERE "{field}" = ANY($1::text[]) ORDER BY id',
            list(missing),
        )
        for row in fetched:
            self.links[key][row[field]].append(row["id"])
        await self._keep(child, fetched)

    def render(self, table: str, record_id: str, parent: tuple[str, str] | None = None) -> Any:
        """The nested object; `parent` (table, field) is the relation it hangs from, left out
        of it so nothing nests back up."""
        row = self.rows[table][record_id]
        document = plain(table, row)
        for key, (child, field) in ARRAYS.get(table, {}).items():
            if parent is not None and child == parent[0]:
                continue
            if (
                table == "organization"
                and parent is not None
                and key in (_ORGANIZATION_IN_SERVICE_SKIPS)
            ):
                continue
            ids = self.children[(child, field)].get(record_id, [])
            if ids:
                document[key] = [self.render(child, i, (table, field)) for i in ids]
        for key, (child, field) in OBJECTS.get(table, {}).items():
            if parent is not None and (parent[0], parent[1]) == (child, field):
                continue
            target = row[field]
            if target is not None and target in self.rows[child]:
                document[key] = self.render(child, target, (table, field))
        for key, child, entity_field in (
            ("attributes", "attribute", "link_entity"),
            ("metadata", "metadata", "resource_type"),
        ):
            ids = self.links[(child, f"{entity_field}:{table}")].get(record_id, [])
            if ids:
                document[key] = [self.render(child, i, (table, "id")) for i in ids]
        return document


async def full(connection: asyncpg.Connection, table: str, ids: list[str]) -> list[Any]:
    """The nested objects of `table` with these ids, in this order (missing ones skipped)."""
    graph = Graph(connection)
    await graph.load(table, set(ids))
    if table == "organization":
        await graph.load_children("service", "organization_id", set(ids))
        await graph.load_children("location", "organization_id", set(ids))
    return [graph.render(table, record_id) for record_id in ids if record_id in graph.rows[table]]
