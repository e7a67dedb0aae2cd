"""HTTP for directory management, import and export, and matching: thin; decisions live in
service.py, importer.py and matching.py, permissions in access.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, FastAPI, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.datastructures import UploadFile

from services.referrals.directory import exporter, records, service
from services.referrals.directory.eligibility import ClientFacts
from services.referrals.directory.importer import ImportReport, run_import
from services.referrals.directory.matching import MatchResult, client_facts, match
from services.referrals.directory.snapshot import DirectorySnapshots, Snapshot
from shared.audit.log import Outcome
from shared.auth.guard import Grant, Guard, GuardDep
from shared.db.database import Database
from shared.http.app import ClockDep, DatabaseDep
from shared.http.problems import ProblemError, problem_responses
from shared.messaging.outbox import UnitOfWork, unit_of_work
from shared.settings import Settings

router = APIRouter(tags=["directory"])

IMPORT_PATH = "/v1/directory/imports"
ServiceId = Annotated[str, Path(max_length=100, description="The service's HSDS id.")]
OrganizationId = Annotated[str, Path(max_length=100, description="The organization's HSDS id.")]
ClientId = Annotated[UUID, Path(description="The client's id.")]
WRITE_ERRORS = problem_responses(401, 403, 404, 422)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


@asynccontextmanager
async def _managing(
    guard: Guard, database: Database, request: Request, action: str, service_id: str
) -> AsyncIterator[tuple[UnitOfWork, Grant]]:
    """A change to a service the caller manages (404, audited, otherwise; the service is locked
    until commit): its unit of work and grant, audited when the change is done."""
    grant = await guard.require(action, resource_type="directory_service", resource_id=service_id)
    async with unit_of_work(database) as uow:
        try:
            await service.managed_service(
                uow.connection, guard.principal, _settings(request), service_id
            )
        except ProblemError as error:
            raise await guard.refuse(grant, error, Outcome.NOT_FOUND) from None
        yield uow, grant
        await guard.audit(uow, grant)


# --- Import and export ------------------------------------------------------------------------


async def _parse_upload(request: Request) -> records.Parsed:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in ("application/json", "application/hsds+json"):
        return records.parse_json(await request.body())
    if media in ("application/zip", "application/x-zip-compressed", "application/octet-stream"):
        return records.parse_package(records.files_from_zip(await request.body()))
    if media == "multipart/form-data":
        files: dict[str, bytes] = {}
        form = await request.form(max_files=records.MAX_FILES, max_fields=records.MAX_FILES)
        for value in form.values():
            if isinstance(value, UploadFile) and value.filename:
                name = value.filename.rsplit("/", 1)[-1]
                files[name] = await value.read()
        if len(files) == 1 and next(iter(files)).lower().endswith(".zip"):
            files = records.files_from_zip(next(iter(files.values())))
        return records.parse_package(files)
    raise ProblemError(
        415,
        "unsupported-media-type",
        "Unsupported media type",
        detail="Send application/json (the nested form), application/zip or multipart/form-data "
        "(the tabular data package: CSV files and datapackage.json, or one zip).",
    )


@router.post(
    IMPORT_PATH,
    response_model=ImportReport,
    responses={**WRITE_ERRORS, **problem_responses(413, 415)},
    summary="Import HSDS 3.1 records (nested JSON or tabular data package)",
    description="The body is the nested JSON form (a list of services, or an object with "
    "`services` and/or `organizations` lists) or the tabular data package (a zip, or "
    "multipart files: one CSV per table and `datapackage.json`). Every row is checked against "
    "the HSDS 3.1 schema and its references; the good rows are written in one transaction "
    "(inserted, or updated by id when changed), the rejected ones listed with their table, id "
    "and reasons. Importing the same data again changes nothing. An upload that cannot be "
    "read at all (not UTF-8, broken CSV, not a zip) is refused whole (422). The directory "
    "operator's administrators import anything; others only their own organisation's records.",
)
async def import_directory(
    request: Request, guard: GuardDep, database: DatabaseDep
) -> ImportReport:
    grant = await guard.require("directory.write", resource_type="directory_import")
    try:
        parsed = await _parse_upload(request)
    except records.PackageError as error:
        raise await guard.refuse(
            grant,
            ProblemError(422, "unreadable-import", "The upload cannot be read", detail=str(error)),
            Outcome.INVALID,
        ) from None
    importer = service.importer_for(guard.principal, _settings(request))
    async with unit_of_work(database) as uow:
        report = await run_import(uow.connection, parsed, importer)
        await guard.audit(uow, grant)
    return report


@router.get(
    "/v1/directory/export",
    responses={
        200: {
            "description": "`json`: the services, nested; `datapackage`: a zip of every table",
            "content": {"application/json": {}, "application/zip": {}},
        },
        **problem_responses(401, 403, 422),
    },
    summary="Export the directory in HSDS 3.1",
)
async def export_directory(
    guard: GuardDep,
    database: DatabaseDep,
    format: Annotated[Literal["json", "datapackage"], Query()] = "json",
) -> Response:
    grant = await guard.require("directory.read", resource_type="directory_export")
    async with unit_of_work(database) as uow:
        if format == "json":
            body: Any = await exporter.export_json(uow.connection)
        else:
            body = await exporter.export_package(uow.connection)
        await guard.audit(uow, grant)
    if format == "json":
        return JSONResponse(body)
    return Response(
        body,
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="directory-datapackage.zip"'},
    )


# --- A service's Casework settings ------------------------------------------------------------


@router.get(
    "/v1/directory/services/{service_id}",
    response_model=service.ServiceSettings,
    responses=problem_responses(401, 403, 404, 422),
    summary="A directory service's Casework settings: need categories, rules, capacity",
)
async def get_service_settings(
    service_id: ServiceId, guard: GuardDep, database: DatabaseDep
) -> service.ServiceSettings:
    grant = await guard.require(
        "directory.read", resource_type="directory_service", resource_id=service_id
    )
    async with unit_of_work(database) as uow:
        try:
            settings = await service.service_settings(uow.connection, service_id)
        except ProblemError as error:
            raise await guard.refuse(grant, error, Outcome.NOT_FOUND) from None
        await guard.audit(uow, grant)
    return settings


@router.put(
    "/v1/directory/services/{service_id}/need-categories",
    response_model=service.ServiceSettings,
    responses=WRITE_ERRORS,
    summary="Set the need categories a service meets",
)
async def put_need_categories(
    service_id: ServiceId,
    body: service.NeedCategories,
    request: Request,
    guard: GuardDep,
    database: DatabaseDep,
) -> service.ServiceSettings:
    async with _managing(guard, database, request, "directory.write", service_id) as (uow, _):
        await service.set_need_categories(uow.connection, service_id, body.need_categories)
        settings = await service.service_settings(uow.connection, service_id)
    return settings


@router.put(
    "/v1/directory/services/{service_id}/eligibility-rules",
    response_model=service.ServiceSettings,
    responses=WRITE_ERRORS,
    summary="Set a service's eligibility rules (CEL expressions over client facts)",
    description="Replaces the service's rules. Each is compiled first: a rule that does not "
    "compile, or that uses a fact Casework does not know, is refused (422, naming the rule "
    "and the compiler's message) and nothing is saved. Facts: "
    + ", ".join(f"`{name}`" for name in ClientFacts.model_fields)
    + ".",
)
async def put_eligibility_rules(
    service_id: ServiceId,
    body: service.RulesIn,
    request: Request,
    guard: GuardDep,
    database: DatabaseDep,
) -> service.ServiceSettings:
    async with _managing(guard, database, request, "directory.write", service_id) as (uow, grant):
        try:
            await service.set_rules(uow.connection, service_id, body.rules)
        except ProblemError as error:
            raise await guard.refuse(grant, error, Outcome.INVALID) from None
        settings = await service.service_settings(uow.connection, service_id)
    return settings


@router.put(
    "/v1/directory/services/{service_id}/capacity",
    response_model=service.CapacityOut,
    responses=WRITE_ERRORS,
    summary="Confirm a service's capacity now",
)
async def put_capacity(
    service_id: ServiceId,
    body: service.CapacityIn,
    request: Request,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
) -> service.CapacityOut:
    async with _managing(guard, database, request, "capacity.write", service_id) as (uow, _):
        capacity = await service.set_capacity(
            uow.connection,
            service_id,
            body.status,
            now=clock.now(),
            subject=guard.principal.subject,
        )
    return capacity


@router.put(
    "/v1/directory/organizations/{organization_id}/casework-organization",
    response_model=service.CaseworkOrganization,
    responses=WRITE_ERRORS,
    summary="Map a directory organisation to the Casework organisation that receives its "
    "referrals (the directory operator's administrators only)",
)
async def put_casework_organization(
    organization_id: OrganizationId,
    body: service.CaseworkOrganization,
    request: Request,
    guard: GuardDep,
    database: DatabaseDep,
) -> service.CaseworkOrganization:
    grant = await guard.require(
        "directory.write", resource_type="directory_organization", resource_id=organization_id
    )
    async with unit_of_work(database) as uow:
        found = service.is_operator(guard.principal, _settings(request)) and (
            await service.set_casework_organization(
                uow.connection, organization_id, body.casework_organization_id
            )
        )
        if not found:
            raise await guard.refuse(
                grant,
                ProblemError(
                    404,
                    "not-found",
                    "Not found",
                    detail="No organization with this id that you manage.",
                ),
                Outcome.NOT_FOUND,
            )
        await guard.audit(uow, grant)
    return body


# --- Matching ---------------------------------------------------------------------------------


class MatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_id: UUID | None = Field(
        default=None,
        description="Match on what referrals knows of this client (its reference and latest "
        "assessment); `facts` add to it or correct it.",
    )
    facts: ClientFacts | None = Field(default=None, description="Facts given by the worker.")
    limit: int = Field(default=20, ge=1, le=100)

    @model_validator(mode="after")
    def _something(self) -> MatchRequest:
        if self.client_id is None and self.facts is None:
            raise ValueError("give a client_id, facts, or both")
        return self


def _merged(known: ClientFacts, given: ClientFacts | None) -> ClientFacts:
    if given is None:
        return known
    return known.model_copy(update=given.model_dump(exclude_unset=True, exclude_none=True))


@asynccontextmanager
async def matching_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The API's lifespan part: one directory snapshot per process (app)."""
    app.state.directory_snapshots = DirectorySnapshots()
    yield


