"""Scoring: pure functions from an instrument's rules and a set of answers to a result that says
why. No I/O, no clock: the same answers on the same instrument version always give the same
result, and every point in it can be traced to an answer in `explanation`."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, Field

from services.intake.assessments.definitions import Instrument
from shared.events.assessment import FlagType, Need, RiskLevel

RISK_TOTAL = "risk:total"
RISK_CRISIS = "risk:crisis"


def need_target(category: str) -> str:
    return f"need:{category}"


class Contribution(BaseModel):
    """One answer that counted, and what it counted towards."""

    question_id: str
    answer: str
    points: int
    counted_towards: list[str] = Field(
        description="`need:<category>` (the category's points), `risk:total` (the total the "
        "risk level is read from), `risk:crisis` (a crisis answer: risk is `crisis`)."
    )


class ScoreResult(BaseModel):
    needs: list[Need]
    total_points: int
    crisis: bool = Field(description="A crisis answer was given: risk is `crisis`.")
    crisis_flags: list[FlagType] = Field(description="The flag types the crisis answers raise.")
    risk_level: RiskLevel
    priority: int
    explanation: list[Contribution]


class AnswerError(BaseModel):
    field: str
    message: str
    code: str


def check_answers(
    instrument: Instrument, answers: Mapping[str, str], *, complete: bool = True
) -> list[AnswerError]:
    """Every answer names a question of the instrument and one of its options; every required
    question is answered (unless `complete` is False: a draft). Empty when the answers can be
    scored."""
    errors: list[AnswerError] = []
    for question_id, value in answers.items():
        field = f"body.answers.{question_id}"
        question = instrument.question(question_id)
        if question is None:
            errors.append(AnswerError(field=field, message="unknown question", code="unknown"))
        elif question.option(value) is None:
            allowed = ", ".join(option.value for option in question.options)
            errors.append(
                AnswerError(field=field, message=f"must be one of: {allowed}", code="not_an_option")
            )
    for question in instrument.questions if complete else ():
        if question.required and question.id not in answers:
            errors.append(
                AnswerError(
                    field=f"body.answers.{question.id}",
                    message="this question is required",
                    code="missing",
                )
            )
    return errors


def unanswered(instrument: Instrument, answers: Mapping[str, str]) -> list[str]:
    """The required questions still without an answer, in the instrument's order."""
    return [q.id for q in instrument.questions if q.required and q.id not in answers]


def crisis_flags_of(instrument: Instrument, answers: Mapping[str, str]) -> list[FlagType]:
    """The flag types the crisis answers among `answers` raise (complete or not), in the
    instrument's order, each once."""
    flags: list[FlagType] = []
    for question in instrument.questions:
        option = question.option(answers[question.id]) if question.id in answers else None
        if (
            option is not None
            and option.crisis_flag is not None
            and option.crisis_flag not in flags
        ):
            flags.append(option.crisis_flag)
    return flags


def priority_of(instrument: Instrument, risk_level: RiskLevel) -> int:
    return instrument.scoring.priority[risk_level]


def score(instrument: Instrument, answers: Mapping[str, str]) -> ScoreResult:
    """The result of answers that passed `check_answers` (ValueError otherwise)."""
    if check_answers(instrument, answers):
        raise ValueError("the answers do not fit the instrument; check them first")
    category_points: dict[str, int] = {}
    explanation: list[Contribution] = []
    crisis_flags = crisis_flags_of(instrument, answers)
    for question in instrument.questions:  # instrument order: the explanation reads like the form
        value = answers.get(question.id)
        if value is None:
            continue
        option = question.option(value)
        assert option is not None
        category_points[question.category] = (
            category_points.get(question.category, 0) + option.points
        )
        if option.points == 0 and option.crisis_flag is None:
            continue
        counted_towards = [need_target(question.category), RISK_TOTAL]
        if option.crisis_flag is not None:
            counted_towards.append(RISK_CRISIS)
        explanation.append(
            Contribution(
                question_id=question.id,
                answer=value,
                points=option.points,
                counted_towards=counted_towards,
            )
        )

    needs: list[Need] = []
    for rule in instrument.scoring.needs:
        points = category_points.get(rule.category, 0)
        reached = [t.severity for t in rule.thresholds if points >= t.min_points]
        if reached:
            needs.append(Need(category=rule.category, severity=reached[-1]))

    total = sum(category_points.values())
    risk_level = [t.risk_level for t in instrument.scoring.risk if total >= t.min_points][-1]
    if crisis_flags:
        risk_level = RiskLevel.CRISIS
    return ScoreResult(
        needs=needs,
        total_points=total,
        crisis=bool(crisis_flags),
        crisis_flags=crisis_flags,
        risk_level=risk_level,
        priority=priority_of(instrument, risk_level),
        explanation=explanation,
    )
