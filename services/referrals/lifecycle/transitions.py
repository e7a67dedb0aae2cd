"""The referral state machine: which side may move a referral from one status to another.

The table is data (`transitions.json`, beside this module); this module only loads and applies
it. `decide` is pure: it says whether a change is allowed, or exactly why not (the statuses the
caller's side may move to next, a missing reason, a missing outcome), so the API, the FHIR Task
inbound, the expiry timer and the consent handler all follow the same rules.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

from shared.events.referrals import ReferralOutcome, ReferralReason, ReferralStatus

TABLE_FILE = Path(__file__).with_name("transitions.json")


class Side(StrEnum):
    SENDING = "sending"  # the organisation that referred
    RECEIVING = "receiving"  # the organisation it is addressed to
    SYSTEM = "system"  # Casework itself: expiry, consent revocation


@dataclass(frozen=True)
class Rule:
    """One allowed move, for the sides that may make it (and, if set, only for these reasons)."""

    sides: frozenset[Side]
    reasons: frozenset[ReferralReason] | None = None


@dataclass(frozen=True)
class TransitionTable:
    rules: Mapping[tuple[ReferralStatus, ReferralStatus], tuple[Rule, ...]]
    open: frozenset[ReferralStatus]
    final: frozenset[ReferralStatus]
    reason_required: frozenset[ReferralStatus]
    outcome_required: frozenset[ReferralStatus]
    system_only_reasons: frozenset[ReferralReason]

    def allowed_next(
        self, current: ReferralStatus, sides: Collection[Side]
    ) -> list[ReferralStatus]:
        """The statuses any of `sides` may move a referral in `current` to, in the vocabulary's
        order."""
        return [
            status
            for status in ReferralStatus
            if any(rule.sides & set(sides) for rule in self.rules.get((current, status), ()))
        ]

    def is_final(self, status: ReferralStatus) -> bool:
        return status in self.final


class RefusalKind(StrEnum):
    NOT_ALLOWED = "transition-not-allowed"  # the table has no such move for the caller's side
    REASON_REQUIRED = "reason-required"
    REASON_NOT_ALLOWED = "reason-not-allowed"
    OUTCOME_REQUIRED = "outcome-required"
    OUTCOME_NOT_ALLOWED = "outcome-not-allowed"


@dataclass(frozen=True)
class Refusal:
    kind: RefusalKind
    detail: str
    allowed_next: tuple[ReferralStatus, ...] = ()


@dataclass(frozen=True)
class Allowed:
    side: Side  # the side the move was made as


def decide(
    table: TransitionTable,
    *,
    current: ReferralStatus,
    to: ReferralStatus,
    sides: Collection[Side],
    reason: ReferralReason | None,
    outcome: ReferralOutcome | None,
) -> Allowed | Refusal:
    """Whether a caller acting as any of `sides` may move a referral from `current` to `to`
    with this reason and outcome."""
    allowed_next = tuple(table.allowed_next(current, sides))
    fitting = [
        (rule, side)
        for rule in table.rules.get((current, to), ())
        for side in sorted(rule.sides & set(sides))
    ]
    if not fitting:
        names = ", ".join(allowed_next) or "none"
        return Refusal(
            RefusalKind.NOT_ALLOWED,
            f"A referral cannot go from {current} to {to} by your side "
            f"({', '.join(sorted(sides)) or 'none'}). Allowed next: {names}.",
            allowed_next,
        )
    if to in table.reason_required and reason is None:
        return Refusal(
            RefusalKind.REASON_REQUIRED, f"Moving to {to} needs a reason_code.", allowed_next
        )
    chosen = next(
        (
            side
            for rule, side in fitting
            if reason is None or _reason_fits(table, rule, side, reason)
        ),
        None,
    )
    if chosen is None:
        return Refusal(
            RefusalKind.REASON_NOT_ALLOWED,
            f"The reason {reason} cannot be given by your side for {to}.",
            allowed_next,
        )
    if to in table.outcome_required and outcome is None:
        return Refusal(
            RefusalKind.OUTCOME_REQUIRED,
            f"Moving to {to} records an outcome: got-help or did-not-get-help.",
            allowed_next,
        )
    if outcome is not None and to not in table.final:
        return Refusal(
            RefusalKind.OUTCOME_NOT_ALLOWED,
            f"An outcome is recorded only when a referral closes; {to} is not final.",
            allowed_next,
        )
    return Allowed(chosen)


def _reason_fits(table: TransitionTable, rule: Rule, side: Side, reason: ReferralReason) -> bool:
    if rule.reasons is not None:
        return reason in rule.reasons
    return side is Side.SYSTEM or reason not in table.system_only_reasons


def parse_table(raw: Mapping[str, Any]) -> TransitionTable:
    """The table from its JSON form; a status, side or reason outside the vocabularies, or an
    inconsistent table (a final status in `open`), is a ValueError."""
    rules: dict[tuple[ReferralStatus, ReferralStatus], tuple[Rule, ...]] = {}
    for entry in raw["transitions"]:
        reasons = entry.get("reasons")
        rule = Rule(
            sides=frozenset(Side(side) for side in entry["by"]),
            reasons=frozenset(ReferralReason(r) for r in reasons) if reasons is not None else None,
        )
        to = ReferralStatus(entry["to"])
        for source in entry["from"]:
            key = (ReferralStatus(source), to)
            if key[0] == to:
                raise ValueError(f"a transition from {to} to itself")
            rules[key] = (*rules.get(key, ()), rule)
    open_statuses = frozenset(ReferralStatus(s) for s in raw["open"])
    final = frozenset(ReferralStatus(s) for s in raw["final"])
    if open_statuses & final or open_statuses | final != set(ReferralStatus):
        raise ValueError("every status is either open or final, never both")
    leaving_final = [key for key in rules if key[0] in final and key[1] in open_statuses]
    if leaving_final:
        raise ValueError(f"a final status cannot reopen: {leaving_final}")
    return TransitionTable(
        rules=rules,
        open=open_statuses,
        final=final,
        reason_required=frozenset(ReferralStatus(s) for s in raw["reason_required"]),
        outcome_required=frozenset(ReferralStatus(s) for s in raw["outcome_required"]),
        system_only_reasons=frozenset(ReferralReason(r) for r in raw["system_only_reasons"]),
    )


@cache
def table() -> TransitionTable:
    """The table shipped with the service."""
    return parse_table(json.loads(TABLE_FILE.read_text(encoding="utf-8")))
