"""Caseload weights per risk level: data (risk_weights.json), checked when planning starts."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from shared.events.assessment import RiskLevel

UNKNOWN = "unknown"
WEIGHTS_FILE = Path(__file__).with_name("risk_weights.json")

# Highest risk first: the order a caseload is read in (a case not yet assessed comes last).
RISK_ORDER: tuple[str, ...] = (
    RiskLevel.CRISIS,
    RiskLevel.HIGH,
    RiskLevel.MODERATE,
    RiskLevel.LOW,
    UNKNOWN,
)


def parse_weights(document: object) -> dict[str, Decimal]:
    """Every risk level and `unknown` with a positive weight, and nothing else (ValueError)."""
    weights = document.get("weights") if isinstance(document, dict) else None
    if not isinstance(weights, dict):
        raise ValueError("risk weights: an object `weights` is required")
    expected = set(RISK_ORDER)
    if set(weights) != expected:
        raise ValueError(
            f"risk weights: exactly {sorted(expected)} are required, got {sorted(weights)}"
        )
    parsed: dict[str, Decimal] = {}
    for level, weight in weights.items():
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
            raise ValueError(f"risk weights: {level} must be a positive number")
        parsed[level] = Decimal(str(weight))
    return parsed


def load_weights(path: Path = WEIGHTS_FILE) -> dict[str, Decimal]:
    return parse_weights(json.loads(path.read_text(encoding="utf-8")))


RISK_WEIGHTS: dict[str, Decimal] = load_weights()
