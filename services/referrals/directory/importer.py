"""Import of HSDS records: validate each row, keep the good ones, report the rest.

The steps, for rows from either form (`records.py`):
1. The same record met twice in one import (the nested form repeats a phone under its service,
   its location and its contact) becomes one row, its parent ids merged; two different values
   for one field reject the later one.
2. Each row is checked against its table's HSDS schema (`schemas.row_errors`).
3. Each reference (`service.organization_id`, ...) must name a row of this import that was
   accepted, or one already in the directory; a row whose parent was rejected is rejected.
4. Who may write it: the directory operator's administrators write anything; anyone else
   (a partner organisation's staff, another organisation's administrator) writes only the
   records of directory organisations mapped to their own Casework organisation, and may add
   shared records (taxonomies, units) but not change existing ones.
5. The accepted rows are written in one transaction, table by table, as upserts by id that
   leave an unchanged row alone: importing the same data again changes nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg
from pydantic import BaseModel, Field

from services.referrals.directory.hsds_tables import BY_NAME, TABLES, FieldType, HsdsTable
from services.referrals.directory.records import MAX_TEXT, Parsed, Row
from services.referrals.directory.schemas import row_errors

MAX_REPORTED = 1000


class Rejected(BaseModel):
    table: str
    id: str | None
    where: str = Field(description="Where in the upload: a JSON path or a CSV file and line.")
    reasons: list[str]


class TableCounts(BaseModel):
    """Per table: `received` counts every record read (the nested form repeats a record under
    each of its parents: each time counts); the rest count rows."""

    received: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0


class ImportReport(BaseModel):
    tables: dict[str, TableCounts]
    rejected: list[Rejected] = Field(
        description=f"Every rejected row with its reasons (the first {MAX_REPORTED})."
    )
    rejected_total: int
    warnings: list[str]


@dataclass(frozen=True)
class Importer:
    """Who imports: `operator` may write every record; otherwise only the records of directory
    organisations mapped to `casework_organization_id`."""

    casework_organization_id: str
    operator: bool


@dataclass
class _Run:
    counts: dict[str, TableCounts] = field(default_factory=lambda: defaultdict(TableCounts))
    rejected: list[Rejected] = field(default_factory=list)
    accepted: dict[str, dict[str, Row]] = field(default_factory=lambda: defaultdict(dict))

    def reject(self, table: str, record_id: str | None, where: str, reasons: list[str]) -> None:
        self.counts[table].rejected += 1
        self.rejected.append(
            Rejected(
                table=table,
                id=None if record_id is None else printable(record_id),
                where=printable(where),
                reasons=[printable(reason) for reason in reasons],
            )
        )


def _merge(parsed: Parsed, run: _Run) -> list[Row]:
    """One row per (table, id); the first occurrence keeps its place."""
    merged: dict[tuple[str, str], Row] = {}
    rows: list[Row] = []
    for row in parsed.rows:
        run.counts[row.table].received += 1
        if row.id is None:
            rows.append(row)  # the schema check rejects it
            continue
        key = (row.table, row.id)
        first = merged.get(key)
        if first is None:
            merged[key] = row
            rows.append(row)
            continue
        clashes = sorted(
            name
            for name, value in row.values.items()
            if name in first.values and first.values[name] != value
        )
        if clashes:
            run.reject(
                row.table,
                row.id,
                row.where,
                [f"the same id appears earlier ({first.where}) with another {', '.join(clashes)}"],
            )
            continue
        first.values.update(row.values)
    return rows


def _convert(table: HsdsTable, values: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A validated row's values as the database takes them."""
    converted: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in values.items():
        kind = table.fields[name]
        if kind is FieldType.NUMBER:
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(f"{name}: not a finite number")
                continue
            converted[name] = Decimal(str(value))
        elif kind is FieldType.DATE:
            converted[name] = date.fromisoformat(value)
        elif kind is FieldType.DATETIME:
            converted[name] = datetime.fromisoformat(value)
        else:
            if "\x00" in value:
                problems.append(f"{name}: contains a NUL character")
            elif not value.isascii() and not _encodes(value):
                problems.append(f"{name}: not valid Unicode text (a lone surrogate)")
            elif len(value) > MAX_TEXT:
                problems.append(f"{name}: longer than {MAX_TEXT} characters")
            converted[name] = value
    return converted, problems


