"""Which events agency systems may subscribe to, and what a delivery carries.

Only the general topics: never the protected topic (crisis flags and protected needs travel
there; agency systems are not among its readers, shared/events/protection.py), nor the audit
stream (an agency's SIEM reads that through its own Kafka listener).
"""

from __future__ import annotations

from typing import Any

from shared.events.contracts import EventData, Topic
from shared.events.envelope import SPEC_VERSION, Event
from shared.events.protection import PROTECTED_TOPIC_READERS
from shared.events.registry import EVENT_TYPES

DELIVERABLE_TOPICS = frozenset(
    {Topic.INTAKE_CLIENTS, Topic.PLANNING_CASES, Topic.PLANNING_WORKERS, Topic.REFERRALS}
)
assert not DELIVERABLE_TOPICS & set(PROTECTED_TOPIC_READERS), "a protected topic is deliverable"

DELIVERABLE: dict[str, type[EventData]] = {
    event_type: model
    for event_type, model in sorted(EVENT_TYPES.items())
    if model.topic in DELIVERABLE_TOPICS
}

CONTENT_TYPE = "application/cloudevents+json"


def undeliverable(event_types: list[str]) -> list[str]:
    """The names among `event_types` nobody may subscribe to (unknown, protected, audit)."""
    return [event_type for event_type in event_types if event_type not in DELIVERABLE]


def cloud_event(event: Event) -> dict[str, Any]:
    """The event in CloudEvents structured JSON mode, as it travelled on the bus: ids and codes
    only (the bus never carries names or free text)."""
    structured: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": event.id,
        "source": event.source,
        "type": event.type,
        "time": event.time.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": event.data.model_dump(mode="json"),
    }
    if event.subject:
        structured["subject"] = event.subject
    return structured
