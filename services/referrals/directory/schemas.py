"""The HSDS 3.1 JSON schemas (`hsds_schema/`, see its NOTICE.md) as validators.

Two uses: an imported record is checked against its table's schema in the tabular form (its
own fields only, `tabular_required` added to `required`), and the HSDS API's answers are checked
against the nested form in tests. Formats are checked by the functions below, not by optional
packages, so what passes does not depend on what happens to be installed.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).parent / "hsds_schema"
HSDS_VERSION = "3.1"

FORMATS = FormatChecker(formats=())


@FORMATS.checks("uuid")  # type: ignore[untyped-decorator]
def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        return str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


@FORMATS.checks("date")  # type: ignore[untyped-decorator]
def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return len(value) == 10


@FORMATS.checks("date-time")  # type: ignore[untyped-decorator]
def _is_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False
    return "T" in value.upper() and parsed.tzinfo is not None


@FORMATS.checks("email")  # type: ignore[untyped-decorator]
def _is_email(value: object) -> bool:
    if not isinstance(value, str):
        return True
    local, at, domain = value.rpartition("@")
    return bool(at and local and domain) and not any(c.isspace() for c in value)


@FORMATS.checks("uri")  # type: ignore[untyped-decorator]
def _is_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(parts.scheme) and not any(c.isspace() for c in value)


def _document(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.json").read_text("utf-8"))
    return loaded


@cache
def _registry() -> Registry:
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.json")):
        document = json.loads(path.read_text("utf-8"))
        resources.append((document["$id"], Resource.from_contents(document)))
    return Registry().with_resources(resources)


@cache
def nested_validator(name: str) -> Draft202012Validator:
    """The object `name` in the nested JSON form, children included (HSDS API answers)."""
    return Draft202012Validator(_document(name), registry=_registry(), format_checker=FORMATS)


@cache
def tabular_schema(name: str) -> dict[str, Any]:
    """One row of the table `name`: its own fields (no nested objects), the fields its parent
    ids must fill in (`tabular_required`) required beside the rest."""
    document = _document(name)
    nested = {
        field
        for field, spec in document["properties"].items()
        if spec.get("type") == "array" or "$ref" in spec
    }
    return {
        "$schema": document["$schema"],
        "type": "object",
        "properties": {
            field: spec for field, spec in document["properties"].items() if field not in nested
        },
        "required": [
            field
            for field in (*document["required"], *document.get("tabular_required", ()))
            if field not in nested
        ],
    }


@cache
def tabular_validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(tabular_schema(name), format_checker=FORMATS)


@cache
def schema_path(name: str) -> str:
    """The table's file in the tabular data package."""
    path: str = _document(name)["path"]
    return path


def row_errors(name: str, row: dict[str, Any]) -> list[str]:
    """Why a row of table `name` is not valid HSDS; empty when it is."""
    errors = sorted(tabular_validator(name).iter_errors(row), key=lambda e: list(e.path))
    return [_describe(error.path, error.message) for error in errors]


def document_errors(name: str, document: Any) -> list[str]:
    """Why a nested object is not a valid HSDS `name`; empty when it is."""
    errors = sorted(nested_validator(name).iter_errors(document), key=lambda e: list(e.path))
    return [_describe(error.path, error.message) for error in errors]


def _describe(path: Any, message: str) -> str:
    where = ".".join(str(part) for part in path)
    return f"{where}: {message}" if where else message
