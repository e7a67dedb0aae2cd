"""HSDS records in, as rows: the nested JSON form flattened, and the tabular data package read.

Both forms become the same thing, a list of `Row`s (one table's record, its own fields only,
its parent ids filled in from the nesting) that the import validates and writes. Where a row
came from (`where`) goes into the import report.
"""

from __future__ import annotations

import csv
import io
import json
import math
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from services.referrals.directory.hsds_tables import BY_NAME, TABLES, FieldType
from services.referrals.directory.schemas import schema_path

# Nested arrays: parent table -> key -> (child table, the child's field naming the parent).
ARRAYS: dict[str, dict[str, tuple[str, str]]] = {
    "organization": {
        "additional_websites": ("url", "organization_id"),
        "funding": ("funding", "organization_id"),
        "contacts": ("contact", "organization_id"),
        "phones": ("phone", "organization_id"),
        "locations": ("location", "organization_id"),
        "programs": ("program", "organization_id"),
        "organization_identifiers": ("organization_identifier", "organization_id"),
        "services": ("service", "organization_id"),
    },
    "service": {
        "additional_urls": ("url", "service_id"),
        "phones": ("phone", "service_id"),
        "schedules": ("schedule", "service_id"),
        "service_areas": ("service_area", "service_id"),
        "service_at_locations": ("service_at_location", "service_id"),
        "languages": ("language", "service_id"),
        "funding": ("funding", "service_id"),
        "cost_options": ("cost_option", "service_id"),
        "required_documents": ("required_document", "service_id"),
        "contacts": ("contact", "service_id"),
        "capacities": ("service_capacity", "service_id"),
    },
    "service_at_location": {
        "service_areas": ("service_area", "service_at_location_id"),
        "contacts": ("contact", "service_at_location_id"),
        "phones": ("phone", "service_at_location_id"),
        "schedules": ("schedule", "service_at_location_id"),
    },
    "location": {
        "languages": ("language", "location_id"),
        "addresses": ("address", "location_id"),
        "contacts": ("contact", "location_id"),
        "accessibility": ("accessibility", "location_id"),
        "phones": ("phone", "location_id"),
        "schedules": ("schedule", "location_id"),
    },
    "phone": {"languages": ("language", "phone_id")},
    "contact": {"phones": ("phone", "contact_id")},
}
# Nested single objects: parent table -> key -> (child table, the parent's field naming it).
OBJECTS: dict[str, dict[str, tuple[str, str]]] = {
    "service": {
        "organization": ("organization", "organization_id"),
        "program": ("program", "program_id"),
    },
    "service_at_location": {
        "location": ("location", "location_id"),
        "service": ("service", "service_id"),
    },
    "service_capacity": {"unit": ("unit", "unit_id")},
    "attribute": {"taxonomy_term": ("taxonomy_term", "taxonomy_term_id")},
    "taxonomy_term": {"taxonomy_detail": ("taxonomy", "taxonomy_id")},
}
MAX_DEPTH = 12
MAX_TEXT = 20_000


class PackageError(ValueError):
    """The upload as a whole cannot be read (encoding, CSV syntax, archive): nothing is written."""


@dataclass
class Row:
    table: str
    values: dict[str, Any]
    where: str

    @property
    def id(self) -> str | None:
        value = self.values.get("id")
        return value if isinstance(value, str) else None


@dataclass
class Parsed:
    rows: list[Row] = field(default_factory=list)
    # Records that could not even become rows (not an object, nesting too deep, ...).
    unreadable: list[tuple[str, str | None, str, str]] = field(default_factory=list)
    warnings: set[str] = field(default_factory=set)

    def refuse(self, table: str, record: Any, where: str, reason: str) -> None:
        record_id = record.get("id") if isinstance(record, dict) else None
        self.unreadable.append(
            (table, record_id if isinstance(record_id, str) else None, where, reason)
        )


