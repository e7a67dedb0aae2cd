"""CloudEvents 1.0 in Kafka binary mode: attributes in `ce_*` headers, the data as JSON value.

Trust on the bus: `decode` accepts an event type only on the topic its contract names and only
from the service that owns it (`ce_source` `/casework/<contract.source_service>`; the audit
stream's records from any known service, on the audit topic only). Anything else raises
`UndecodableEvent`, so the consumer dead-letters it with the reason and moves on. In production
the broker's SASL identities and ACLs decide who may write each topic; this check holds where
the broker cannot enforce that (the embedded broker has no ACLs), and refuses a type that a
topic's rightful writer has no business sending there (intake cannot publish `CaseAssigned`).
"""

from __future__ import annotations

import json
from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from pydantic import ValidationError

from shared.events.contracts import CE_SOURCE_PREFIX, EventData, publishers
from shared.events.registry import EVENT_TYPES

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
KafkaHeaders = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Event:
    """One event as a consumer sees it: CloudEvents attributes plus typed data."""

    id: str
    type: str
    source: str
    subject: str | None
    time: datetime
    data: EventData
    traceparent: str | None = None


@dataclass(frozen=True)
class OutgoingEvent:
    """What a command writes to the outbox."""

    id: UUID
    data: EventData
    time: datetime
    traceparent: str | None

    @classmethod
    def of(cls, data: EventData, traceparent: str | None = None) -> OutgoingEvent:
        return cls(id=uuid4(), data=data, time=datetime.now(UTC), traceparent=traceparent)


class UndecodableEvent(Exception):
    """A message that can never be processed: it goes to the dead-letter topic."""


class UnknownEventType(Exception):
    """A well-formed event of a type this consumer has no handler for."""


def source_of(service: str) -> str:
    return f"{CE_SOURCE_PREFIX}/{service}"


def kafka_headers(
    *,
    event_id: str,
    event_type: str,
    source: str,
    subject: str,
    time: datetime,
    traceparent: str | None,
) -> KafkaHeaders:
    headers: KafkaHeaders = [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", event_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", event_type.encode()),
        ("ce_time", time.astimezone(UTC).isoformat().replace("+00:00", "Z").encode()),
        ("ce_subject", subject.encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    if traceparent:
        # The CloudEvents distributed-tracing extension attribute.
        headers.append(("ce_traceparent", traceparent.encode()))
    return headers


def encode_data(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def check_trusted(model: type[EventData], *, source: str, topic: str) -> None:
    """Raise UndecodableEvent unless this type may arrive on `topic` from `source`."""
    if topic != model.topic:
        raise UndecodableEvent(
            f"untrusted: {model.event_type} travels on {model.topic}, not on {topic}"
        )
    accepted = [source_of(service) for service in publishers(model)]
    if source not in accepted:
        raise UndecodableEvent(
            f"untrusted: {model.event_type} comes from {' or '.join(accepted)}, not from {source!r}"
        )


def decode(
    headers: KafkaHeaders,
    value: bytes | None,
    *,
    topic: str,
    handled: Container[str] | None = None,
) -> Event:
    """Parse a binary-mode CloudEvent that arrived on `topic`, and check who may send it there.
    Raises UndecodableEvent or UnknownEventType (also for a type not in `handled`, when given:
    a consumer neither validates nor dead-letters what it would ignore anyway, so it makes no
    copies of events it has no business with)."""
    attributes: dict[str, str] = {}
    for name, raw in headers:
        try:
            attributes[name.lower()] = raw.decode() if raw is not None else ""
        except UnicodeDecodeError as error:
            raise UndecodableEvent(f"header {name} is not UTF-8") from error
    missing = [
        name
        for name in ("ce_specversion", "ce_id", "ce_source", "ce_type")
        if not attributes.get(name)
    ]
    if missing:
        raise UndecodableEvent(f"missing CloudEvents attributes: {', '.join(missing)}")
    if attributes["ce_specversion"] != SPEC_VERSION:
        raise UndecodableEvent(f"unsupported specversion {attributes['ce_specversion']}")
    model = EVENT_TYPES.get(attributes["ce_type"])
    if model is None or (handled is not None and model.event_type not in handled):
        raise UnknownEventType(attributes["ce_type"])
    check_trusted(model, source=attributes["ce_source"], topic=topic)
    try:
        time = datetime.fromisoformat(attributes.get("ce_time") or "")
    except ValueError as error:
        raise UndecodableEvent("ce_time is not an RFC 3339 timestamp") from error
    if value is None:
        raise UndecodableEvent("the message has no value")
    try:
        data = model.model_validate_json(value)
    except ValidationError as error:
        raise UndecodableEvent(f"data does not match {model.event_type}: {error}") from error
    return Event(
        id=attributes["ce_id"],
        type=attributes["ce_type"],
        source=attributes["ce_source"],
        subject=attributes.get("ce_subject"),
        time=time,
        data=data,
        traceparent=attributes.get("ce_traceparent"),
    )
