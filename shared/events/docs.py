"""Generates the published event documentation from the contracts: one JSON Schema per event
type (`shared/events/schemas/`) and an AsyncAPI 3 document (`docs/asyncapi.yaml`).

`casework contracts` writes them; `casework contracts --check` (and a test) fails when the
committed files differ from what the models produce, and `check_compatible` fails when a
committed schema lost or changed something consumers rely on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from shared.events.contracts import EventData, dead_letter_topic, publishers
from shared.events.protection import PROTECTED_TOPIC_READERS
from shared.events.registry import EVENT_TYPES
from shared.messaging.kafka import EPOCH_TOPIC
from shared.spec import ServiceSpec

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
ASYNCAPI_PATH = ROOT / "docs" / "asyncapi.yaml"


def event_schema(model: type[EventData]) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://casework.dev/events/{model.event_type}.json",
        **schema,
        "title": model.__name__,
        "description": model.summary,
    }


def _message_name(model: type[EventData]) -> str:
    return model.__name__


def _ce_headers(model: type[EventData]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["ce_specversion", "ce_id", "ce_source", "ce_type", "ce_time", "ce_subject"],
        "properties": {
            "ce_specversion": {"type": "string", "const": "1.0"},
            "ce_id": {"type": "string", "description": "Unique event id (UUID)."},
            "ce_source": {
                "type": "string",
                "pattern": "^/casework/(" + "|".join(publishers(model)) + ")$",
                "description": "The publishing service: anything else is dead-lettered.",
            },
            "ce_type": {"type": "string", "const": model.event_type},
            "ce_time": {"type": "string", "format": "date-time"},
            "ce_subject": {"type": "string", "description": "The aggregate id (Kafka key)."},
            "ce_traceparent": {"type": "string", "description": "W3C trace context."},
            "content-type": {"type": "string", "const": "application/json"},
        },
    }


def message_key(model: type[EventData]) -> dict[str, Any]:
    """The Kafka key binding: what the relay really uses as the key (`EventData.aggregate_id`)."""
    return {
        "type": "string",
        "format": "uuid",
        "description": f"{model.key_description} The first non-null of the data fields "
        f"{', '.join(model.key_fields)}; also the ce_subject.",
        "x-key-fields": list(model.key_fields),
    }


def _channel_description(topic: str) -> str:
    readers = PROTECTED_TOPIC_READERS.get(topic)
    if readers is not None:
        return (
            "Protected data classes (domestic violence, substance use, HIV, mental health, child "
            f"safety). Readable only by {', '.join(sorted(readers))} (broker ACLs); never "
            "forwarded to an agency feed. Each message documents its key."
        )
    return (
        "General data classes only: protected facts never travel here. Each message documents "
        "its key."
    )


def asyncapi_document(specs: Sequence[ServiceSpec]) -> dict[str, Any]:
    services = [spec.name for spec in specs]
    subscribers: dict[str, list[str]] = {}
    for spec in specs:
        for event_type in spec.handlers:
            subscribers.setdefault(event_type, []).append(spec.name)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for event_type, model in sorted(EVENT_TYPES.items()):
        name = _message_name(model)
        channel = channels.setdefault(
            model.topic,
            {
                "address": model.topic,
                "description": _channel_description(model.topic),
                "messages": {},
            },
        )
        channel["messages"][name] = {"$ref": f"#/components/messages/{name}"}
        messages[name] = {
            "name": event_type,
            "title": name,
            "summary": model.summary,
            "contentType": "application/json",
            "headers": _ce_headers(model),
            "payload": {"$ref": f"../shared/events/schemas/{event_type}.json"},
            "bindings": {"kafka": {"key": message_key(model), "bindingVersion": "0.5.0"}},
        }
        message_ref = f"#/channels/{model.topic}/messages/{name}"
        for publisher in publishers(model):
            operations[f"{publisher}.send.{name}"] = {
                "action": "send",
                "channel": {"$ref": f"#/channels/{model.topic}"},
                "messages": [{"$ref": message_ref}],
            }
        for group in sorted(subscribers.get(event_type, [])):
            operations[f"{group}.receive.{name}"] = {
                "action": "receive",
                "channel": {"$ref": f"#/channels/{model.topic}"},
                "messages": [{"$ref": message_ref}],
                "bindings": {"kafka": {"groupId": {"type": "string", "const": group}}},
            }
    for group in services:
        topic = dead_letter_topic(group)
        channels[topic] = {
            "address": topic,
            "description": (
                f"Messages the {group} consumers could not process or did not trust (another "
                "topic than their contract's, another ce_source than its owner's: dlq_error "
                "starts 'UndecodableEvent: untrusted:'), unchanged, with dlq_error, "
                "dlq_original_topic, dlq_original_partition, dlq_original_offset, "
                "dlq_consumer_group and dlq_attempts headers added."
            ),
        }
    channels[EPOCH_TOPIC] = {
        "address": EPOCH_TOPIC,
        "description": (
            "Not an event stream: its first record (partition 0) is a random id identifying the "
            "broker's log, kept forever. A relay that sees it change replays its outbox "
            "(shared/messaging/lost_log.py)."
        ),
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Casework events",
            "version": "1.0.0",
            "description": (
                "CloudEvents 1.0 in Kafka binary mode: attributes in ce_* headers, the event "
                "data as the JSON value, keyed by the aggregate id. Events carry ids and the "
                "minimum facts; read details back through the HTTP APIs."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "embedded": {"host": "127.0.0.1:59092", "protocol": "kafka"},
            "compose": {"host": "kafka:9092", "protocol": "kafka"},
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def rendered_files(specs: Sequence[ServiceSpec]) -> dict[Path, str]:
    files = {
        SCHEMA_DIR / f"{event_type}.json": json.dumps(event_schema(model), indent=2) + "\n"
        for event_type, model in EVENT_TYPES.items()
    }
    files[ASYNCAPI_PATH] = yaml.safe_dump(asyncapi_document(specs), sort_keys=False, width=100)
    return files


def write_or_check(specs: Sequence[ServiceSpec], *, check: bool) -> list[str]:
    problems = []
    for path, text in rendered_files(specs).items():
        relative = path.relative_to(ROOT)
        if check:
            if not path.exists() or path.read_text() != text:
                problems.append(f"{relative} is out of date: run `make contracts`")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return problems
