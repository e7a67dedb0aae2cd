"""The equity report: do computed risk levels and workers' overrides differ between groups?

Counts only, never rows. Each client counts once per dimension, with their latest assessment on
the instrument (several assessments of one person must not fill a cell); in race_ethnicity a
client counts in every group they chose.

Disclosure control, so no person can be picked out (what a report can still reveal is in the
README, "Equity report"):
- primary suppression: a count below MIN_CELL, and every cell of a group below it, is
  published as null with `suppressed: true`;
- complementary suppression: more cells are hidden until no hidden cell can be computed from
  the published ones, through the relations a reader knows (a group's risk levels add up to its
  clients; the groups of sex and of language each partition the same people, so their columns
  add up to the same totals): see `suppression.protect`;
- rounding: every published count is rounded to the nearest multiple of ROUNDING_BASE, so that
  comparing two reports does not show which group one newly assessed client joined, unless a
  count crosses a rounding boundary (then it shows a change of 5, not which person).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

import asyncpg
from pydantic import BaseModel, Field

from services.intake.assessments import suppression
from shared.events.assessment import RISK_ORDER, RiskLevel

MIN_CELL = 5
ROUNDING_BASE = 5
NOT_RECORDED = "not_recorded"

DimensionName = Literal["sex", "race_ethnicity", "preferred_language"]
# Single-choice dimensions partition the clients: their group counts add up to the total.
_DIMENSIONS: tuple[tuple[DimensionName, str | None, bool], ...] = (
    ("sex", "sex", False),
    ("race_ethnicity", "race_ethnicity", True),
    ("preferred_language", None, False),
)


class Cell(BaseModel):
    count: int | None = Field(
        description=f"Rounded to the nearest multiple of {ROUNDING_BASE}; null when suppressed "
        f"(fewer than {MIN_CELL}, or it could be computed from the others)."
    )
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
    rounding_base: int = Field(
        default=ROUNDING_BASE, description="Published counts are multiples of this."
    )
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


# One cell of the report: (dimension, group, column); the totals are ("all", "all", column).
CellKey = tuple[str, str, str]
_TOTAL = ("all", "all")
_LEVELS = tuple(str(level) for level in RiskLevel)
_COLUMNS = ("clients", *_LEVELS, "raised", "lowered")


def _values(counts: Tally) -> dict[str, int]:
    return {
        "clients": counts.clients,
        **{str(level): counts.risk[level] for level in RiskLevel},
        "raised": counts.raised,
        "lowered": counts.lowered,
    }


def _equations(groups: dict[str, list[str]]) -> list[list[tuple[CellKey, int]]]:
    """What a reader knows holds: each row's clients are the sum of its risk levels; each
    single-choice dimension partitions the same people, so its groups add up to the totals
    in every column (and the totals are shared by every such dimension)."""
    rows = [(dimension, group) for dimension, names in groups.items() for group in names]
    equations = [
        [((*row, "clients"), 1), *(((*row, level), -1) for level in _LEVELS)]
        for row in [_TOTAL, *rows]
    ]
    for dimension, _code_list, multiple in _DIMENSIONS:
        if multiple or not groups.get(dimension):
            continue
        for column in _COLUMNS:
            equations.append(
                [
                    ((*_TOTAL, column), 1),
                    *(((dimension, group, column), -1) for group in groups.get(dimension, [])),
                ]
            )
    return equations


def hidden_cells(tallies: dict[tuple[str, str], Tally]) -> set[CellKey]:
    """Primary suppression (a count below MIN_CELL, every cell of a group below it), then
    complementary suppression until no hidden cell follows from the published ones."""
    counts: dict[CellKey, int] = {
        (*_TOTAL, column): value for column, value in _values(tallies.get(_TOTAL, Tally())).items()
    }
    groups: dict[str, list[str]] = {}
    for (dimension, group), tally_ in tallies.items():
        if (dimension, group) == _TOTAL:
            continue
        groups.setdefault(dimension, []).append(group)
        for column, value in _values(tally_).items():
            counts[(dimension, group, column)] = value
    primary = {
        key
        for key, value in counts.items()
        if key[:2] != _TOTAL and (value < MIN_CELL or counts[(*key[:2], "clients")] < MIN_CELL)
    }
    if counts[(*_TOTAL, "clients")] < MIN_CELL:
        primary.add((*_TOTAL, "clients"))
    return suppression.protect(
        counts.keys(),
        _equations(groups),
        suppressed=primary,
        unpublished={(*_TOTAL, column) for column in _COLUMNS if column != "clients"},
        # Hide the smallest published cell; a total only when nothing else will do.
        preference=lambda key: (key[:2] == _TOTAL, counts[key], key),
    )


def rounded(count: int) -> int:
    """To the nearest multiple of ROUNDING_BASE (counts are integers and the base odd: no ties)."""
    return (count + ROUNDING_BASE // 2) // ROUNDING_BASE * ROUNDING_BASE


def _cell(count: int, hidden: bool) -> Cell:
    if hidden:
        return Cell(count=None, suppressed=True)
    return Cell(count=rounded(count), suppressed=False)


def _group(dimension: str, name: str, counts: Tally, hidden: set[CellKey]) -> GroupFigures:
    values = _values(counts)

    def cell(column: str) -> Cell:
        return _cell(values[column], (dimension, name, column) in hidden)

    return GroupFigures(
        group=name,
        clients=cell("clients"),
        computed_risk_levels=RiskDistribution(**{level: cell(level) for level in _LEVELS}),
        overrides_raised=cell("raised"),
        overrides_lowered=cell("lowered"),
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
    hidden = hidden_cells(tallies)
    everyone = tallies.get(_TOTAL, Tally())
    dimensions: list[DimensionFigures] = []
    for dimension, code_list, multiple in _DIMENSIONS:
        groups = {name: counts for (dim, name), counts in tallies.items() if dim == dimension}
        dimensions.append(
            DimensionFigures(
                dimension=dimension,
                code_list=code_list,
                multiple_per_client=multiple,
                groups=[_group(dimension, name, groups[name], hidden) for name in _order(groups)],
            )
        )
    return EquityReport(
        instrument_id=instrument_id,
        instrument_version=instrument_version,
        generated_at=generated_at,
        clients=_cell(everyone.clients, (*_TOTAL, "clients") in hidden),
        dimensions=dimensions,
    )


def report_resource_id(instrument_id: str, instrument_version: str | None) -> str:
    return f"equity:{instrument_id}" + (f":{instrument_version}" if instrument_version else "")
