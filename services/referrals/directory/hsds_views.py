"""The public HSDS 3.1 API: the directory, readable without a token (directories are public).

Paths, filters and answers follow the HSDS API reference (`schema/openapi.json` of the
specification): `GET /hsds/` (about this API), paginated lists of services, organizations
and services at locations (`total_items`, `total_pages`, `page_number`, `size`, `first_page`,
`last_page`, `empty`, `contents`), and the fully nested records by id. Anonymous callers are
rate-limited per source address like every other request (shared/http/middleware.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from services.referrals.directory import hsds_read
from services.referrals.directory.schemas import HSDS_VERSION
from shared.http.app import DatabaseDep
from shared.http.problems import not_found, problem_responses

router = APIRouter(prefix="/hsds", tags=["HSDS API (public)"])

MAX_PER_PAGE = 100
Page = Annotated[int, Query(ge=1, le=100_000, description="Page number, from 1.")]
PerPage = Annotated[int, Query(ge=1, le=MAX_PER_PAGE, description="Results per page.")]
Search = Annotated[
    str | None, Query(max_length=200, description="Text in the name or description.")
]
TaxonomyTermId = Annotated[str | None, Query(max_length=100)]
TaxonomyId = Annotated[str | None, Query(max_length=100)]
OrganizationId = Annotated[str | None, Query(max_length=100)]
Postcode = Annotated[
    str | None,
    Query(max_length=16, pattern=r"^[A-Za-z0-9 -]+$", description="Services covering it."),
]
ModifiedAfter = Annotated[
    datetime | None, Query(description="Services modified on or after this date-time.")
]
RecordId = Annotated[str, Path(max_length=100, description="The record's HSDS id.")]
ERRORS: dict[int | str, dict[str, Any]] = problem_responses(404, 422)
HSDS_JSON: dict[str, Any] = {"description": "HSDS 3.1 JSON", "content": {"application/json": {}}}


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _text(value: str | None) -> str | None:
    """Query text without NUL characters (PostgreSQL text cannot hold them)."""
    return value.replace("\x00", "") if value is not None else None


@dataclass(frozen=True)
class _ServiceQuery:
    """A page of a list of services: `where` over `s`, a service row with its organization's
    name as `s.organization_name`, and its `args`."""

    where: str
    args: list[Any]
    page: int
    per_page: int


def _service_query(
    search: Search = None,
    taxonomy_term_id: TaxonomyTermId = None,
    taxonomy_id: TaxonomyId = None,
    organization_id: OrganizationId = None,
    postcode: Postcode = None,
    modified_after: ModifiedAfter = None,
    page: Page = 1,
    per_page: PerPage = 25,
) -> _ServiceQuery:
    conditions: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    search, taxonomy_term_id = _text(search), _text(taxonomy_term_id)
    taxonomy_id, organization_id = _text(taxonomy_id), _text(organization_id)
    if search:
        p = arg(_like(search))
        conditions.append(
            f"(s.name ILIKE {p} OR s.alternate_name ILIKE {p} OR s.description ILIKE {p} "
            f"OR s.organization_name ILIKE {p})"
        )
    if taxonomy_term_id:
        conditions.append(
            "EXISTS (SELECT 1 FROM attribute a WHERE a.link_id = s.id "
            f"AND a.taxonomy_term_id = {arg(taxonomy_term_id)})"
        )
    if taxonomy_id:
        conditions.append(
            "EXISTS (SELECT 1 FROM attribute a JOIN taxonomy_term t ON t.id = a.taxonomy_term_id "
            f"WHERE a.link_id = s.id AND t.taxonomy_id = {arg(taxonomy_id)})"
        )
    if organization_id:
        conditions.append(f"s.organization_id = {arg(organization_id)}")
    if modified_after:
        if modified_after.tzinfo is None:  # no offset given: UTC
            modified_after = modified_after.replace(tzinfo=UTC)
        conditions.append(f"coalesce(s.last_modified, s.changed_at) >= {arg(modified_after)}")
    if postcode:
        code = arg("".join(postcode.split()).upper().replace("-", ""))
        conditions.append(
            "(EXISTS (SELECT 1 FROM service_area sa, "
            r"regexp_split_to_table(upper(coalesce(sa.extent, '')), '[\s,;]+') AS prefix "
            "WHERE sa.service_id = s.id AND lower(sa.extent_type) = 'text' AND prefix <> '' "
            f"AND left({code}, length(prefix)) = prefix) "
            "OR EXISTS (SELECT 1 FROM service_at_location sl "
            "JOIN address ad ON ad.location_id = sl.location_id WHERE sl.service_id = s.id "
            rf"AND upper(regexp_replace(ad.postal_code, '[\s-]', '', 'g')) = {code}))"
        )
    return _ServiceQuery(" AND ".join(conditions) or "TRUE", args, page, per_page)


ServiceQuery = Annotated[_ServiceQuery, Depends(_service_query)]


def _page(total: int, page: int, per_page: int, contents: list[Any]) -> dict[str, Any]:
    pages = math.ceil(total / per_page) if total else 0
    return {
        "total_items": total,
        "total_pages": pages,
        "page_number": page,
        "size": len(contents),
        "first_page": page == 1,
        "last_page": page >= pages,
        "empty": not contents,
        "contents": contents,
    }


async def _paged(
    connection: asyncpg.Connection,
    base: str,
    where: str,
    args: list[Any],
    order: str,
    page: int,
    per_page: int,
) -> tuple[int, list[asyncpg.Record]]:
    total = await connection.fetchval(f"SELECT count(*) FROM {base} WHERE {where}", *args)
    n = len(args)
    rows = await connection.fetch(
        f"SELECT * FROM {base} WHERE {where} ORDER BY {order} LIMIT ${n + 1} OFFSET ${n + 2}",
        *args,
        per_page,
        (page - 1) * per_page,
    )
    return int(total), rows


@router.get("/", summary="About this HSDS API", responses={200: HSDS_JSON})
async def hsds_api_info(request: Request) -> JSONResponse:
    base = str(request.base_url).rstrip("/") + request.scope.get("root_path", "")
    return JSONResponse(
        {
            "version": HSDS_VERSION,
            "profile": "https://docs.openreferral.org/en/latest/hsds/",
            "openapi_url": f"{base}/openapi.json",
            "description": "The Casework network's directory of services, in Open Referral "
            "HSDS 3.1. Public: no token needed.",
        }
    )


_SERVICES = (
    "(SELECT s.*, o.name AS organization_name FROM service s "
    "JOIN organization o ON o.id = s.organization_id) s"
)


@router.get("/services", summary="Services, a page at a time", responses={200: HSDS_JSON, **ERRORS})
async def hsds_list_services(database: DatabaseDep, query: ServiceQuery) -> JSONResponse:
    page, per_page = query.page, query.per_page
    async with database.connection() as connection:
        total, rows = await _paged(connection, _SERVICES, query.where, query.args, "s.name, s.id",
                                   page, per_page)  # fmt: skip
        organizations = await _plain_by_id(
            connection, "organization", {row["organization_id"] for row in rows}
        )
        programs = await _plain_by_id(
            connection, "program", {row["program_id"] for row in rows} - {None}
        )
    contents = []
    for row in rows:
        item = hsds_read.plain("service", row)
        item["organization"] = organizations[row["organization_id"]]
        if row["program_id"] in programs:
            item["program"] = programs[row["program_id"]]
        contents.append(item)
    return JSONResponse(_page(total, page, per_page, contents))


async def _plain_by_id(
    connection: asyncpg.Connection, table: str, ids: set[str]
) -> dict[str, dict[str, Any]]:
    rows = await connection.fetch(f'SELECT * FROM "{table}" WHERE id = ANY($1::text[])', list(ids))
    return {row["id"]: hsds_read.plain(table, row) for row in rows}


@router.get(
    "/services/{service_id}",
    summary="A service, fully nested",
    responses={200: HSDS_JSON, **ERRORS},
)
async def hsds_get_service(service_id: RecordId, database: DatabaseDep) -> JSONResponse:
    async with database.connection() as connection:
        found = await hsds_read.full(connection, "service", [service_id])
    if not found:
        raise not_found("service")
    return JSONResponse(found[0])


@router.get(
    "/organizations",
    summary="Organizations, a page at a time",
    responses={200: HSDS_JSON, **ERRORS},
)
async def hsds_list_organizations(
    database: DatabaseDep, search: Search = None, page: Page = 1, per_page: PerPage = 25
) -> JSONResponse:
    args: list[Any] = []
    where = "TRUE"
    search = _text(search)
    if search:
        args.append(_like(search))
        where = "(o.name ILIKE $1 OR o.alternate_name ILIKE $1 OR o.description ILIKE $1)"
    async with database.connection() as connection:
        total, rows = await _paged(connection, "organization o", where, args, "o.name, o.id",
                                   page, per_page)  # fmt: skip
    contents = [hsds_read.plain("organization", row) for row in rows]
    return JSONResponse(_page(total, page, per_page, contents))


@router.get(
    "/organizations/{organization_id}",
    summary="An organization, fully nested with its services",
    responses={200: HSDS_JSON, **ERRORS},
)
async def hsds_get_organization(organization_id: RecordId, database: DatabaseDep) -> JSONResponse:
    async with database.connection() as connection:
        found = await hsds_read.full(connection, "organization", [organization_id])
    if not found:
        raise not_found("organization")
    return JSONResponse(found[0])


_SERVICE_AT_LOCATIONS = (
    "(SELECT sl.id AS sal_id, sl.location_id AS sal_location_id, sl.description AS "
    "sal_description, s.*, o.name AS organization_name FROM service_at_location sl "
    "JOIN service s ON s.id = sl.service_id JOIN organization o ON o.id = s.organization_id) s"
)


@router.get(
    "/service_at_locations",
    summary="Services at locations, a page at a time",
    responses={200: HSDS_JSON, **ERRORS},
)
async def hsds_list_service_at_locations(
    database: DatabaseDep, query: ServiceQuery
) -> JSONResponse:
    page, per_page = query.page, query.per_page
    async with database.connection() as connection:
        total, rows = await _paged(connection, _SERVICE_AT_LOCATIONS, query.where, query.args,
                                   "s.name, s.sal_id", page, per_page)  # fmt: skip
        locations = await _plain_by_id(
            connection, "location", {row["sal_location_id"] for row in rows}
        )
    contents = []
    for row in rows:
        item: dict[str, Any] = {"id": row["sal_id"], "service_id": row["id"],
                                "location_id": row["sal_location_id"]}  # fmt: skip
        if row["sal_description"] is not None:
            item["description"] = row["sal_description"]
        item["service"] = hsds_read.plain("service", row)
        item["location"] = locations[row["sal_location_id"]]
        contents.append(item)
    return JSONResponse(_page(total, page, per_page, contents))


@router.get(
    "/service_at_locations/{service_at_location_id}",
    summary="A service at a location, fully nested",
    responses={200: HSDS_JSON, **ERRORS},
)
async def hsds_get_service_at_location(
    service_at_location_id: RecordId, database: DatabaseDep
) -> JSONResponse:
    async with database.connection() as connection:
        graph = hsds_read.Graph(connection)
        await graph.load("service_at_location", {service_at_location_id})
        row = graph.rows["service_at_location"].get(service_at_location_id)
        if row is None:
            raise not_found("service_at_location")
        document = graph.render("service_at_location", service_at_location_id)
    return JSONResponse(document)
