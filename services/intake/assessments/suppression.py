"""Cell suppression for published tables: primary, then complementary until nothing leaks.

A table is cells (counts) and the linear relations a reader knows hold between them: a row's
cells add up to its total, a partition's groups add up to the column total, the same column
total appears in every partition of the same people. Primary suppression hides the small
cells; a hidden cell still leaks when the relations and the published cells determine it (a
total minus the other cells, or a chain of such subtractions across rows, columns and
dimensions). `protect` hides further cells until no hidden cell is determined.

"Determined" is decided exactly, by Gaussian elimination over the rationals: with the published
cells substituted, a hidden cell is determined when its unit vector lies in the row space of
the remaining equations. Cells that are never published (a total the report does not print)
are unknowns like the hidden ones, but need no protection of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Iterable, Sequence
from fractions import Fraction
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

# An equation: cells whose signed sum is zero, e.g. total - a - b - c = 0.
Equation = Sequence[tuple[K, int]]


def determined(unknowns: Collection[K], equations: Iterable[Equation[K]]) -> set[K]:
    """The unknowns whose value follows from the equations (the other cells being known)."""
    order = list(unknowns)
    index = {cell: position for position, cell in enumerate(order)}
    rows: list[list[Fraction]] = []
    for equation in equations:
        row = [Fraction(0)] * len(order)
        for cell, coefficient in equation:
            if cell in index:
                row[index[cell]] += coefficient
        if any(row):
            rows.append(row)
    pivots = _reduce(rows, len(order))
    return {
        order[column]
        for row, column in zip(rows, pivots, strict=False)
        if sum(1 for value in row if value) == 1
    }


def _reduce(rows: list[list[Fraction]], width: int) -> list[int]:
    """Reduced row echelon form in place; returns the pivot column of each leading row."""
    pivots: list[int] = []
    rank = 0
    for column in range(width):
        pivot = next((r for r in range(rank, len(rows)) if rows[r][column]), None)
        if pivot is None:
            continue
        rows[rank], rows[pivot] = rows[pivot], rows[rank]
        lead = rows[rank][column]
        rows[rank] = [value / lead for value in rows[rank]]
        for other in range(len(rows)):
            if other != rank and rows[other][column]:
                factor = rows[other][column]
                rows[other] = [a - factor * b for a, b in zip(rows[other], rows[rank], strict=True)]
        pivots.append(column)
        rank += 1
    del rows[rank:]
    return pivots


def protect(
    cells: Collection[K],
    equations: Sequence[Equation[K]],
    *,
    suppressed: set[K],
    unpublished: set[K],
    preference: Callable[[K], tuple[object, ...]],
) -> set[K]:
    """The suppressed cells plus complementary ones, so that no suppressed cell can be
    computed from the published cells. Each round hides, in an equation that gives a hidden
    cell away, the published cell that `preference` ranks first (e.g. the smallest count)."""
    hidden = set(suppressed)
    # Hidden cells the structure alone fixes (nothing published around them): nothing to hide.
    settled: set[K] = set()
    while True:
        unknown = hidden | unpublished
        leaking = sorted(
            (
                cell
                for cell in determined(unknown, equations)
                if cell in hidden and cell not in settled
            ),
            key=preference,
        )
        if not leaking:
            return hidden
        cell = leaking[0]
        candidates = [
            other
            for equation in equations
            if any(member == cell for member, _ in equation)
            for other, _ in equation
            if other in cells and other not in unknown
        ]
        if not candidates:  # derived through a chain: widen to every equation with unknowns
            candidates = [
                other
                for equation in equations
                if any(member in unknown for member, _ in equation)
                for other, _ in equation
                if other in cells and other not in unknown
            ]
        if candidates:
            hidden.add(min(candidates, key=preference))
        else:
            settled.add(cell)