def printable(text: str) -> str:
    """The text as it can be answered in JSON (lone surrogates and NULs escaped)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")


def _encodes(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


async def _existing_ids(connection: asyncpg.Connection, table: str, ids: set[str]) -> set[str]:
    if not ids:
        return set()
    rows = await connection.fetch(f'SELECT id FROM "{table}" WHERE id = ANY($1::text[])', list(ids))
    return {row["id"] for row in rows}


class _Owners:
    """Which Casework organisation owns a record: through its references up to its directory
    organisation. `None`: nobody's (outside the network, or shared like a taxonomy)."""

    SHARED = "\x00shared"

    def __init__(self, connection: asyncpg.Connection, run: _Run) -> None:
        self.connection = connection
        self.run = run
        self.stored: dict[tuple[str, str], str | None] = {}

    async def of_row(self, table: str, values: dict[str, Any]) -> str | None:
        if table == "organization":
            return await self.of_stored("organization", values["id"])
        if table == "attribute":
            return await self._of_link(values.get("link_entity"), values.get("link_id"))
        if table == "metadata":
            return await self._of_link(values.get("resource_type"), values.get("resource_id"))
        references = BY_NAME[table].references
        for name in ("organization_id", "service_id", "location_id", "service_at_location_id",
                     "contact_id", "phone_id"):  # fmt: skip
            if name in references and values.get(name) is not None:
                return await self.of(references[name].table, values[name])
        return self.SHARED

    async def _of_link(self, entity: Any, link_id: Any) -> str | None:
        if isinstance(entity, str) and entity in BY_NAME and isinstance(link_id, str):
            return await self.of(entity, link_id)
        return self.SHARED

    async def of(self, table: str, record_id: str) -> str | None:
        row = self.run.accepted[table].get(record_id)
        if row is not None and table != "organization":
            return await self.of_row(table, row.values)
        return await self.of_stored(table, record_id)

    async def of_stored(self, table: str, record_id: str) -> str | None:
        key = (table, record_id)
        if key not in self.stored:
            self.stored[key] = await self._stored(table, record_id)
        return self.stored[key]

    async def _stored(self, table: str, record_id: str) -> str | None:
        if table == "organization":
            value: str | None = await self.connection.fetchval(
                "SELECT coalesce(casework_organization_id, '') FROM organization WHERE id = $1",
                record_id,
            )
            return None if value is None else (value or None)
        spec = BY_NAME[table]
        columns = [name for name in spec.references] + (
            ["link_entity", "link_id"] if table == "attribute" else []
        ) + (["resource_type", "resource_id"] if table == "metadata" else [])  # fmt: skip
        if not columns:
            return self.SHARED
        stored = await self.connection.fetchrow(
            f'SELECT {", ".join(columns)} FROM "{table}" WHERE id = $1', record_id
        )
        if stored is None:
            return self.SHARED
        return await self.of_row(table, dict(stored))


async def run_import(
    connection: asyncpg.Connection, parsed: Parsed, importer: Importer
) -> ImportReport:
    """Validate, check and write `parsed` on `connection` (inside the caller's transaction)."""
    run = _Run()
    for table, record_id, where, reason in parsed.unreadable:
        run.counts[table].received += 1
        run.reject(table, record_id, where, [reason])
    rows = _merge(parsed, run)
    by_table: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_table[row.table].append(row)
    owners = _Owners(connection, run)
    new_organizations: set[str] = set()
    for spec in TABLES:
        candidates: list[tuple[Row, dict[str, Any]]] = []
        for row in by_table.get(spec.name, []):
            errors = row_errors(spec.name, row.values)
            if errors:
                run.reject(spec.name, row.id, row.where, errors)
                continue
            converted, problems = _convert(spec, row.values)
            if problems:
                run.reject(spec.name, row.id, row.where, problems)
                continue
            candidates.append((row, converted))
        await _check_references(connection, spec, candidates, run)
        if spec.name == "organization":
            existing = await _existing_ids(
                connection, "organization", {row.values["id"] for row, _ in candidates}
            )
            new_organizations = {row.values["id"] for row, _ in candidates} - existing
        if not importer.operator:
            candidates = await _owned(connection, spec, candidates, importer, owners, run,
                                      new_organizations)  # fmt: skip
        accepted: list[dict[str, Any]] = []
        for row, converted in candidates:
            run.accepted[spec.name][row.values["id"]] = row
            accepted.append(converted)
        if accepted:
            await _upsert(connection, spec, accepted, run, importer, new_organizations)
    return ImportReport(
        tables={name: counts for name, counts in sorted(run.counts.items())},
        rejected=run.rejected[:MAX_REPORTED],
        rejected_total=len(run.rejected),
        warnings=sorted(printable(warning) for warning in parsed.warnings),
    )