def _scalar_fields(table: str, record: Mapping[str, Any], parsed: Parsed) -> dict[str, Any]:
    fields = BY_NAME[table].fields
    nested = {*ARRAYS.get(table, {}), *OBJECTS.get(table, {}), "attributes", "metadata"}
    values: dict[str, Any] = {}
    for key, value in record.items():
        if key in fields:
            if value is not None:
                values[key] = value
        elif key not in nested:
            parsed.warnings.add(f"{table}.{key}: not an HSDS 3.1 field, ignored")
    return values


def flatten(table: str, record: Any, where: str, parsed: Parsed, depth: int = 0) -> Row | None:
    """`record` (a nested HSDS object of `table`) and everything nested in it, as rows."""
    if not isinstance(record, dict):
        parsed.refuse(table, record, where, "expected an object")
        return None
    if depth > MAX_DEPTH:
        parsed.refuse(table, record, where, f"nested more than {MAX_DEPTH} levels deep")
        return None
    row = Row(table, _scalar_fields(table, record, parsed), where)
    for key, (child_table, parent_field) in OBJECTS.get(table, {}).items():
        child = record.get(key)
        if child is None:
            continue
        child_row = flatten(child_table, child, f"{where}.{key}", parsed, depth + 1)
        if child_row is None or child_row.id is None:
            continue
        row.values.setdefault(parent_field, child_row.id)
        if (table, key) == ("service", "program") and "organization_id" in row.values:
            child_row.values.setdefault("organization_id", row.values["organization_id"])
    parsed.rows.append(row)
    links: dict[str, tuple[str, str]] = dict(ARRAYS.get(table, {}))
    if table != "metadata":
        links["metadata"] = ("metadata", "resource_id")
    if table not in ("attribute", "metadata", "taxonomy_term", "taxonomy"):
        links["attributes"] = ("attribute", "link_id")
    for key, (child_table, parent_field) in links.items():
        children = record.get(key)
        if children is None:
            continue
        if not isinstance(children, list):
            parsed.refuse(child_table, children, f"{where}.{key}", "expected an array")
            continue
        for index, child in enumerate(children):
            child_where = f"{where}.{key}[{index}]"
            if not isinstance(child, dict):
                parsed.refuse(child_table, child, child_where, "expected an object")
                continue
            child = dict(child)
            if row.id is not None:
                child.setdefault(parent_field, row.id)
                if child_table == "attribute":
                    child.setdefault("link_entity", table)
                if child_table == "metadata":
                    child.setdefault("resource_type", table)
            flatten(child_table, child, child_where, parsed, depth + 1)
    return row


def parse_json(body: bytes) -> Parsed:
    """The JSON form: a list of services (`service_full`), or an object with `services` and/or
    `organizations` (`organization_full`) lists, or one service or organization."""
    document = _load_json(body)
    parsed = Parsed()
    if isinstance(document, list):
        groups: dict[str, Any] = {"services": document}
    elif isinstance(document, dict) and ({"services", "organizations"} & set(document)):
        groups = {key: document.get(key) for key in ("organizations", "services")}
    elif isinstance(document, dict):
        groups = {"services" if "status" in document else "organizations": [document]}
    else:
        raise PackageError("the JSON form is a list of services or an object of lists")
    for key, table in (("organizations", "organization"), ("services", "service")):
        records = groups.get(key)
        if records is None:
            continue
        if not isinstance(records, list):
            raise PackageError(f"`{key}` must be a list")
        for index, record in enumerate(records):
            flatten(table, record, f"{key}[{index}]", parsed)
    return parsed


def _reject_constant(name: str) -> None:
    raise PackageError(f"{name} is not a JSON number")


def _load_json(body: bytes) -> Any:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise PackageError(f"the body is not UTF-8 (byte {error.start})") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise PackageError(f"not JSON: {error.msg} (line {error.lineno})") from None
    except RecursionError:
        raise PackageError("the JSON is nested too deeply") from None


# --- The tabular data package -----------------------------------------------------------------

