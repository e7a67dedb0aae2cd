"""The equity report: do computed risk levels and workers' overrides differ between groups?

Counts only, never rows. Each client counts once per dimension, with their latest assessment on
the instrument (several assessments of one person must not fill a cell); in race_ethnicity a
client counts in every group they chose. Small cells are suppressed so no person can be picked
out: a count below MIN_CELL is published as null with `suppressed: true`, and a second cell is
suppressed wherever a single one could be recovered by subtraction (see `_complement`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import asyncpg
from pydantic import BaseModel, Field

from shared.events.assessment import RISK_ORDER, RiskLevel

MIN_CELL = 5
NOT_RECORDED = "not_recorded"

DimensionName = Literal["sex", "race_ethnicity", "preferred_language"]
# Single-choice dimensions partition the clients: their group counts add up to the total.
_DIMENSIONS: tuple[tuple[DimensionName, str | None, bool], ...] = (
    ("sex", "sex", False),
    ("race_ethnicity", "race_ethnicity", True),
    ("preferred_language", None, False),
)


class Cell(BaseModel):
    count: int | None = Field(description=f"Null when suppressed (fewer than {MIN_CELL}).")
    suppressed: bool


class RiskDistribution(BaseModel):
    low: Cell
    moderate: Cell
    high: Cell
    crisis: Cell


class GroupFigures(BaseModel):
    group: str = Field(description=f"The recorded code or language; `{NOT_RECORDED}` if none.")
    clients: Cell
    computed_risk_levels: RiskDistribution = Field(description="As the instrument computed.")
    overrides_raised: Cell = Field(description="Level in force above the computed one.")
    overrides_lowered: Cell = Field(description="Level in force below the computed one.")


class DimensionFigures(BaseModel):
    dimension: DimensionName
    code_list: str | None = Field(description="The intake code list the groups are codes of.")
    multiple_per_client: bool = Field(description="A client counts in each group they chose.")
    groups: list[GroupFigures]


class EquityReport(BaseModel):
    instrument_id: str
    instrument_version: str | None = Field(description="Null: every version of the instrument.")
    generated_at: datetime
    minimum_cell: int = MIN_CELL
    clients: Cell = Field(description="Clients in your scope assessed with the instrument.")
    dimensions: list[DimensionFigures]


@dataclass
class Tally:
    clients: int = 0
    risk: dict[RiskLevel, int] = field(default_factory=lambda: dict.fromkeys(RiskLevel, 0))
    raised: int = 0
    lowered: int = 0


_QUERY = """
WITH latest AS (
    SELECT DISTINCT ON (s.client_id) s.client_id, s.computed_risk_level, s.risk_level
    FROM assessments s JOIN client_access a ON a.client_id = s.client_id
    WHERE s.instrument_id = $1 AND ($2::text IS NULL OR s.instrument_version = $2)
      AND {visible}
    ORDER BY s.client_id, s.created_at DESC, s.id DESC
),
facts AS (
    SELECT l.client_id, l.computed_risk_level,
           CASE WHEN array_position($3::text[], l.risk_level)
                     > array_position($3::text[], l.computed_risk_level) THEN 'raised'
                WHEN array_position($3::text[], l.risk_level)
                     < array_position($3::text[], l.computed_risk_level) THEN 'lowered'
                ELSE 'none' END AS direction,
           c.sex, c.race_ethnicity, c.preferred_language
    FROM latest l JOIN clients c ON c.id = l.client_id
)
SELECT 'all' AS dimension, 'all' AS grp, computed_risk_level, direction,
       count(*) AS clients
FROM facts GROUP BY 2, 3, 4
UNION ALL
SELECT 'sex', coalesce(sex, '{not_recorded}'), computed_risk_level, direction, count(*)
FROM facts GROUP BY 2, 3, 4
UNION ALL
SELECT 'race_ethnicity', coalesce(r.code, '{not_recorded}'), computed_risk_level, direction,
       count(DISTINCT client_id)
