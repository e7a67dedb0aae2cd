"""Export: the directory as it was imported, in either HSDS form.

JSON: every service, fully nested (`service_full`), in id order: what hangs off services.
Data package: every table, one CSV each, with `datapackage.json`: everything, rows in id
order, the same file names and columns the import reads, so an export imports back unchanged.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from typing import Any

import asyncpg

from services.referrals.directory import hsds_read
from services.referrals.directory.hsds_tables import TABLES, FieldType
from services.referrals.directory.schemas import HSDS_VERSION, schema_path

_FRICTIONLESS_TYPES = {
    FieldType.TEXT: "string",
    FieldType.NUMBER: "number",
    FieldType.DATE: "date",
    FieldType.DATETIME: "datetime",
}


async def export_json(connection: asyncpg.Connection) -> list[Any]:
    ids = [row["id"] for row in await connection.fetch("SELECT id FROM service ORDER BY id")]
    return await hsds_read.full(connection, "service", ids)


def _cell(value: Any) -> str:
    converted = hsds_read.json_value(value)
    return "" if converted is None else str(converted)


async def export_package(connection: asyncpg.Connection) -> bytes:
    buffer = io.BytesIO()
    resources = []
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for table in TABLES:
            names = list(table.fields)
            rows = await connection.fetch(
                f"SELECT {', '.join(f'{chr(34)}{n}{chr(34)}' for n in names)} "
                f'FROM "{table.name}" ORDER BY id'
            )
            text = io.StringIO()
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(names)
            for row in rows:
                writer.writerow([_cell(row[name]) for name in names])
            path = schema_path(table.name)
            archive.writestr(path, text.getvalue())
            resources.append(
                {
                    "name": table.name,
                    "path": path,
                    "profile": "tabular-data-resource",
                    "format": "csv",
                    "mediatype": "text/csv",
                    "encoding": "utf-8",
                    "schema": {
                        "fields": [
                            {"name": name, "type": _FRICTIONLESS_TYPES[kind]}
                            for name, kind in table.fields.items()
                        ],
                        "primaryKey": "id",
                    },
                }
            )
        descriptor = {
            "name": "casework-directory",
            "title": f"Casework directory (Open Referral HSDS {HSDS_VERSION})",
            "profile": "tabular-data-package",
            "resources": resources,
        }
        archive.writestr("datapackage.json", json.dumps(descriptor, indent=2))
    return buffer.getvalue()
