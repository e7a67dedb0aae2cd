"""How often a case is reviewed, by its risk level: data (cadence.json), not code."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path

from pydantic import BaseModel, Field

from shared.events.assessment import RiskLevel

CADENCE_FILE = Path(__file__).resolve().parent / "cadence.json"


class Cadence(BaseModel):
    description: str
    days_by_risk_level: dict[RiskLevel, int] = Field(min_length=len(RiskLevel))
    without_risk_level: int = Field(ge=1)

    def interval(self, risk_level: RiskLevel | None) -> timedelta:
        if risk_level is None:
            return timedelta(days=self.without_risk_level)
        return timedelta(days=self.days_by_risk_level[risk_level])


@cache
def cadence() -> Cadence:
    return Cadence.model_validate(json.loads(CADENCE_FILE.read_text()))


def next_review_due(risk_level: RiskLevel | None, after: datetime) -> datetime:
    return after + cadence().interval(risk_level)
