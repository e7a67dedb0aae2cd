"""From what happened to who is told: the event handlers and timer handlers of notifications.

An occurrence (an event, or a moment one of our timers marks) is matched against the rules in
force for its organisation; each matching rule names recipients, which are resolved from what
this service knows (the client's access facts, cases, the staff directory, on-call lists); each
recipient gets one notification per occurrence (the first matching rule wins), now, or at the
end of their quiet hours unless it is urgent (crisis or high). Everything happens in the
transaction of the consumer (or of the timer's firing): a notification exists exactly when the
event was processed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import asyncpg

from services.notifications.directory import service as directory
from services.notifications.inbox.models import URGENT, Draft, Urgency
from services.notifications.inbox.service import deliver
from services.notifications.preferences import service as preferences
from services.notifications.preferences.models import quiet_until
from services.notifications.rules.models import RecipientKind, RuleSet
from services.notifications.rules.service import rules_for
from services.notifications.rules.triggers import FLAG_UNACKNOWLEDGED, REVIEW_REMINDER, TRIGGERS
from shared import client_refs
from shared.auth import facts
from shared.events.assessment import FlagAcknowledged, ProtectedFlagRaised
from shared.events.contracts import CaseAssigned, ClientRegistered
from shared.events.envelope import Event
from shared.events.planning import (
    ApprovalDecided,
    ApprovalRequested,
    CaseClosed,
    CaseOpened,
    ReviewCompleted,
    ReviewScheduled,
    TransferAnswered,
    TransferRequested,
    WorkerUpdated,
)
from shared.events.referrals import ReferralClosed, ReferralMade, ReferralStatusChanged
from shared.messaging.consumer import Handler
from shared.timers import Timer, TimerHandler, cancel_timer, schedule_timer

log = logging.getLogger(__name__)

DELAYED_DELIVERY = "notifications.deliver"
CRISIS_ESCALATION = "notifications.crisis-escalation"
REVIEW_TIMER = "notifications.review"
REVIEW_STAGES = ("due_soon", "overdue", "overdue_escalated")


@dataclass(frozen=True)
class Occurrence:
    trigger: str
    data: dict[str, Any]
    organization_id: str
    source_id: str
    at: datetime
    client_id: UUID | None = None
    team_id: str | None = None
    assigned_worker: str | None = None
    requester: str | None = None
    receiving_organization_id: str | None = None
    transfer_receiver: str | None = None


async def _recipients(
    connection: asyncpg.Connection, kinds: list[RecipientKind], occurrence: Occurrence
) -> list[tuple[str, str]]:
    """(organisation, user id) of each recipient, in the rule's order, each once."""
    org = occurrence.organization_id
    found: list[tuple[str, str]] = []
    for kind in kinds:
        if kind is RecipientKind.ASSIGNED_WORKER and occurrence.assigned_worker:
            found.append((org, occurrence.assigned_worker))
        elif kind is RecipientKind.TEAM_SUPERVISORS:
            supervisors = await directory.team_supervisors(connection, org, occurrence.team_id)
            found += [(org, user) for user in supervisors]
        elif kind is RecipientKind.ON_CALL or (
            kind is RecipientKind.ON_CALL_WHEN_UNASSIGNED and not occurrence.assigned_worker
        ):
            found += [(org, user) for user in await directory.on_call(connection, org)]
        elif kind is RecipientKind.RECEIVING_ORGANISATION and occurrence.receiving_organization_id:
            receiving = occurrence.receiving_organization_id
            found += [(receiving, user) for user in await directory.on_call(connection, receiving)]
        elif kind is RecipientKind.REQUESTER and occurrence.requester:
            found.append((org, occurrence.requester))
        elif kind is RecipientKind.TRANSFER_RECEIVER and occurrence.transfer_receiver:
            found.append((org, occurrence.transfer_receiver))
    return list(dict.fromkeys(found))