FROM facts LEFT JOIN LATERAL unnest(race_ethnicity) AS r(code) ON TRUE GROUP BY 2, 3, 4
UNION ALL
SELECT 'preferred_language', preferred_language, computed_risk_level, direction, count(*)
FROM facts GROUP BY 2, 3, 4
"""


async def tally(
    connection: asyncpg.Connection,
    *,
    instrument_id: str,
    instrument_version: str | None,
    visible: tuple[str, list[str]],
) -> dict[tuple[str, str], Tally]:
    """(dimension, group) -> counts, over the clients the caller may report on."""
    clause, parameters = visible
    rows = await connection.fetch(
        _QUERY.format(visible=clause, not_recorded=NOT_RECORDED),
        instrument_id,
        instrument_version,
        [str(level) for level in RISK_ORDER],
        *parameters,
    )
    tallies: dict[tuple[str, str], Tally] = {}
    for row in rows:
        counts = tallies.setdefault((row["dimension"], row["grp"]), Tally())
        counts.clients += row["clients"]
        counts.risk[RiskLevel(row["computed_risk_level"])] += row["clients"]
        if row["direction"] == "raised":
            counts.raised += row["clients"]
        elif row["direction"] == "lowered":
            counts.lowered += row["clients"]
    return tallies


def _complement(counts: dict[str, int], hidden: set[str]) -> set[str]:
    """Cells of a partition whose total is published: with exactly one hidden, the total minus
    the others gives it away, so the smallest other cell is hidden too."""
    if len(hidden) != 1 or len(counts) < 2:
        return hidden
    smallest = min((key for key in counts if key not in hidden), key=lambda k: (counts[k], k))
    return hidden | {smallest}


def _small(counts: dict[str, int]) -> set[str]:
    return {key for key, count in counts.items() if count < MIN_CELL}


def _cell(count: int, hidden: bool) -> Cell:
    return Cell(count=None, suppressed=True) if hidden else Cell(count=count, suppressed=False)


def _group(name: str, counts: Tally, whole_group_hidden: bool) -> GroupFigures:
    risk = {str(level): counts.risk[level] for level in RiskLevel}
    hidden_risk = set(risk) if whole_group_hidden else _complement(risk, _small(risk))
    return GroupFigures(
        group=name,
        clients=_cell(counts.clients, whole_group_hidden),
        computed_risk_levels=RiskDistribution(
            **{level: _cell(count, level in hidden_risk) for level, count in risk.items()}
        ),
        overrides_raised=_cell(counts.raised, whole_group_hidden or counts.raised < MIN_CELL),
        overrides_lowered=_cell(counts.lowered, whole_group_hidden or counts.lowered < MIN_CELL),
    )


def _order(groups: Iterable[str]) -> list[str]:
    return sorted(groups, key=lambda group: (group == NOT_RECORDED, group))


def build_report(
    tallies: dict[tuple[str, str], Tally],
    *,
    instrument_id: str,
    instrument_version: str | None,
    generated_at: datetime,
) -> EquityReport:
    everyone = tallies.get(("all", "all"), Tally())
    dimensions: list[DimensionFigures] = []
    for dimension, code_list, multiple in _DIMENSIONS:
        groups = {name: counts for (dim, name), counts in tallies.items() if dim == dimension}
        sizes = {name: counts.clients for name, counts in groups.items()}
        hidden = _small(sizes)
        if not multiple:  # a partition of the published total
            hidden = _complement(sizes, hidden)
        dimensions.append(
            DimensionFigures(
                dimension=dimension,
                code_list=code_list,
                multiple_per_client=multiple,
                groups=[_group(name, groups[name], name in hidden) for name in _order(groups)],
            )
        )
    return EquityReport(
        instrument_id=instrument_id,
        instrument_version=instrument_version,
        generated_at=generated_at,
        clients=_cell(everyone.clients, everyone.clients < MIN_CELL),
        dimensions=dimensions,
    )


def report_resource_id(instrument_id: str, instrument_version: str | None) -> str:
    return f"equity:{instrument_id}" + (f":{instrument_version}" if instrument_version else "")
