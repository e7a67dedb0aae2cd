"""Rules as data: which event (and condition) notifies whom, with which message, on which
channels, how urgently. The service ships a rule set (default_rules.json) and a message
catalogue (messages.json); an organisation's admins may replace the rules (and add messages)
for their organisation through the API. Every rule set is validated before it is used.
"""

from __future__ import annotations

import json
import string
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import JSONB

from services.notifications.channels import CHANNELS
from services.notifications.inbox.models import Urgency
from services.notifications.rules.triggers import TRIGGERS

HERE = Path(__file__).parent
# Every message must read in each of these (the languages the service speaks).
LANGUAGES: tuple[str, ...] = ("en", "es", "pt")
MAX_RULES = 200

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
Scalar = str | int | bool
Template = Annotated[str, StringConstraints(min_length=1, max_length=500)]


class RecipientKind(StrEnum):
    ASSIGNED_WORKER = "assigned_worker"  # the worker the client's case is assigned to
    TEAM_SUPERVISORS = "team_supervisors"  # active supervisors of the case's (or client's) team
    ON_CALL = "on_call"  # the organisation's on-call list
    # The on-call list, only when the client has no assigned worker (a crisis with no case).
    ON_CALL_WHEN_UNASSIGNED = "on_call_when_unassigned"
    # The receiving organisation of a referral: its on-call list (partner users are not known
    # individually here; agency systems hear through webhooks).
    RECEIVING_ORGANISATION = "receiving_organisation"
    REQUESTER = "requester"  # who made the referral, requested the approval or the transfer
    TRANSFER_RECEIVER = "transfer_receiver"  # the worker a transfer is offered to


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Slug
    event_type: str = Field(
        max_length=200, description="An event type notifications consumes, or a timer moment."
    )
    when: dict[Slug, Scalar | list[Scalar]] = Field(
        default_factory=dict,
        max_length=10,
        description="Every field must equal the value (or one of the listed values).",
    )
    recipients: list[RecipientKind] = Field(min_length=1, max_length=7)
    message: Slug = Field(description="A message key of the catalogue (or of `messages`).")
    channels: list[Slug] = Field(default_factory=lambda: ["inbox"], max_length=10)
    urgency: Urgency
    kind: Slug = Field(description="What the inbox item is, e.g. `crisis_flag`.")

    def matches(self, data: dict[str, Any]) -> bool:
        for field, expected in self.when.items():
            accepted = expected if isinstance(expected, list) else [expected]
            if data.get(field) not in accepted:
                return False
        return True


class Timing(BaseModel):
    """When the timers of reminders and escalations are due (per organisation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    crisis_unacknowledged_minutes: int = Field(
        default=15,
        ge=1,
        le=24 * 60,
        description="A crisis flag nobody acknowledged escalates "
        "after this long, and again after as long for every further level.",
    )
    crisis_escalation_levels: int = Field(default=2, ge=0, le=5)
    review_due_soon_hours: int = Field(
        default=48, ge=1, le=24 * 30, description="The review reminder this long before due."
    )
    review_overdue_escalation_hours: int = Field(
        default=72,
        ge=1,
        le=24 * 30,
        description="A review overdue by this long goes to the team's supervisors.",
    )


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: list[Rule] = Field(max_length=MAX_RULES)
    timing: Timing = Field(default_factory=Timing)
    messages: dict[Slug, dict[Slug, Template]] = Field(
        default_factory=dict,
        max_length=100,
        description="Messages of your own (key -> language -> template), beside the catalogue; "
        "a template shows only `{parameter}`s its event offers.",
    )


class RuleSetPublic(RuleSet):
    organization_id: str
    source: str = Field(description="`default` (shipped with the service) or `organisation`.")
    version: int


class RuleProblem(BaseModel):
    location: list[str | int]
    message: str


def catalogue() -> dict[str, dict[str, str]]:
    return _catalogue()


@cache
def _catalogue() -> dict[str, dict[str, str]]:
    loaded: dict[str, dict[str, str]] = json.loads((HERE / "messages.json").read_text())
    return loaded


def _template_fields(template: str) -> list[str] | None:
    """The `{names}` a template shows; None when it is not a plain template (attribute or
    index access, conversions and format specs are refused)."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return None
    for _text, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            return None
        names.append(name)
    return names


