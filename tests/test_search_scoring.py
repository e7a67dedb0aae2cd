"""Duplicate scoring, pure logic: the check before registering looks only at records sharing
the birth date (or its swap) or the phone; that is sound only if nothing else can score as a
likely duplicate. These tests hold the weights to that."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any
from uuid import uuid4

import pytest

from services.intake.clients.search import (
    LIKELY_DUPLICATE,
    can_be_likely_duplicate,
    normalize,
    score,
    spelled_alike,
    swapped,
    typo_apart,
)

PROBE_BIRTH_DATE = date(1985, 4, 12)
PROBE_PHONE = "5550104477"
# How a stored record's birth date relates to the probe's.
BIRTH_DATES = {
    "same": PROBE_BIRTH_DATE,
    "swapped": date(1985, 12, 4),
    "same year": date(1985, 7, 30),
    "other": date(1961, 9, 30),
    "unknown": None,
}
PHONES = {"same": PROBE_PHONE, "other": "5559990000", "unknown": None}


def row(
    *, similarity: float, sounds_alike: bool, birth_date: date | None, phone: str | None
) -> dict[str, Any]:
    return {
        "id": uuid4(),
        # Spelled unlike the probes: whether names match is `sounds_alike` alone here.
        "given_name": "Mei",
        "family_name": "Chen",
        "birth_date": birth_date,
        "phone_digits": phone,
        "name_similarity": similarity,
        "sounds_alike": sounds_alike,
    }  # fmt: skip


def test_a_likely_duplicate_always_shares_the_birth_date_or_the_phone() -> None:
    grid = itertools.product(
        [i / 20 for i in range(21)], [False, True], list(BIRTH_DATES), list(PHONES)
    )
    likely = 0
    for similarity, sounds_alike, born, phone in grid:
        candidate = score(
            row(similarity=similarity, sounds_alike=sounds_alike, birth_date=BIRTH_DATES[born],
                phone=PHONES[phone]),
            "jose alvarez", PROBE_BIRTH_DATE, PROBE_PHONE,
        )  # fmt: skip
        birth_date_matches = born in ("same", "swapped")
        phone_matches = phone == "same"
        reachable = can_be_likely_duplicate(
            birth_date_matches=birth_date_matches, phone_matches=phone_matches
        )
        if candidate.likely_duplicate:
            likely += 1
            assert reachable and (birth_date_matches or phone_matches), candidate
        if not reachable:
            assert candidate.score < LIKELY_DUPLICATE, candidate
    assert likely > 0  # the grid does reach the threshold


def test_the_best_score_without_birth_date_or_phone_stays_below_the_threshold() -> None:
    assert not can_be_likely_duplicate(birth_date_matches=False, phone_matches=False)
    assert can_be_likely_duplicate(birth_date_matches=True, phone_matches=False)
    assert can_be_likely_duplicate(birth_date_matches=False, phone_matches=True)
    best_namesake = score(
        row(similarity=1.0, sounds_alike=True, birth_date=BIRTH_DATES["same year"], phone=None),
        "jose alvarez", PROBE_BIRTH_DATE, PROBE_PHONE,
    )  # fmt: skip
    assert best_namesake.score == 0.63
    assert best_namesake.reasons == ["name similarity 1.00", "names sound alike", "same birth year"]


def test_birth_date_and_phone_alone_make_a_likely_duplicate() -> None:
    stranger_name = score(
        row(similarity=0.0, sounds_alike=False, birth_date=PROBE_BIRTH_DATE, phone=PROBE_PHONE),
        "karol nowicki", PROBE_BIRTH_DATE, PROBE_PHONE,
    )  # fmt: skip
    assert (stranger_name.score, stranger_name.likely_duplicate) == (0.65, True)
    assert stranger_name.reasons == ["same birth date", "same phone number"]


def test_normalize_and_swap() -> None:
    assert normalize("José-María  O'Brien") == "jose maria o brien"
    assert swapped(date(1985, 4, 12)) == date(1985, 12, 4)
    assert swapped(date(1985, 4, 13)) is None  # no 13th month
    assert swapped(date(1985, 4, 4)) is None  # the same date


@pytest.mark.parametrize(
    ("one", "other", "apart"),
    [
        ("johnson", "jonhson", True),  # neighbours swapped
        ("smith", "smyth", True),  # a letter changed
        ("smith", "smiths", True),  # a letter added
        ("garcia", "garca", True),  # a letter dropped
        ("chen", "chen", True),
        ("abcd", "badc", False),  # two swaps
        ("mason", "nixon", False),
        ("smith", "smithson", False),
        ("li", "le", False),  # one- and two-letter names must match
    ],
)
def test_typo_apart(one: str, other: str, apart: bool) -> None:
    assert typo_apart(one, other) is apart
    assert typo_apart(other, one) is apart


def test_names_a_typo_apart_count_like_names_that_sound_alike() -> None:
    # 'Jonhson' and 'Johnson' have different phonetic codes; the typo still counts.
    assert spelled_alike("james jonhson", "James", "Johnson")
    assert spelled_alike("jonhson james", "James", "Johnson")  # transposed names
    assert not spelled_alike("james jonhson", "Mary", "Johnson")
    assert not spelled_alike("", "James", "Johnson")
    typo = score(
        {**row(similarity=0.6, sounds_alike=False, birth_date=PROBE_BIRTH_DATE, phone=None),
         "given_name": "James", "family_name": "Johnson"},
        "james jonhson", PROBE_BIRTH_DATE, None,
    )  # fmt: skip
    assert typo.reasons == ["name similarity 0.60", "names a typo apart", "same birth date"]
    assert (typo.score, typo.likely_duplicate) == (0.77, True)
