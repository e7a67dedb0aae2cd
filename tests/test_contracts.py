"""Event contracts: committed JSON Schemas and AsyncAPI match the models; no personal data."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import jsonschema
import pytest
import yaml

from services.registry import SERVICES, TOPICS
from shared.events.contracts import ClientRegistered
from shared.events.docs import ASYNCAPI_PATH, SCHEMA_DIR, write_or_check
from shared.events.registry import EVENT_TYPES

PERSONAL_FIELDS = {
    "name", "given_name", "family_name", "other_names", "birth_date", "date_of_birth",
    "ssn", "national_id", "phone", "email", "address", "street", "notes", "note", "answers",
}  # fmt: skip


def test_committed_schemas_and_asyncapi_match_the_models() -> None:
    # A change to an event model must come with its regenerated, reviewed contract files.
    assert write_or_check(list(SERVICES.values()), check=True) == []


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_event_types_are_versioned_reverse_dns_names_on_known_topics(event_type: str) -> None:
    assert re.fullmatch(r"org\.casework\.[a-z]+(\.[a-z_]+)+\.v\d+", event_type)
    assert EVENT_TYPES[event_type].topic in TOPICS
    assert (SCHEMA_DIR / f"{event_type}.json").exists()


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_no_event_carries_personal_fields(event_type: str) -> None:
    schema = json.loads((SCHEMA_DIR / f"{event_type}.json").read_text())
    assert not set(schema["properties"]) & PERSONAL_FIELDS


def test_a_produced_event_validates_against_its_committed_schema() -> None:
    event = ClientRegistered(
        client_id=uuid4(), preferred_language="en", registered_at=datetime.now(UTC)
    )
    schema = json.loads((SCHEMA_DIR / f"{ClientRegistered.event_type}.json").read_text())
    jsonschema.validate(event.model_dump(mode="json"), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"client_id": str(uuid4())}, schema)


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [node["$ref"]] if "$ref" in node else [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for item in node for r in _refs(item)]
    return []


def test_asyncapi_documents_every_event_and_all_its_references_resolve() -> None:
    document = yaml.safe_load(ASYNCAPI_PATH.read_text())
    assert document["asyncapi"].startswith("3.")
    names = {message["name"] for message in document["components"]["messages"].values()}
    assert names == set(EVENT_TYPES)
    assert set(TOPICS) <= set(document["channels"])
    for ref in _refs(document):
        if ref.startswith("#/"):
            target: Any = document
            for part in ref[2:].split("/"):
                target = target[part]
            assert target is not None
        else:
            assert (ASYNCAPI_PATH.parent / ref).resolve().exists(), ref
