"""The equity report's disclosure control holds against the issue's two attacks (issue 9,
item 11): deriving a suppressed cell from the totals, and comparing two reports to learn the
group of one new client. Pure: the report is built from tallies, no database."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from services.intake.assessments.equity import EquityReport, Tally, build_report
from shared.events.assessment import RiskLevel

LEVELS = [str(level) for level in RiskLevel]
COLUMNS = ["clients", *LEVELS, "raised", "lowered"]
PARTITIONS = ("sex", "preferred_language")


def tally(clients: int, **levels: int) -> Tally:
    counts = Tally(clients=clients)
    for level, count in levels.items():
        counts.risk[RiskLevel(level)] = count
    assert sum(counts.risk.values()) == clients
    return counts


def report(tallies: dict[tuple[str, str], Tally]) -> EquityReport:
    return build_report(
        tallies, instrument_id="needs-risk-screening", instrument_version=None,
        generated_at=datetime(2026, 11, 29, tzinfo=UTC),
    )  # fmt: skip


def published(result: EquityReport) -> dict[tuple[str, str, str], int | None]:
    """Every cell as the reader sees it: a count, or None when suppressed."""
    cells: dict[tuple[str, str, str], int | None] = {
        ("all", "all", "clients"): result.clients.count
    }
    for dimension in result.dimensions:
        for group in dimension.groups:
            row = (dimension.dimension, group.group)
            cells[(*row, "clients")] = group.clients.count
            for level, cell in group.computed_risk_levels:
                cells[(*row, level)] = cell.count
            cells[(*row, "raised")] = group.overrides_raised.count
            cells[(*row, "lowered")] = group.overrides_lowered.count
    return cells


def subtraction_attack(cells: dict[tuple[str, str, str], int | None]) -> dict[Any, int]:
    """What a reader computes by subtraction alone, chaining as far as it goes: a row's clients
    are the sum of its levels, the groups of sex and of language each add up to the same
    totals. Returns the suppressed cells (and unpublished totals) it recovers."""
    known: dict[Any, int] = {key: value for key, value in cells.items() if value is not None}
    rows = {key[:2] for key in cells}
    equations = [((*row, "clients"), [(*row, level) for level in LEVELS]) for row in rows]
    for dimension in PARTITIONS:
        groups = [row for row in rows if row[0] == dimension]
        for column in COLUMNS:
            equations.append((("all", "all", column), [(*row, column) for row in groups]))
    recovered: dict[Any, int] = {}
    progress = True
    while progress:
        progress = False
        for total, parts in equations:
            unknown = [cell for cell in (total, *parts) if cell not in known]
            if len(unknown) != 1:
                continue
            [cell] = unknown
            rest = sum(known[part] for part in parts if part in known)
            known[cell] = rest if cell == total else known[total] - rest
            recovered[cell] = known[cell]
            progress = True
    return {cell: value for cell, value in recovered.items() if cell in cells}


# Sex: women 10 (5 low, 5 crisis), men 11 (5 low, 6 crisis), not recorded 7 (5 low, 2 crisis).
# Everyone speaks Portuguese, so the language row is the totals: 28 = 15 low + 13 crisis.
# Before: the men's and women's crisis cells and the language total were published, and the
# not-recorded group's 2 in crisis was 13 - 5 - 6 away.
CRISIS_BY_TOTALS = {
    ("all", "all"): tally(28, low=15, crisis=13),
    ("sex", "0"): tally(10, low=5, crisis=5),
    ("sex", "1"): tally(11, low=5, crisis=6),
    ("sex", "not_recorded"): tally(7, low=5, crisis=2),
    ("race_ethnicity", "not_recorded"): tally(28, low=15, crisis=13),
    ("preferred_language", "pt"): tally(28, low=15, crisis=13),
}


def test_a_suppressed_crisis_count_cannot_be_derived_from_the_totals() -> None:
    cells = published(report(CRISIS_BY_TOTALS))

    assert cells[("sex", "not_recorded", "crisis")] is None  # suppressed: 2
    assert subtraction_attack(cells) == {}


def test_a_group_of_two_in_crisis_cannot_be_derived_either() -> None:
    tallies = {
        ("all", "all"): tally(22, low=10, high=10, crisis=2),
        ("sex", "0"): tally(10, low=5, high=5),
        ("sex", "1"): tally(10, low=5, high=5),
        ("sex", "not_recorded"): tally(2, crisis=2),
        ("race_ethnicity", "not_recorded"): tally(22, low=10, high=10, crisis=2),
        ("preferred_language", "en"): tally(22, low=10, high=10, crisis=2),
    }
    cells = published(report(tallies))

    assert cells[("sex", "not_recorded", "clients")] is None
    assert subtraction_attack(cells) == {}


def test_every_published_count_is_a_multiple_of_five() -> None:
    counts = [value for value in published(report(CRISIS_BY_TOTALS)).values() if value is not None]
    assert counts and all(value % 5 == 0 for value in counts)
    assert report(CRISIS_BY_TOTALS).clients.count == 30  # 28, rounded


def test_comparing_two_reports_does_not_show_a_new_clients_group() -> None:
    """Before: 20 -> 21 clients and English 10 -> 11 told everyone the new client's language
    and sex. Rounded, both reports are the same."""
    before = {
        ("all", "all"): tally(20, low=10, high=10),
        ("sex", "0"): tally(10, low=5, high=5),
        ("sex", "1"): tally(10, low=5, high=5),
        ("race_ethnicity", "not_recorded"): tally(20, low=10, high=10),
        ("preferred_language", "en"): tally(10, low=5, high=5),
        ("preferred_language", "pt"): tally(10, low=5, high=5),
    }
    after = {
        **before,
        ("all", "all"): tally(21, low=11, high=10),
        ("sex", "0"): tally(11, low=6, high=5),
        ("race_ethnicity", "not_recorded"): tally(21, low=11, high=10),
        ("preferred_language", "en"): tally(11, low=6, high=5),
    }

    assert published(report(after)) == published(report(before))
