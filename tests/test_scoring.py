"""Scoring as pure functions: worked examples with their exact explanations, answer checks, and
instrument definitions that must be refused at load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from services.intake.assessments.definitions import (
    INSTRUMENT_DIR,
    INSTRUMENTS,
    Instrument,
    load_instruments,
)
from services.intake.assessments.scoring import AnswerError, Contribution, check_answers, score
from shared.events.assessment import FlagType, Need, NeedSeverity, RiskLevel

SCREENING = INSTRUMENTS[("needs-risk-screening", "1.0")]
MATRIX = INSTRUMENTS[("self-sufficiency-matrix", "1.0")]

# Every required screening question, answered with its no-need option.
NO_NEEDS = {
    "living_situation": "steady",
    "homeless_past_year": "no",
    "safe_place_tonight": "yes",
    "food_worry": "never_true",
    "food_ran_out": "never_true",
    "paying_for_basics": "not_hard",
    "transportation": "no",
    "utilities_shutoff": "no",
    "physically_hurt": "never",
    "threatened_with_harm": "never",
    "danger_at_home": "no",
    "lonely": "never",
    "little_interest": "not_at_all",
    "feeling_down": "not_at_all",
    "suicidal_thoughts": "no",
    "child_in_danger": "no_children",
    "child_needs_unmet": "no_children",
}


def tiny(**changes: Any) -> dict[str, Any]:
    """A two-category instrument small enough to check by hand."""
    definition: dict[str, Any] = {
        "id": "tiny",
        "version": "1.0",
        "title": "Tiny",
        "description": "For tests.",
        "categories": [{"id": "food", "title": "Food"}, {"id": "safety", "title": "Safety"}],
        "questions": [
            {
                "id": "meals",
                "text": "Meals a day?",
                "category": "food",
                "options": [
                    {"value": "three", "label": "Three", "points": 0},
                    {"value": "one", "label": "One", "points": 2},
                    {"value": "none", "label": "None", "points": 5},
                ],
            },
            {
                "id": "pantry",
                "text": "Pantry empty?",
                "category": "food",
                "required": False,
                "options": [
                    {"value": "no", "label": "No", "points": 0},
                    {"value": "yes", "label": "Yes", "points": 1},
                ],
            },
            {
                "id": "afraid",
                "text": "Afraid at home?",
                "category": "safety",
                "options": [
                    {"value": "no", "label": "No", "points": 0},
                    {"value": "yes", "label": "Yes", "points": 1, "crisis_flag": "violence"},
                ],
            },
        ],
        "scoring": {
            "needs": [
                {
                    "category": "food",
                    "thresholds": [
                        {"min_points": 2, "severity": "moderate"},
                        {"min_points": 3, "severity": "high"},
                    ],
                }
            ],
            "risk": [
                {"min_points": 0, "risk_level": "low"},
                {"min_points": 3, "risk_level": "moderate"},
                {"min_points": 6, "risk_level": "high"},
            ],
            "priority": {"low": 4, "moderate": 3, "high": 2, "crisis": 1},
        },
    }
    definition.update(changes)
    return definition


TINY = Instrument.model_validate(tiny())


def test_a_worked_example_explains_every_point() -> None:
    result = score(TINY, {"meals": "one", "pantry": "yes", "afraid": "no"})

    assert result.needs == [Need(category="food", severity=NeedSeverity.HIGH)]
    assert result.total_points == 3
    assert (result.risk_level, result.priority, result.crisis) == (RiskLevel.MODERATE, 3, False)
    assert result.crisis_flags == []
    assert result.explanation == [
        Contribution(
            question_id="meals", answer="one", points=2, counted_towards=["need:food", "risk:total"]
        ),
        Contribution(
            question_id="pantry",
            answer="yes",
            points=1,
            counted_towards=["need:food", "risk:total"],
        ),
    ]


def test_thresholds_pick_the_highest_reached_and_nothing_below_the_first() -> None:
    assert score(TINY, {"meals": "one", "afraid": "no"}).needs == [
        Need(category="food", severity=NeedSeverity.MODERATE)
    ]
    low = score(TINY, {"meals": "three", "afraid": "no"})
    assert (low.needs, low.total_points, low.risk_level, low.explanation) == (
        [],
        0,
        RiskLevel.LOW,
        [],
    )
    assert score(TINY, {"meals": "none", "pantry": "yes", "afraid": "no"}).risk_level == "high"


def test_a_crisis_answer_forces_crisis_whatever_the_total() -> None:
    result = score(TINY, {"meals": "three", "afraid": "yes"})

    assert result.total_points == 1  # the total alone would say low
    assert (result.risk_level, result.priority, result.crisis) == (RiskLevel.CRISIS, 1, True)
    assert result.crisis_flags == [FlagType.VIOLENCE]
    assert result.explanation == [
        Contribution(
            question_id="afraid",
            answer="yes",
            points=1,
            counted_towards=["need:safety", "risk:total", "risk:crisis"],
        )
    ]


def test_the_screening_worked_example() -> None:
    answers = {
        **NO_NEEDS,
        "living_situation": "worried",
        "food_worry": "sometimes_true",
        "food_ran_out": "often_true",
        "paying_for_basics": "very_hard",
        "employment_status": "unemployed",
    }
    result = score(SCREENING, answers)

    assert [(n.category, n.severity) for n in result.needs] == [
        ("housing_instability", "moderate"),
        ("food_insecurity", "high"),
        ("financial_strain", "high"),
        ("employment", "moderate"),
    ]
    assert result.total_points == 10
    assert (result.risk_level, result.priority) == (RiskLevel.MODERATE, 3)
    assert [c.model_dump() for c in result.explanation] == [
        {
            "question_id": "living_situation",
            "answer": "worried",
            "points": 2,
            "counted_towards": ["need:housing_instability", "risk:total"],
        },
        {
            "question_id": "food_worry",
            "answer": "sometimes_true",
            "points": 1,
            "counted_towards": ["need:food_insecurity", "risk:total"],
        },
        {
            "question_id": "food_ran_out",
            "answer": "often_true",
            "points": 2,
            "counted_towards": ["need:food_insecurity", "risk:total"],
        },
        {
            "question_id": "paying_for_basics",
            "answer": "very_hard",
            "points": 3,
            "counted_towards": ["need:financial_strain", "risk:total"],
        },
        {
            "question_id": "employment_status",
            "answer": "unemployed",
            "points": 2,
            "counted_towards": ["need:employment", "risk:total"],
        },
    ]


@pytest.mark.parametrize(
    ("question", "answer", "flag"),
    [
        ("suicidal_thoughts", "yes", FlagType.SAFETY),
        ("danger_at_home", "yes", FlagType.VIOLENCE),
        ("child_in_danger", "yes", FlagType.SAFETY),
        ("safe_place_tonight", "no", FlagType.SAFETY),
    ],
)
def test_each_screening_crisis_item_forces_crisis(question: str, answer: str, flag: str) -> None:
    result = score(SCREENING, {**NO_NEEDS, question: answer})

    assert (result.risk_level, result.priority, result.crisis) == ("crisis", 1, True)
    assert result.crisis_flags == [flag]
    assert [(c.question_id, c.counted_towards[-1]) for c in result.explanation] == [
        (question, "risk:crisis")
    ]


def test_two_crisis_answers_of_two_kinds_raise_two_flag_types() -> None:
    result = score(SCREENING, {**NO_NEEDS, "danger_at_home": "yes", "suicidal_thoughts": "yes"})
    assert result.crisis_flags == [FlagType.VIOLENCE, FlagType.SAFETY]


def test_the_matrix_scores_domains_one_to_five() -> None:
    answers = {question.id: "5" for question in MATRIX.questions if question.required}
    assert score(MATRIX, answers).risk_level == "low"

    answers |= {"housing": "1", "income": "2", "food": "3", "employment": "4"}
    result = score(MATRIX, answers)
    assert [(n.category, n.severity) for n in result.needs] == [
        ("housing", "high"),
        ("income", "moderate"),
        ("food", "low"),
    ]
    assert result.total_points == 4 + 3 + 2 + 1
    assert (result.risk_level, result.priority) == ("moderate", 3)
    assert [(c.question_id, c.points) for c in result.explanation] == [
        ("housing", 4),
        ("income", 3),
        ("employment", 1),
        ("food", 2),
    ]
    assert score(MATRIX, {**answers, "safety": "1"}).crisis_flags == [FlagType.SAFETY]


def test_check_answers_names_each_bad_field() -> None:
    errors = check_answers(TINY, {"meals": "two", "colour": "blue"})

    assert errors == [
        AnswerError(field="body.answers.meals", message="must be one of: three, one, none", code="not_an_option"),
        AnswerError(field="body.answers.colour", message="unknown question", code="unknown"),
        AnswerError(field="body.answers.afraid", message="this question is required", code="missing"),
    ]  # fmt: skip
    assert check_answers(TINY, {"meals": "one", "afraid": "no"}) == []  # pantry is optional


def test_score_refuses_answers_that_were_not_checked() -> None:
    with pytest.raises(ValueError, match="check them first"):
        score(TINY, {"meals": "seven", "afraid": "no"})


BROKEN: dict[str, dict[str, Any]] = {
    "an unknown category": {"categories": [{"id": "food", "title": "Food"}]},
    "a crisis question that may be skipped": {
        "questions": [
            {
                "id": "afraid",
                "text": "Afraid?",
                "category": "safety",
                "required": False,
                "options": [
                    {"value": "no", "label": "No", "points": 0},
                    {"value": "yes", "label": "Yes", "points": 1, "crisis_flag": "safety"},
                ],
            }
        ]
    },
    "repeated option values": {
        "questions": [
            {
                "id": "meals",
                "text": "Meals?",
                "category": "food",
                "options": [
                    {"value": "one", "label": "One", "points": 0},
                    {"value": "one", "label": "Uno", "points": 1},
                ],
            }
        ]
    },
    "risk thresholds not from 0": {
        "scoring": {
            "needs": [],
            "risk": [{"min_points": 1, "risk_level": "low"}],
            "priority": {"low": 4, "moderate": 3, "high": 2, "crisis": 1},
        }
    },
    "a priority missing": {
        "scoring": {
            "needs": [],
            "risk": [{"min_points": 0, "risk_level": "low"}],
            "priority": {"low": 4, "moderate": 3, "high": 2},
        }
    },
    "descending need thresholds": {
        "scoring": {
            "needs": [
                {
                    "category": "food",
                    "thresholds": [
                        {"min_points": 3, "severity": "high"},
                        {"min_points": 2, "severity": "moderate"},
                    ],
                }
            ],
            "risk": [{"min_points": 0, "risk_level": "low"}],
            "priority": {"low": 4, "moderate": 3, "high": 2, "crisis": 1},
        }
    },
    "an unknown field": {"weights": {}},
    "an unknown flag type": {
        "questions": [
            {
                "id": "afraid",
                "text": "Afraid?",
                "category": "safety",
                "options": [
                    {"value": "no", "label": "No", "points": 0},
                    {"value": "yes", "label": "Yes", "points": 1, "crisis_flag": "panic"},
                ],
            }
        ]
    },
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_definition_is_refused_at_load(case: str) -> None:
    with pytest.raises(ValidationError):
        Instrument.model_validate(tiny(**BROKEN[case]))


def test_the_file_name_must_match_the_id_and_version(tmp_path: Path) -> None:
    (tmp_path / "tiny-1.0.json").write_text(json.dumps(tiny()))
    assert set(load_instruments(tmp_path)) == {("tiny", "1.0")}

    (tmp_path / "tiny-2.0.json").write_text(json.dumps(tiny()))
    with pytest.raises(ValueError, match=r"tiny-2\.0\.json: expected tiny-1\.0\.json"):
        load_instruments(tmp_path)


def test_the_shipped_instruments_are_all_loaded() -> None:
    assert set(INSTRUMENTS) == {
        (path.stem.rsplit("-", 1)[0], path.stem.rsplit("-", 1)[1])
        for path in INSTRUMENT_DIR.glob("*.json")
    }
    assert set(INSTRUMENTS) >= {("needs-risk-screening", "1.0"), ("self-sufficiency-matrix", "1.0")}
    categories = {category.id for category in SCREENING.categories}
    assert categories >= {
        "food_insecurity", "housing_instability", "homelessness", "financial_strain",
        "employment", "transportation", "utilities", "intimate_partner_violence",
        "social_isolation", "mental_health", "substance_use", "legal", "child_safety",
    }  # fmt: skip
    assert {question.id for question in MATRIX.questions} >= {
        "housing", "income", "employment", "food", "health", "mental_health", "substance_use",
        "safety", "child_care", "transportation",
    }  # fmt: skip
