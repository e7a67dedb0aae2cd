"""Referrals in FHIR: the Bundle (ServiceRequest + Task, SDOH Clinical Care) validated by the
fhir.resources R4B models, and a receiving system's Task mapped onto the same transition table
(pure mapping here; through the API below)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task

from services.referrals.lifecycle import fhir
from services.referrals.lifecycle.service import Referral
from shared.events.consent import DataClass
from shared.events.referrals import ReferralOutcome, ReferralReason, ReferralStatus
from shared.settings import Settings
from tests.referrals_support import (
    ALICE,
    PARTNER_ORG,
    PARTNER_SYNC,
    PAT,
    grant_consent,
    refer,
    register_client,
    seed_directory,
)
from tests.support import Stack, bearer

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def referral(**changes: Any) -> Referral:
    values: dict[str, Any] = {
        "id": uuid.uuid4(), "client_id": uuid.uuid4(), "sending_organization_id": "org-a",
        "sent_by": "alice", "service_id": "svc-food-1", "receiving_organization_id": "org-partner",
        "mode": "sent", "status": ReferralStatus.REQUESTED, "reason_code": None,
        "data_classes": (DataClass.GENERAL,), "consent_id": uuid.uuid4(), "note": "Call after 5",
        "outcome": None, "created_at": NOW, "updated_at": NOW, "requested_at": NOW,
        "expires_at": NOW + timedelta(days=14), "closed_at": None, "follow_up_due_at": None,
        "version": 1,
    }  # fmt: skip
    return Referral(**{**values, **changes})


def test_the_bundle_is_a_valid_fhir_collection_of_the_service_request_and_the_task() -> None:
    sent = referral(status=ReferralStatus.REJECTED, reason_code=ReferralReason.NO_CAPACITY,
                    outcome=ReferralOutcome.DID_NOT_GET_HELP)  # fmt: skip

    raw = fhir.bundle(sent).model_dump(mode="json", by_alias=True, exclude_none=True)
    parsed = Bundle.model_validate(raw)  # raises unless valid

    assert parsed.type == "collection"
    request, task = (entry["resource"] for entry in raw["entry"])
    ServiceRequest.model_validate(request)
    Task.model_validate(task)
    assert request["meta"]["profile"] == [fhir.SERVICE_REQUEST_PROFILE]
    assert (request["status"], request["intent"]) == ("revoked", "order")
    assert request["subject"] == {"reference": f"Patient/{sent.client_id}"}
    assert request["requester"]["reference"] == "Organization/org-a"
    assert request["performer"][0]["reference"] == "Organization/org-partner"
    assert request["supportingInfo"] == [{"reference": f"Consent/{sent.consent_id}"}]
    assert request["code"]["coding"][0]["code"] == "svc-food-1"
    assert task["meta"]["profile"] == [fhir.TASK_PROFILE]
    assert (task["status"], task["intent"], task["code"]["coding"][0]["code"]) == (
        "rejected", "order", "fulfill",
    )  # fmt: skip
    assert task["focus"] == {"reference": f"ServiceRequest/{sent.id}"}
    assert task["for"] == {"reference": f"Patient/{sent.client_id}"}
    assert task["owner"]["reference"] == "Organization/org-partner"
    assert task["statusReason"]["coding"][0]["code"] == "no-capacity"
    assert task["output"][0]["valueCodeableConcept"]["coding"][0]["code"] == "did-not-get-help"
    # Ids and codes only: no note, no names.
    assert "Call after 5" not in str(raw)


def test_an_expired_referral_is_a_cancelled_task_whose_reason_says_expired() -> None:
    task = fhir.task(referral(status=ReferralStatus.EXPIRED)).model_dump(mode="json")
    assert task["status"] == "cancelled"
    assert task["statusReason"]["coding"][0]["code"] == "expired"


def test_a_logged_referral_has_no_performer_owner_or_consent() -> None:
    logged = referral(mode="logged", receiving_organization_id=None, consent_id=None,
                      data_classes=(), expires_at=None)  # fmt: skip
    raw = fhir.bundle(logged).model_dump(mode="json", by_alias=True, exclude_none=True)
    request_raw, task_raw = (entry["resource"] for entry in raw["entry"])
    assert "performer" not in request_raw and "supportingInfo" not in request_raw
    assert "owner" not in task_raw and "restriction" not in task_raw


def test_an_organisation_id_that_is_no_fhir_id_is_referenced_by_identifier() -> None:
    odd = referral(receiving_organization_id="org_partner@east")
    task = fhir.task(odd).model_dump(mode="json", exclude_none=True)
    assert task["owner"] == {
        "identifier": {"system": fhir.ORGANIZATION_SYSTEM, "value": "org_partner@east"}
    }


def _task(sent: Referral, status: str, **more: Any) -> dict[str, Any]:
    return {
        "resourceType": "Task", "id": str(sent.id), "status": status, "intent": "order",
        "focus": {"reference": f"ServiceRequest/{sent.id}"}, **more,
    }  # fmt: skip


def test_an_inbound_task_maps_status_reason_and_outcome() -> None:
    sent = referral()
    rejected = _task(
        sent,
        "rejected",
        statusReason={"coding": [{"system": fhir.REASON_SYSTEM, "code": "not-eligible"}]},
    )
    completed = _task(sent, "completed", output=[{
        "type": {"coding": [{"system": fhir.OUTPUT_TYPE_SYSTEM, "code": "outcome"}]},
        "valueCodeableConcept": {"coding": [{"system": fhir.OUTCOME_SYSTEM, "code": "got-help"}]},
    }])  # fmt: skip

    first = fhir.status_change(rejected, sent)
    second = fhir.status_change(completed, sent)

    assert (first.status, first.reason_code, first.outcome) == (
        ReferralStatus.REJECTED,
        ReferralReason.NOT_ELIGIBLE,
        None,
    )
    assert (second.status, second.reason_code, second.outcome) == (
        ReferralStatus.COMPLETED,
        None,
        ReferralOutcome.GOT_HELP,
    )


@pytest.mark.parametrize(
    ("task", "field"),
    [
        ({"resourceType": "Task", "status": "accepted"}, "body"),  # no intent: not a valid Task
        ({"resourceType": "Patient", "id": "x"}, "body"),
        ({"resourceType": "Task", "status": "not-a-status", "intent": "order"}, "body.status"),
        ({"resourceType": "Task", "status": "expired", "intent": "order"}, "body.status"),
        ({"resourceType": "Task", "status": "received", "intent": "order"}, "body.status"),
        ({"resourceType": "Task", "status": "accepted", "intent": "order",
          "focus": {"reference": "ServiceRequest/another"}}, "body.focus"),
        ({"resourceType": "Task", "status": "rejected", "intent": "order",
          "statusReason": {"coding": [{"system": "http://example.org", "code": "no-capacity"}]}},
         "body.statusReason"),
    ],
)  # fmt: skip
def test_an_unusable_task_says_why(task: dict[str, Any], field: str) -> None:
    with pytest.raises(fhir.UnusableTask) as refused:
        fhir.status_change(task, referral())
    assert [error["field"] for error in refused.value.errors] == [field]


# --- Through the API ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def sent(stack: Stack, settings: Settings) -> dict[str, Any]:
    directory = await seed_directory(settings)
    client_id = await register_client(stack, settings)
    await grant_consent(stack, settings, client_id)
    made = await refer(stack, settings, client_id, directory.in_network)
    assert made.status_code == 201, made.text
    return dict(made.json())


async def test_the_fhir_bundle_of_a_referral_validates_and_matches_it(
    stack: Stack, settings: Settings, sent: dict[str, Any]
) -> None:
    response = await stack.api["referrals"].get(
        f"/v1/referrals/{sent['id']}/fhir", headers=bearer(settings, PAT)
    )

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    Bundle.model_validate(response.json())  # raises unless valid
    request, task = (entry["resource"] for entry in response.json()["entry"])
    assert (request["resourceType"], task["resourceType"]) == ("ServiceRequest", "Task")
    assert request["subject"] == {"reference": f"Patient/{sent['client_id']}"}
    assert request["supportingInfo"] == [{"reference": f"Consent/{sent['consent_id']}"}]
    assert (task["status"], task["owner"]["reference"]) == (
        "requested", f"Organization/{PARTNER_ORG}",
    )  # fmt: skip
    assert response.headers["ETag"] == f'"{sent["id"]}.1"'


async def test_a_receiving_system_reports_progress_as_a_task_under_the_same_rules(
    stack: Stack, settings: Settings, sent: dict[str, Any]
) -> None:
    path = f"/v1/referrals/{sent['id']}"
    system = bearer(settings, PARTNER_SYNC)

    async def post_task(status: str, **more: Any) -> httpx.Response:
        current = await stack.api["referrals"].get(f"{path}/fhir", headers=system)
        task = {
            **next(
                e["resource"]
                for e in current.json()["entry"]
                if e["resource"]["resourceType"] == "Task"
            ),
            "status": status,
            **more,
        }
        return await stack.api["referrals"].post(
            f"{path}/fhir/task", content=json.dumps(task),
            headers={**system, "If-Match": current.headers["ETag"], "Content-Type": "application/fhir+json"},
        )  # fmt: skip

    forbidden = await post_task("completed")
    not_fhir = await post_task("accepted", authoredOn="yesterday")
    accepted = await post_task("accepted")
    started = await post_task("in-progress")
    completed = await post_task("completed", output=[{
        "type": {"coding": [{"system": fhir.OUTPUT_TYPE_SYSTEM, "code": "outcome"}]},
        "valueCodeableConcept": {"coding": [{"system": fhir.OUTCOME_SYSTEM, "code": "did-not-get-help"}]},
    }])  # fmt: skip

    assert forbidden.status_code == 409, forbidden.text
    assert forbidden.json()["allowed_next"] == ["accepted", "rejected"]
    assert not_fhir.status_code == 422, not_fhir.text
    for response, status in (
        (accepted, "accepted"),
        (started, "in-progress"),
        (completed, "completed"),
    ):
        assert response.status_code == 200, response.text
        assert Task.model_validate(response.json()).status == status
    history = (await stack.api["referrals"].get(f"{path}/history")).json()
    assert [(h["to_status"], h["via"], h["set_by_user"]) for h in history] == [
        ("requested", "api", "alice"), ("accepted", "fhir", "partner-sync"),
        ("in-progress", "fhir", "partner-sync"), ("completed", "fhir", "partner-sync"),
    ]  # fmt: skip
    assert (await stack.api["referrals"].get(path)).json()["outcome"] == "did-not-get-help"


async def test_the_sending_side_cannot_report_the_receiving_sides_progress(
    stack: Stack, settings: Settings
) -> None:
    directory = await seed_directory(settings)
    client_id = await register_client(stack, settings)
    await grant_consent(stack, settings, client_id)
    made = (await refer(stack, settings, client_id, directory.in_network)).json()
    task = {"resourceType": "Task", "status": "accepted", "intent": "order"}

    response = await stack.api["referrals"].post(
        f"/v1/referrals/{made['id']}/fhir/task", json=task,
        headers={**bearer(settings, ALICE), "If-Match": f'"{made["id"]}.1"'},
    )  # fmt: skip

    assert response.status_code == 409, response.text
    assert response.json()["allowed_next"] == ["cancelled", "entered-in-error"]