async def notify(connection: asyncpg.Connection, occurrence: Occurrence) -> RuleSet:
    """Apply the organisation's rules to the occurrence; the rules applied (for timings)."""
    rule_set = await rules_for(connection, occurrence.organization_id)
    trigger = TRIGGERS[occurrence.trigger]
    told: set[tuple[str, str]] = set()
    for rule in rule_set.rules:
        if rule.event_type != occurrence.trigger or not rule.matches(occurrence.data):
            continue
        draft = Draft(
            kind=rule.kind,
            subject_type=trigger.subject_type,
            subject_id=str(occurrence.data.get(trigger.subject_field)),
            client_id=occurrence.client_id,
            urgency=rule.urgency,
            message_key=rule.message,
            parameters={
                name: value
                for name, value in occurrence.data.items()
                if name in trigger.parameters and isinstance(value, str | int | bool | float)
            },
            rule_id=rule.id,
            source_event_id=occurrence.source_id,
            channels=tuple(rule.channels),
        )
        for organization_id, user_id in await _recipients(connection, rule.recipients, occurrence):
            if (organization_id, user_id) in told:
                continue  # one notification per person per occurrence: the first rule's
            told.add((organization_id, user_id))
            await send(connection, organization_id, user_id, draft, occurrence.at)
    return rule_set


async def send(
    connection: asyncpg.Connection, organization_id: str, user_id: str, draft: Draft, at: datetime
) -> None:
    """Deliver now, or when the recipient's quiet hours end (never later for urgent ones)."""
    chosen = await preferences.load(connection, organization_id=organization_id, user_id=user_id)
    if draft.urgency not in URGENT and chosen is not None:
        until = quiet_until(chosen.quiet_hours, at)
        if until is not None:
            await schedule_timer(
                connection,
                kind=DELAYED_DELIVERY,
                key=f"{organization_id}|{user_id}|{draft.source_event_id}",
                due_at=until,
                payload={"organization_id": organization_id, "user_id": user_id, **_dump(draft)},
            )
            return
    await deliver(
        connection,
        recipient=preferences.recipient_of(organization_id, user_id, chosen),
        draft=replace(draft, channels=preferences.channels_for(draft, chosen)),
        now=at,
    )


def _dump(draft: Draft) -> dict[str, Any]:
    return {
        "kind": draft.kind,
        "subject_type": draft.subject_type,
        "subject_id": draft.subject_id,
        "client_id": str(draft.client_id) if draft.client_id else None,
        "urgency": draft.urgency.value,
        "message_key": draft.message_key,
        "parameters": draft.parameters,
        "rule_id": draft.rule_id,
        "source_event_id": draft.source_event_id,
        "channels": list(draft.channels),
    }


async def on_delayed_delivery(connection: asyncpg.Connection, timer: Timer) -> None:
    payload = dict(timer.payload)
    organization_id, user_id = payload.pop("organization_id"), payload.pop("user_id")
    draft = Draft(
        kind=payload["kind"],
        subject_type=payload["subject_type"],
        subject_id=payload["subject_id"],
        client_id=UUID(payload["client_id"]) if payload["client_id"] else None,
        urgency=Urgency(payload["urgency"]),
        message_key=payload["message_key"],
        parameters=payload["parameters"],
        rule_id=payload["rule_id"],
        source_event_id=payload["source_event_id"],
        channels=tuple(payload["channels"]),
    )
    chosen = await preferences.load(connection, organization_id=organization_id, user_id=user_id)
    await deliver(
        connection,
        recipient=preferences.recipient_of(organization_id, user_id, chosen),
        draft=replace(draft, channels=preferences.channels_for(draft, chosen)),
        now=timer.due_at,
    )


# --- events ----------------------------------------------------------------------------------


def _data(event: Event) -> dict[str, Any]:
    dumped: dict[str, Any] = event.data.model_dump(mode="json")
    return dumped


