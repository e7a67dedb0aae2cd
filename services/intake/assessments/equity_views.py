"""HTTP for the equity report: aggregated counts only, small cells suppressed."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from services.intake.assessments import equity
from services.intake.assessments.definitions import INSTRUMENTS
from services.intake.assessments.problems import instrument_or_422, invalid
from shared.auth.guard import GuardDep
from shared.http.app import DatabaseDep
from shared.http.problems import FieldError, problem_responses
from shared.messaging.outbox import unit_of_work
from shared.text import FreeText

router = APIRouter(tags=["reports"])


@router.get(
    "/v1/reports/equity",
    response_model=equity.EquityReport,
    responses=problem_responses(401, 403, 422),
    summary="Computed risk levels and overrides by sex, race/ethnicity and language",
    description="Over the clients you may report on, each with their latest assessment on the "
    f"instrument. Counts below {equity.MIN_CELL} are null with `suppressed: true`, and a second "
    "cell is suppressed wherever one could be recovered by subtraction. The access is audited.",
)
async def equity_report(
    guard: GuardDep,
    database: DatabaseDep,
    instrument_id: Annotated[str, FreeText(max_length=63), Query()],
    version: Annotated[
        Annotated[str, FreeText(max_length=20)] | None,
        Query(description="Default: every version."),
    ] = None,
) -> equity.EquityReport:
    grant = await guard.require(
        "report.equity",
        resource_type="report",
        resource_id=equity.report_resource_id(instrument_id, version),
    )
    if version is not None:
        instrument_or_422(instrument_id, version, location="query")
    elif not any(known_id == instrument_id for known_id, _ in INSTRUMENTS):
        raise invalid(
            [FieldError(field="query.instrument_id", message="unknown instrument", code="unknown")]
        )
    async with unit_of_work(database) as uow:
        tallies = await equity.tally(
            uow.connection,
            instrument_id=instrument_id,
            instrument_version=version,
            visible=guard.policy.list_filter(guard.principal, "report.equity", first_parameter=4),
        )
        await guard.audit(uow, grant)
    return equity.build_report(
        tallies,
        instrument_id=instrument_id,
        instrument_version=version,
        generated_at=datetime.now(UTC),
    )
