"""Assessment instruments are versioned data: questions, answer options and scoring rules.

Each instrument version is one JSON file in `instruments/`, validated here at import, so a bad
definition stops the service from starting instead of scoring wrongly. A published version is
never edited: a change is a new version (stored assessments name the version they used).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from shared.events.assessment import FlagType, NeedSeverity, RiskLevel

INSTRUMENT_DIR = Path(__file__).resolve().parent / "instruments"

Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
InstrumentId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,62}$")]
VersionName = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,4}(\.[0-9]{1,4}){0,2}$")]
OptionValue = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_]{0,62}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class Definition(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AnswerOption(Definition):
    value: OptionValue = Field(description="What an assessment submits for this answer.")
    label: Text
    points: int = Field(ge=0, le=100, description="What the answer adds to its category.")
    crisis_flag: FlagType | None = Field(
        default=None,
        description="A crisis answer: forces risk `crisis` and raises a crisis flag of this type.",
    )


class Question(Definition):
    id: Identifier
    text: Text
    category: Identifier = Field(description="The need category (or life domain) it counts to.")
    required: bool = True
    options: list[AnswerOption] = Field(min_length=2)

    @model_validator(mode="after")
    def _option_values_are_unique(self) -> Self:
        values = [option.value for option in self.options]
        if len(values) != len(set(values)):
            raise ValueError(f"question {self.id}: option values repeat")
        return self

    def option(self, value: str) -> AnswerOption | None:
        return next((option for option in self.options if option.value == value), None)


class Category(Definition):
    id: Identifier
    title: Text


class SeverityThreshold(Definition):
    min_points: int = Field(ge=1)
    severity: NeedSeverity


class NeedRule(Definition):
    """A category's points reach a threshold: the highest one reached gives the severity."""

    category: Identifier
    thresholds: list[SeverityThreshold] = Field(min_length=1)

    @model_validator(mode="after")
    def _thresholds_ascend(self) -> Self:
        points = [t.min_points for t in self.thresholds]
        if points != sorted(set(points)):
            raise ValueError(f"need rule {self.category}: thresholds must strictly ascend")
        return self


class RiskThreshold(Definition):
    min_points: int = Field(ge=0)
    risk_level: RiskLevel


class Scoring(Definition):
    needs: list[NeedRule]
    risk: list[RiskThreshold] = Field(
        min_length=1,
        description="On the total points; the first must start at 0. A crisis answer forces "
        "`crisis` whatever the total.",
    )
    priority: dict[RiskLevel, int] = Field(description="Priority per risk level; 1 is first.")

    @model_validator(mode="after")
    def _complete(self) -> Self:
        points = [t.min_points for t in self.risk]
        if points[0] != 0 or points != sorted(set(points)):
            raise ValueError("risk thresholds must start at 0 and strictly ascend")
        if set(self.priority) != set(RiskLevel):
            raise ValueError("priority must map every risk level")
        if any(value < 1 for value in self.priority.values()):
            raise ValueError("priorities start at 1")
        return self


class Instrument(Definition):
    """One version of a standard instrument."""

    id: InstrumentId
    version: VersionName
    title: Text
    description: Text
    source: Text | None = Field(default=None, description="What the items are based on.")
    categories: list[Category] = Field(min_length=1)
    questions: list[Question] = Field(min_length=1)
    scoring: Scoring

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        categories = {category.id for category in self.categories}
        if len(categories) != len(self.categories):
            raise ValueError("category ids repeat")
        question_ids = [question.id for question in self.questions]
        if len(question_ids) != len(set(question_ids)):
            raise ValueError("question ids repeat")
        for question in self.questions:
            if question.category not in categories:
                raise ValueError(f"question {question.id}: unknown category {question.category}")
            crisis = any(option.crisis_flag for option in question.options)
            if crisis and not question.required:
                raise ValueError(f"question {question.id}: a crisis question must be required")
        ruled = [rule.category for rule in self.scoring.needs]
        if len(ruled) != len(set(ruled)) or not set(ruled) <= categories:
            raise ValueError("need rules must name each known category at most once")
        return self

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)


class InstrumentSummary(BaseModel):
    id: str
    version: str
    title: str


def load_instruments(directory: Path) -> dict[tuple[str, str], Instrument]:
    """Every `<id>-<version>.json` in the directory, validated; the file name must match."""
    instruments: dict[tuple[str, str], Instrument] = {}
    for path in sorted(directory.glob("*.json")):
        instrument = Instrument.model_validate_json(path.read_text(encoding="utf-8"))
        if path.stem != f"{instrument.id}-{instrument.version}":
            raise ValueError(f"{path.name}: expected {instrument.id}-{instrument.version}.json")
        instruments[(instrument.id, instrument.version)] = instrument
    return instruments


INSTRUMENTS = load_instruments(INSTRUMENT_DIR)
