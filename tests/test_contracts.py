"""Event contracts: committed JSON Schemas and AsyncAPI match the models; no personal data;
every field of every event type is on its allowlist, and general topics cannot carry a
protected need category or flag type."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from services.intake.assessments.definitions import INSTRUMENTS
from services.registry import SERVICES, TOPICS
from shared.events.assessment import ClientAssessed, FlagRaised, FlagSeverity, FlagType
from shared.events.consent import DataClass
from shared.events.contracts import SERVICE_NAMES, ClientRegistered
from shared.events.docs import ASYNCAPI_PATH, SCHEMA_DIR, write_or_check
from shared.events.protection import CLASSIFICATION, FIELDS_PATH, PROTECTED_TOPIC_READERS
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


# --- allowlists and data classes ------------------------------------------------------------

ALLOWLIST: dict[str, dict[str, str | None]] = json.loads(FIELDS_PATH.read_text())["events"]
VOCABULARIES: dict[str, dict[str, DataClass]] = {
    "need_categories": CLASSIFICATION.need_categories,
    "flag_types": CLASSIFICATION.flag_types,
    "data_classes": {data_class.value: data_class for data_class in DataClass},
}


def _field_paths(schema: dict[str, Any], node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every leaf field of a JSON Schema by path (`needs[].category`), with its schema."""
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in node:
        found: dict[str, Any] = {}
        for option in node["anyOf"]:
            found |= _field_paths(schema, option, prefix)
        return found or {prefix: node}
    if node.get("type") == "array":
        return _field_paths(schema, node["items"], f"{prefix}[].")
    if node.get("type") == "object" and "properties" in node:
        found = {}
        for name, child in node["properties"].items():
            found |= _field_paths(schema, child, f"{prefix}{name}")
        return found
    return {prefix.removesuffix("[]."): node}


def _paths(event_type: str) -> dict[str, Any]:
    schema = EVENT_TYPES[event_type].model_json_schema()
    return _field_paths(schema, schema)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_an_event_carries_exactly_the_fields_on_its_allowlist(event_type: str) -> None:
    # A new field is a reviewed line in shared/events/fields.json, with its vocabulary.
    assert set(_paths(event_type)) == set(ALLOWLIST[event_type])
    assert set(ALLOWLIST[event_type].values()) <= {None, *VOCABULARIES}


def test_every_event_type_has_an_allowlist() -> None:
    assert set(ALLOWLIST) == set(EVENT_TYPES)


GENERAL_TYPES = sorted(
    event_type
    for event_type, model in EVENT_TYPES.items()
    if model.topic not in PROTECTED_TOPIC_READERS
)


@pytest.mark.parametrize("event_type", GENERAL_TYPES)
def test_a_general_topic_event_can_carry_only_general_values_in_classified_fields(
    event_type: str,
) -> None:
    paths = _paths(event_type)
    for path, vocabulary in ALLOWLIST[event_type].items():
        if vocabulary is None:
            continue
        # A closed list of values, all of the general class: no free text that could name one.
        allowed = paths[path].get("enum")
        assert allowed, f"{event_type} {path}: a classified field must be an enum"
        classes = {value: VOCABULARIES[vocabulary].get(value) for value in allowed}
        assert set(classes.values()) == {DataClass.GENERAL}, (event_type, path, classes)


def _flag(flag_type: str, severity: FlagSeverity = FlagSeverity.MODERATE) -> dict[str, Any]:
    return {
        "flag_id": str(uuid4()), "client_id": str(uuid4()), "flag_type": flag_type,
        "severity": severity, "crisis": severity is FlagSeverity.CRISIS, "source": "manual",
        "assessment_id": None, "raised_by": "alice", "raised_at": datetime.now(UTC).isoformat(),
    }  # fmt: skip


def _assessed(category: str) -> dict[str, Any]:
    return {
        "assessment_id": str(uuid4()), "client_id": str(uuid4()),
        "instrument_id": "needs-risk-screening", "instrument_version": "1.0",
        "risk_level": "high", "priority": 2, "needs": [{"category": category, "severity": "high"}],
        "preferred_language": "en", "postal_area": None, "risk_overridden": False,
    }  # fmt: skip


INSTRUMENT_CATEGORIES = sorted(
    {category.id for instrument in INSTRUMENTS.values() for category in instrument.categories}
)


@pytest.mark.parametrize("category", INSTRUMENT_CATEGORIES)
def test_every_need_category_is_classified_and_protected_ones_never_validate_as_general(
    category: str,
) -> None:
    data_class = CLASSIFICATION.need_categories.get(category)
    assert data_class is not None, f"classify {category} in shared/events/data_classes.json"
    if data_class is DataClass.GENERAL:
        assert ClientAssessed.model_validate(_assessed(category)).needs[0].category == category
    else:
        with pytest.raises(ValidationError):
            ClientAssessed.model_validate(_assessed(category))
    # The consumer side refuses it too: decoding validates the same model.


def test_an_unclassified_need_category_is_treated_as_protected() -> None:
    with pytest.raises(ValidationError):
        ClientAssessed.model_validate(_assessed("not_classified_yet"))


@pytest.mark.parametrize("flag_type", list(FlagType))
def test_every_flag_type_is_classified_and_the_general_event_takes_only_general_ones(
    flag_type: FlagType,
) -> None:
    data_class = CLASSIFICATION.flag_types[flag_type]
    if data_class is DataClass.GENERAL:
        assert FlagRaised.model_validate(_flag(flag_type)).flag_type is flag_type
    else:
        with pytest.raises(ValidationError):
            FlagRaised.model_validate(_flag(flag_type))
    with pytest.raises(ValidationError, match=r"never travels|crisis flag travels only"):
        FlagRaised.model_validate(_flag(flag_type, FlagSeverity.CRISIS))


def test_protected_topics_are_read_only_by_their_named_readers() -> None:
    for spec in SERVICES.values():
        for topic in spec.topics:
            readers = PROTECTED_TOPIC_READERS.get(topic)
            assert readers is None or spec.name in readers, (spec.name, topic)
    assert set(PROTECTED_TOPIC_READERS) <= set(TOPICS)


def test_the_services_a_consumer_trusts_are_the_services_that_exist() -> None:
    assert set(SERVICE_NAMES) == set(SERVICES)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_the_key_fields_are_fields_of_the_event(event_type: str) -> None:
    model = EVENT_TYPES[event_type]
    assert model.key_fields and set(model.key_fields) <= set(model.model_fields)