async def _case_occurrence(
    connection: asyncpg.Connection, event: Event, **extra: Any
) -> Occurrence | None:
    """An occurrence about a client's case in the organisation the event names."""
    data = event.data
    client_id: UUID = data.client_id  # type: ignore[attr-defined]
    organization_id: str | None = getattr(data, "organization_id", None)
    known_org, known_team, owner = await directory.client_owner(connection, client_id)
    organization_id = organization_id or known_org
    if organization_id is None:
        log.warning("no organisation known for a client event", extra={"type": event.type})
        return None
    same = known_org == organization_id
    values: dict[str, Any] = {
        "team_id": getattr(data, "team_id", None) or (known_team if same else None),
        "assigned_worker": owner if same else None,
        **extra,
    }
    return Occurrence(
        trigger=event.type,
        data=_data(event),
        organization_id=organization_id,
        source_id=event.id,
        at=event.time,
        client_id=client_id,
        **values,
    )


async def on_worker_updated(connection: asyncpg.Connection, event: Event) -> None:
    assert isinstance(event.data, WorkerUpdated)
    await directory.apply_worker(connection, event.data)


async def on_client_registered(connection: asyncpg.Connection, event: Event) -> None:
    assert isinstance(event.data, ClientRegistered)
    await client_refs.on_client_registered(connection, event)
    await _notify_pending_crises(connection, event.data.client_id)


async def on_case_opened(connection: asyncpg.Connection, event: Event) -> None:
    assert isinstance(event.data, CaseOpened)
    await directory.apply_case_opened(connection, event.data)


async def on_case_assigned(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, CaseAssigned)
    await facts.on_case_assigned(connection, event)
    await directory.apply_case_assigned(connection, data)
    occurrence = await _case_occurrence(connection, event)
    if occurrence is not None:
        await notify(
            connection, replace(occurrence, assigned_worker=data.worker_id, team_id=data.team_id)
        )
    await _notify_pending_crises(connection, data.client_id)


async def on_case_closed(connection: asyncpg.Connection, event: Event) -> None:
    assert isinstance(event.data, CaseClosed)
    await directory.apply_case_closed(connection, event.data)


async def on_case_event(connection: asyncpg.Connection, event: Event) -> None:
    """Approvals and transfers: rules decide who hears."""
    data = event.data
    extra: dict[str, Any] = {}
    if isinstance(data, ApprovalRequested | TransferRequested):
        extra["requester"] = data.requested_by
    if isinstance(data, TransferRequested):
        extra["transfer_receiver"] = data.to_worker_id
    if isinstance(data, ApprovalDecided | TransferAnswered):
        extra["requester"] = None
    occurrence = await _case_occurrence(connection, event, **extra)
    if occurrence is not None:
        await notify(connection, occurrence)


async def on_review_scheduled(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ReviewScheduled)
    await directory.apply_review(connection, data)
    occurrence = await _case_occurrence(connection, event)
    if occurrence is None:
        return
    occurrence = replace(occurrence, assigned_worker=data.worker_id or occurrence.assigned_worker)
    rule_set = await notify(connection, occurrence)
    timing = rule_set.timing
    moments = {
        "due_soon": data.due_at - timedelta(hours=timing.review_due_soon_hours),
        "overdue": data.due_at,
        "overdue_escalated": data.due_at + timedelta(hours=timing.review_overdue_escalation_hours),
    }
    for stage, due_at in moments.items():
        await schedule_timer(
            connection,
            kind=REVIEW_TIMER,
            key=f"{data.review_id}|{stage}",
            due_at=due_at,
            payload={
                "review_id": str(data.review_id),
                "case_id": str(data.case_id),
                "client_id": str(data.client_id),
                "organization_id": data.organization_id,
                "team_id": data.team_id,
                "worker_id": data.worker_id,
                "due_at": data.due_at.isoformat(),
                "risk_level": data.risk_level.value if data.risk_level else None,
                "stage": stage,
            },
        )


async def on_review_completed(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ReviewCompleted)
    await directory.complete_review(connection, data.review_id, data.completed_at)
    for stage in REVIEW_STAGES:
        await cancel_timer(connection, kind=REVIEW_TIMER, key=f"{data.review_id}|{stage}")