MAX_FILES = 64


def _decode(name: str, content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = content[: error.start].count(b"\n") + 1
        raise PackageError(
            f"{name} is not UTF-8 (line {line}, byte {error.start}); save it as UTF-8 and "
            "import again"
        ) from None


def files_from_zip(content: bytes) -> dict[str, bytes]:
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except zipfile.BadZipFile:
        raise PackageError("the upload is not a zip archive") from None
    files: dict[str, bytes] = {}
    with archive:
        entries = [info for info in archive.infolist() if not info.is_dir()]
        if len(entries) > MAX_FILES:
            raise PackageError(f"the archive holds more than {MAX_FILES} files")
        total = 0
        for info in entries:
            total += info.file_size
            if total > 256 * 1024 * 1024:
                raise PackageError("the archive unpacks to more than 256 MiB")
            name = info.filename.rsplit("/", 1)[-1]
            try:
                files[name] = archive.read(info)
            except (zipfile.BadZipFile, ValueError, NotImplementedError) as error:
                raise PackageError(f"{info.filename} cannot be read: {error}") from None
    return files


def _resource_paths(files: Mapping[str, bytes], parsed: Parsed) -> dict[str, str]:
    """Table name -> file name: the package descriptor's resources where it names them, else
    the specification's file names."""
    paths = {table.name: schema_path(table.name) for table in TABLES}
    descriptor = files.get("datapackage.json")
    if descriptor is None:
        parsed.warnings.add("no datapackage.json: files are read by the specification's names")
        return paths
    package = _load_json(descriptor)
    resources = package.get("resources") if isinstance(package, dict) else None
    if not isinstance(resources, list):
        raise PackageError("datapackage.json has no `resources` list")
    for resource in resources:
        if not isinstance(resource, dict):
            continue
        name, path = resource.get("name"), resource.get("path")
        if isinstance(name, str) and isinstance(path, str) and name in paths:
            paths[name] = path.rsplit("/", 1)[-1]
    return paths


def _csv_value(kind: FieldType, text: str) -> Any:
    if kind is not FieldType.NUMBER:
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text  # the schema check says it is not a number
    return number if math.isfinite(number) else text


def parse_package(files: Mapping[str, bytes]) -> Parsed:
    """The tabular form: one CSV per table (header row of field names), `datapackage.json`."""
    parsed = Parsed()
    paths = _resource_paths(files, parsed)
    known = set(paths.values()) | {"datapackage.json"}
    for name in sorted(set(files) - known):
        parsed.warnings.add(f"{name}: not a table of HSDS 3.1, ignored")
    for table in TABLES:
        path = paths[table.name]
        if path not in files:
            continue
        text = _decode(path, files[path])
        for row in _csv_rows(table.name, path, text, parsed):
            parsed.rows.append(row)
    return parsed


def _csv_rows(table: str, path: str, text: str, parsed: Parsed) -> Iterator[Row]:
    fields = BY_NAME[table].fields
    if "\x00" in text:
        raise PackageError(f"{path} contains NUL bytes: it is not a CSV file")
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader, None)
        if header is None:
            return
        header = [name.strip() for name in header]
        for name in header:
            if name and name not in fields:
                parsed.warnings.add(f"{path}: column {name} is not an HSDS 3.1 field, ignored")
        for cells in reader:
            where = f"{path} line {reader.line_num}"
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                record_id = (
                    cells[header.index("id")]
                    if "id" in header and len(cells) > header.index("id")
                    else None
                )
                parsed.unreadable.append(
                    (table, record_id or None, where,
                     f"{len(cells)} cells where the header has {len(header)}")
                )  # fmt: skip
                continue
            values = {
                name: _csv_value(fields[name], cell)
                for name, cell in zip(header, cells, strict=True)
                if name in fields and cell != ""
            }
            yield Row(table, values, where)
    except csv.Error as error:
        raise PackageError(f"{path} is not valid CSV (line {reader.line_num}): {error}") from None