async def _check_references(
    connection: asyncpg.Connection,
    spec: HsdsTable,
    candidates: list[tuple[Row, dict[str, Any]]],
    run: _Run,
) -> None:
    wanted: dict[str, set[str]] = defaultdict(set)
    for row, _ in candidates:
        for name, reference in spec.references.items():
            value = row.values.get(name)
            if value is not None and value not in run.accepted[reference.table]:
                wanted[reference.table].add(value)
    stored = {table: await _existing_ids(connection, table, ids) for table, ids in wanted.items()}
    kept: list[tuple[Row, dict[str, Any]]] = []
    for row, converted in candidates:
        reasons = []
        for name, reference in spec.references.items():
            value = row.values.get(name)
            if value is None:
                if reference.required:
                    reasons.append(f"{name}: required (the {reference.table} it belongs to)")
                continue
            if value in run.accepted[reference.table] or value in stored.get(reference.table, ()):
                continue
            reasons.append(f"{name}: no {reference.table} {value} in this import or the directory")
        if reasons:
            run.reject(spec.name, row.id, row.where, reasons)
        else:
            kept.append((row, converted))
    candidates[:] = kept


async def _owned(
    connection: asyncpg.Connection,
    spec: HsdsTable,
    candidates: list[tuple[Row, dict[str, Any]]],
    importer: Importer,
    owners: _Owners,
    run: _Run,
    new_organizations: set[str],
) -> list[tuple[Row, dict[str, Any]]]:
    mine = importer.casework_organization_id
    kept = []
    for row, converted in candidates:
        record_id = row.values["id"]
        if spec.name == "organization":
            allowed = (
                record_id in new_organizations
                or await owners.of_stored("organization", record_id) == mine
            )
        else:
            owner = await owners.of_row(spec.name, row.values)
            stored = await _existing_ids(connection, spec.name, {record_id})
            before = await owners.of_stored(spec.name, record_id) if stored else mine
            if owner == _Owners.SHARED:
                allowed = not stored  # a new shared record: fine; changing one: the operator's
            else:
                allowed = owner == mine and before in (mine, _Owners.SHARED)
        if allowed:
            kept.append((row, converted))
        else:
            run.reject(
                spec.name,
                record_id,
                row.where,
                ["not a record of your organisation's: only the directory operator's "
                 "administrators change it"],
            )  # fmt: skip
    return kept


_CASTS = {
    FieldType.TEXT: "text",
    FieldType.NUMBER: "numeric",
    FieldType.DATE: "date",
    FieldType.DATETIME: "timestamptz",
}


async def _upsert(
    connection: asyncpg.Connection,
    spec: HsdsTable,
    rows: list[dict[str, Any]],
    run: _Run,
    importer: Importer,
    new_organizations: set[str],
) -> None:
    """Insert new rows, update changed ones, leave the same ones alone; count each."""
    names = list(spec.fields)
    columns = ", ".join(f'"{name}"' for name in names)
    arrays = [[row.get(name) for row in rows] for name in names]
    unnest = ", ".join(
        f"${index}::{_CASTS[spec.fields[name]]}[]" for index, name in enumerate(names, start=1)
    )
    extra_column, extra_value = "", ""
    if spec.name == "organization" and not importer.operator:
        # A partner's new directory organisation is its own; existing ones keep their mapping.
        arrays.append(
            [importer.casework_organization_id if row["id"] in new_organizations else None
             for row in rows]
        )  # fmt: skip
        extra_column = ", casework_organization_id"
        extra_value = f", ${len(names) + 1}::text[]"
    changed = ", ".join(f'"{name}" = EXCLUDED."{name}"' for name in names if name != "id")
    current = ", ".join(f't."{name}"' for name in names if name != "id")
    incoming = ", ".join(f'EXCLUDED."{name}"' for name in names if name != "id")
    statement = f"""
        INSERT INTO "{spec.name}" AS t ({columns}{extra_column})
        SELECT * FROM unnest({unnest}{extra_value})
        ON CONFLICT (id) DO UPDATE SET {changed}, changed_at = now()
        WHERE ({current}) IS DISTINCT FROM ({incoming})
        RETURNING (xmax = 0) AS inserted
    """
    written = await connection.fetch(statement, *arrays)
    inserted = sum(1 for row in written if row["inserted"])
    counts = run.counts[spec.name]
    counts.inserted += inserted
    counts.updated += len(written) - inserted
    counts.unchanged += len(rows) - len(written)