async def on_review_timer(connection: asyncpg.Connection, timer: Timer) -> None:
    payload = timer.payload
    if not await directory.review_is_open(connection, UUID(payload["review_id"])):
        return
    client_id = UUID(payload["client_id"])
    _org, known_team, owner = await directory.client_owner(connection, client_id)
    await notify(
        connection,
        Occurrence(
            trigger=REVIEW_REMINDER,
            data={
                name: payload[name]
                for name in ("review_id", "case_id", "client_id", "due_at", "stage", "risk_level")
            },
            organization_id=payload["organization_id"],
            source_id=f"review:{payload['review_id']}:{payload['stage']}",
            at=timer.due_at,
            client_id=client_id,
            team_id=payload["team_id"] or known_team,
            assigned_worker=payload["worker_id"] or owner,
        ),
    )


async def on_referral_event(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ReferralMade | ReferralStatusChanged | ReferralClosed)
    if isinstance(data, ReferralMade):
        await directory.apply_referral(connection, data)
        requester: str | None = data.made_by
    else:
        requester = await directory.referral_made_by(connection, data.referral_id)
    known_org, known_team, owner = await directory.client_owner(connection, data.client_id)
    same = known_org == data.sending_organization_id
    await notify(
        connection,
        Occurrence(
            trigger=event.type,
            data=_data(event),
            organization_id=data.sending_organization_id,
            source_id=event.id,
            at=event.time,
            client_id=data.client_id,
            team_id=known_team if same else None,
            assigned_worker=owner if same else None,
            requester=requester,
            receiving_organization_id=data.receiving_organization_id,
        ),
    )


# --- crisis flags and their escalation ---------------------------------------------------------


def _escalation_key(flag_id: UUID | str, level: int) -> str:
    return f"{flag_id}|{level}"


async def on_protected_flag_raised(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, ProtectedFlagRaised)
    if not data.crisis:
        return  # a protected flag without a crisis notifies nobody by default
    organization_id, _team, _owner = await directory.client_owner(connection, data.client_id)
    inserted = await connection.fetchval(
        """
        INSERT INTO crisis_flags (flag_id, client_id, raised_at, event_data, event_time, pending,
                                  source_event_id)
        VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7)
        ON CONFLICT (flag_id) DO NOTHING
        RETURNING true
        """,
        data.flag_id,
        data.client_id,
        data.raised_at,
        _data(event),
        event.time,
        organization_id is None,
        event.id,
    )
    if not inserted:
        return  # the same flag published again (a republished assessment): told already
    if organization_id is not None:
        await _raise_crisis(connection, flag_id=data.flag_id)


async def _notify_pending_crises(connection: asyncpg.Connection, client_id: UUID) -> None:
    """Crisis flags raised before this service knew the client's organisation: now."""
    rows = await connection.fetch(
        "UPDATE crisis_flags SET pending = false "
        "WHERE client_id = $1 AND pending AND acknowledged_at IS NULL RETURNING flag_id",
        client_id,
    )
    for row in rows:
        await _raise_crisis(connection, flag_id=row["flag_id"])


async def _crisis_occurrence(
    connection: asyncpg.Connection, flag_id: UUID, *, level: int, at: datetime | None = None
) -> Occurrence | None:
    """The flag as an occurrence: level 0 is its raising (the event's own data), 1, 2, … its
    escalations. None once it is acknowledged, or while its organisation is unknown."""
    row = await connection.fetchrow(
        "SELECT client_id, acknowledged_at, event_data, event_time, source_event_id "
        "FROM crisis_flags WHERE flag_id = $1",
        flag_id,
    )
    if row is None or row["acknowledged_at"] is not None:
        return None
    organization_id, team_id, owner = await directory.client_owner(connection, row["client_id"])
    if organization_id is None:
        return None
    if level == 0:
        trigger, data, source_id = (
            ProtectedFlagRaised.event_type,
            row["event_data"],
            row["source_event_id"],
        )
    else:
        trigger, source_id = FLAG_UNACKNOWLEDGED, f"crisis-escalation:{flag_id}:{level}"
        data = {
            "flag_id": str(flag_id),
            "client_id": str(row["client_id"]),
            "severity": row["event_data"].get("severity"),
            "level": level,
        }
    return Occurrence(
        trigger=trigger,
        data=data,
        organization_id=organization_id,
        source_id=source_id,
        at=at or row["event_time"],
        client_id=row["client_id"],
        team_id=team_id,
        assigned_worker=owner,
    )


