"""Pure logic: trace context, the CloudEvents decoder, settings derivation."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import uuid4

import asyncpg
import pytest

from shared.events.contracts import ClientRegistered, Topic
from shared.events.envelope import (
    UndecodableEvent,
    UnknownEventType,
    decode,
    encode_data,
    kafka_headers,
)
from shared.http.merge_patch import merge_patch
from shared.http.problems import log_unexpected
from shared.settings import Settings
from shared.tracing import continue_or_start, parse_traceparent


def test_a_valid_traceparent_is_continued_with_a_new_span() -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    child = continue_or_start(parent)
    assert child.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert child.span_id != "00f067aa0ba902b7"
    assert parse_traceparent(child.traceparent) == child


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
    ],
)
def test_an_invalid_traceparent_starts_a_new_trace(value: str | None) -> None:
    assert parse_traceparent(value) is None
    assert len(continue_or_start(value).trace_id) == 32


def _message(**overrides: object) -> tuple[list[tuple[str, bytes]], bytes]:
    data = ClientRegistered(
        client_id=uuid4(), preferred_language="en", registered_at=datetime.now(UTC)
    )
    headers = kafka_headers(
        event_id="e-1",
        event_type=ClientRegistered.event_type,
        source="/casework/intake",
        subject=str(data.client_id),
        time=datetime.now(UTC),
        traceparent=None,
    )
    return headers, encode_data(data.model_dump(mode="json"))


def test_decode_reads_attributes_and_typed_data() -> None:
    headers, value = _message()
    event = decode(headers, value, topic=Topic.INTAKE_CLIENTS)
    assert event.id == "e-1"
    assert isinstance(event.data, ClientRegistered)
    assert event.subject == str(event.data.client_id)


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h, v: ([x for x in h if x[0] != "ce_id"], v), "missing"),
        (
            lambda h, v: ([(k, b"0.3" if k == "ce_specversion" else x) for k, x in h], v),
            "specversion",
        ),
        (lambda h, v: ([(k, b"yesterday" if k == "ce_time" else x) for k, x in h], v), "ce_time"),
        (lambda h, v: (h, b"{not json"), "does not match"),
        (lambda h, v: (h, b'{"client_id": "not-a-uuid"}'), "does not match"),
        (lambda h, v: (h, None), "no value"),
    ],
)
def test_undecodable_messages_are_rejected_with_a_reason(mutate: object, reason: str) -> None:
    headers, value = _message()
    bad_headers, bad_value = mutate(headers, value)  # type: ignore[operator]
    with pytest.raises(UndecodableEvent, match=reason):
        decode(bad_headers, bad_value, topic=Topic.INTAKE_CLIENTS)


def test_an_unknown_event_type_is_not_an_error_but_is_told_apart() -> None:
    headers, value = _message()
    renamed = [(k, b"org.other.thing.v1" if k == "ce_type" else x) for k, x in headers]
    with pytest.raises(UnknownEventType):
        decode(renamed, value, topic=Topic.INTAKE_CLIENTS)


def test_a_service_connects_as_its_own_role_unless_told_otherwise() -> None:
    settings = Settings(
        _env_file=None,
        database_url="postgresql://admin:secret@db.internal:5432/casework",
        service_db_password="p@ss",
    )
    assert settings.database_url_for("planning") == (
        "postgresql://planning_svc:p%40ss@db.internal:5432/casework"
    )
    explicit = settings.model_copy(update={"service_database_url": "postgresql://x:y@h/d"})
    assert explicit.database_url_for("planning") == "postgresql://x:y@h/d"


def test_merge_patch_follows_rfc_7396_appendix_a() -> None:
    # The RFC's own examples: (original, patch, result).
    cases = [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ]
    for original, patch, result in cases:
        assert merge_patch(original, patch) == result, (original, patch)


def test_an_unhandled_database_error_is_logged_without_the_values_it_quotes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = asyncpg.UniqueViolationError(
        'duplicate key value violates unique constraint "uq_clients_phone"'
    )
    error.detail = "Key (phone)=(+1 555 010 4477) already exists."
    error.constraint_name = "uq_clients_phone"
    with caplog.at_level(logging.ERROR):
        log_unexpected(error)
    logged = caplog.records[-1]
    assert logged.constraint == "uq_clients_phone"  # type: ignore[attr-defined]
    assert "555" not in caplog.text and "555" not in str(logged.__dict__)