async def _snapshot(request: Request, database: Database) -> Snapshot:
    """The directory as matching reads it: taken before the request's connection (a reload
    waits for another's without holding one)."""
    snapshots: DirectorySnapshots = request.app.state.directory_snapshots
    return await snapshots.current(database)


async def _run_match(
    uow: UnitOfWork,
    request: Request,
    clock: ClockDep,
    snapshot: Snapshot,
    facts: ClientFacts,
    limit: int,
) -> MatchResult:
    settings = _settings(request)
    return await match(
        uow.connection,
        snapshot,
        facts,
        now=clock.now(),
        stale_after=timedelta(days=settings.directory_capacity_stale_days),
        limit=limit,
    )


@router.post(
    "/v1/matches",
    response_model=MatchResult,
    responses=problem_responses(401, 403, 404, 422),
    summary="Rank the directory's services for a client, each with why",
    description="Services meeting one of the client's needs, ranked by a score (see "
    "`services/referrals/directory/matching.py` and the README), each with its explanation: "
    "needs met, each eligibility rule passed, failed or unknown, language, postal area, "
    "capacity (stale after the setting), and opening.",
)
async def post_match(
    body: MatchRequest,
    request: Request,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
) -> MatchResult:
    snapshot = await _snapshot(request, database)
    async with unit_of_work(database) as uow:
        if body.client_id is not None:
            grant = await guard.authorize_client(
                uow.connection, "match.run", body.client_id, resource_type="match"
            )
            known = await client_facts(uow.connection, body.client_id)
        else:
            grant = await guard.require("match.run", resource_type="match")
            known = ClientFacts()
        facts = _merged(known, body.facts)
        result = await _run_match(uow, request, clock, snapshot, facts, body.limit)
        await guard.audit(uow, grant)
    return result


@router.get(
    "/v1/clients/{client_id}/suggested-services",
    response_model=MatchResult,
    responses=problem_responses(401, 403, 404, 422),
    summary="The services suggested for a client, from its latest assessment",
)
async def get_suggested_services(
    client_id: ClientId,
    request: Request,
    guard: GuardDep,
    database: DatabaseDep,
    clock: ClockDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> MatchResult:
    snapshot = await _snapshot(request, database)
    async with unit_of_work(database) as uow:
        grant = await guard.authorize_client(
            uow.connection, "match.read", client_id, resource_type="match"
        )
        facts = await client_facts(uow.connection, client_id)
        result = await _run_match(uow, request, clock, snapshot, facts, limit)
        await guard.audit(uow, grant)
    return result