async def _raise_crisis(connection: asyncpg.Connection, *, flag_id: UUID) -> None:
    occurrence = await _crisis_occurrence(connection, flag_id, level=0)
    if occurrence is None:
        return
    rule_set = await notify(connection, occurrence)
    await _schedule_escalation(connection, flag_id, level=1, after=occurrence.at, rule_set=rule_set)


async def _schedule_escalation(
    connection: asyncpg.Connection, flag_id: UUID, *, level: int, after: datetime, rule_set: RuleSet
) -> None:
    timing = rule_set.timing
    if level > timing.crisis_escalation_levels:
        return
    await schedule_timer(
        connection,
        kind=CRISIS_ESCALATION,
        key=_escalation_key(flag_id, level),
        due_at=after + timedelta(minutes=timing.crisis_unacknowledged_minutes),
        payload={"flag_id": str(flag_id), "level": level},
    )


async def on_crisis_escalation(connection: asyncpg.Connection, timer: Timer) -> None:
    flag_id = UUID(timer.payload["flag_id"])
    level = int(timer.payload["level"])
    occurrence = await _crisis_occurrence(connection, flag_id, level=level, at=timer.due_at)
    if occurrence is None:
        return  # acknowledged meanwhile
    rule_set = await notify(connection, occurrence)
    await _schedule_escalation(
        connection, flag_id, level=level + 1, after=timer.due_at, rule_set=rule_set
    )


async def on_flag_acknowledged(connection: asyncpg.Connection, event: Event) -> None:
    data = event.data
    assert isinstance(data, FlagAcknowledged)
    await connection.execute(
        "UPDATE crisis_flags SET acknowledged_at = $2, acknowledged_by = $3, pending = false "
        "WHERE flag_id = $1 AND acknowledged_at IS NULL",
        data.flag_id,
        data.acknowledged_at,
        data.acknowledged_by,
    )
    # Every level that may be scheduled (a rule set allows at most five).
    for level in range(1, 6):
        await cancel_timer(
            connection, kind=CRISIS_ESCALATION, key=_escalation_key(data.flag_id, level)
        )


HANDLERS: dict[str, Handler] = {
    **client_refs.CLIENT_REF_HANDLERS,
    ClientRegistered.event_type: on_client_registered,
    CaseAssigned.event_type: on_case_assigned,
    WorkerUpdated.event_type: on_worker_updated,
    CaseOpened.event_type: on_case_opened,
    CaseClosed.event_type: on_case_closed,
    ApprovalRequested.event_type: on_case_event,
    ApprovalDecided.event_type: on_case_event,
    TransferRequested.event_type: on_case_event,
    TransferAnswered.event_type: on_case_event,
    ReviewScheduled.event_type: on_review_scheduled,
    ReviewCompleted.event_type: on_review_completed,
    ProtectedFlagRaised.event_type: on_protected_flag_raised,
    FlagAcknowledged.event_type: on_flag_acknowledged,
    ReferralMade.event_type: on_referral_event,
    ReferralStatusChanged.event_type: on_referral_event,
    ReferralClosed.event_type: on_referral_event,
}

TIMER_HANDLERS: dict[str, TimerHandler] = {
    DELAYED_DELIVERY: on_delayed_delivery,
    CRISIS_ESCALATION: on_crisis_escalation,
    REVIEW_TIMER: on_review_timer,
}