def problems_of(rule_set: RuleSet) -> list[RuleProblem]:
    """What makes a rule set unusable: an unknown event type or condition field, a channel
    the service does not have, a message missing in a language or showing what its event does
    not offer. Empty when it is usable."""
    found: list[RuleProblem] = []
    messages = {**catalogue(), **rule_set.messages}
    seen: set[str] = set()
    for index, rule in enumerate(rule_set.rules):
        where: list[str | int] = ["body", "rules", index]
        if rule.id in seen:
            found.append(RuleProblem(location=[*where, "id"], message="duplicate rule id"))
        seen.add(rule.id)
        trigger = TRIGGERS.get(rule.event_type)
        if trigger is None:
            found.append(
                RuleProblem(
                    location=[*where, "event_type"],
                    message=f"unknown event type; known: {', '.join(sorted(TRIGGERS))}",
                )
            )
            continue
        for field in rule.when:
            if field not in trigger.fields:
                found.append(
                    RuleProblem(
                        location=[*where, "when", field],
                        message=f"{rule.event_type} has no field {field}",
                    )
                )
        for channel in rule.channels:
            if channel not in CHANNELS:
                found.append(
                    RuleProblem(
                        location=[*where, "channels"],
                        message=f"unknown channel {channel}; known: {', '.join(sorted(CHANNELS))}",
                    )
                )
        templates = messages.get(rule.message)
        if templates is None:
            found.append(
                RuleProblem(location=[*where, "message"], message=f"no message {rule.message}")
            )
            continue
        for language in LANGUAGES:
            template = templates.get(language)
            if template is None:
                found.append(
                    RuleProblem(
                        location=[*where, "message"],
                        message=f"message {rule.message} has no template in {language}",
                    )
                )
                continue
            fields = _template_fields(template)
            if fields is None:
                found.append(
                    RuleProblem(
                        location=["body", "messages", rule.message, language],
                        message="a template shows `{parameter}` names only",
                    )
                )
                continue
            for name in fields:
                if name not in trigger.parameters:
                    found.append(
                        RuleProblem(
                            location=["body", "messages", rule.message, language],
                            message=f"{rule.event_type} offers no parameter {name}",
                        )
                    )
    return found


def render(
    rule_set: RuleSet | None, message_key: str, language: str, parameters: dict[str, Any]
) -> str:
    """The message in the language (English when the language has none), its parameters
    filled in; a parameter that is missing shows as `?`."""
    messages = {**catalogue(), **(rule_set.messages if rule_set else {})}
    templates = messages.get(message_key) or {}
    template = templates.get(language) or templates.get("en")
    if template is None:
        return message_key
    values = {name: parameters.get(name, "?") for name in (_template_fields(template) or [])}
    try:
        return template.format(**values)
    except (KeyError, ValueError, IndexError):
        return message_key


@cache
def default_rules() -> RuleSet:
    rule_set = RuleSet.model_validate_json((HERE / "default_rules.json").read_text())
    problems = problems_of(rule_set)
    if problems:
        raise ValueError(f"the shipped notification rules are invalid: {problems}")
    return rule_set


def rule_sets_table(metadata: MetaData) -> Table:
    """An organisation's own rules, replacing the shipped ones for it."""
    return Table(
        "rule_sets",
        metadata,
        Column("organization_id", Text, primary_key=True),
        Column("document", JSONB, nullable=False),
        Column("version", Integer, nullable=False),
        Column("updated_by", Text, nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
    )
