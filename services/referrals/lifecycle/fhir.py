"""Referrals in HL7 FHIR, as the SDOH Clinical Care IG exchanges them: a ServiceRequest (what is
asked for) and a Task for referral management (where it stands), in a `collection` Bundle.

fhir.resources 8 offers FHIR R5 (its default), R4B and STU3, not R4 itself: the resources are
built and validated with its R4B models (4.3, the R4 line; ServiceRequest and Task are the same
as R4 in every element used here). Pure: no database, no HTTP.

Ids and codes only: the Patient is referenced by the client's id, organisations by their
Casework id; names and details stay with intake, behind consent.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from pydantic import ValidationError

from services.referrals.lifecycle.models import StatusChange
from shared.events.referrals import ReferralOutcome, ReferralReason, ReferralStatus

if TYPE_CHECKING:  # the stored referral; this module stays free of the database layer
    from services.referrals.lifecycle.service import Referral

SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition"
SERVICE_REQUEST_PROFILE = f"{SDOHCC}/SDOHCC-ServiceRequest"
TASK_PROFILE = f"{SDOHCC}/SDOHCC-TaskForReferralManagement"
CASEWORK = "https://casework.dev/fhir"
ORGANIZATION_SYSTEM = f"{CASEWORK}/sid/organization"
SERVICE_SYSTEM = f"{CASEWORK}/sid/hsds-service"
REASON_SYSTEM = f"{CASEWORK}/CodeSystem/referral-reason"
OUTCOME_SYSTEM = f"{CASEWORK}/CodeSystem/referral-outcome"
OUTPUT_TYPE_SYSTEM = f"{CASEWORK}/CodeSystem/referral-output"
SNOMED = "http://snomed.info/sct"
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")

# Casework's statuses as a Task's: the same words, but for `expired`, which FHIR Task lacks: a
# cancelled Task whose statusReason says expired.
TASK_STATUS = {status: status.value for status in ReferralStatus} | {
    ReferralStatus.EXPIRED: "cancelled"
}
# Task statuses Casework does not use for referrals (it has no separate receipt or readiness).
UNUSED_TASK_STATUSES = frozenset({"received", "ready"})
SERVICE_REQUEST_STATUS = {
    ReferralStatus.DRAFT: "draft",
    ReferralStatus.REQUESTED: "active",
    ReferralStatus.ACCEPTED: "active",
    ReferralStatus.IN_PROGRESS: "active",
    ReferralStatus.ON_HOLD: "on-hold",
    ReferralStatus.COMPLETED: "completed",
    ReferralStatus.REJECTED: "revoked",
    ReferralStatus.CANCELLED: "revoked",
    ReferralStatus.FAILED: "revoked",
    ReferralStatus.EXPIRED: "revoked",
    ReferralStatus.ENTERED_IN_ERROR: "entered-in-error",
}


def organization(organization_id: str) -> dict[str, Any]:
    """A reference to a Casework organisation: by its id (a literal reference when the id is
    also a valid FHIR id) and always by identifier."""
    reference: dict[str, Any] = {
        "identifier": {"system": ORGANIZATION_SYSTEM, "value": organization_id}
    }
    if _FHIR_ID.match(organization_id):
        reference["reference"] = f"Organization/{organization_id}"
    return reference


def _coding(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def service_request(referral: Referral) -> ServiceRequest:
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": str(referral.id),
        "meta": {"profile": [SERVICE_REQUEST_PROFILE]},
        "status": SERVICE_REQUEST_STATUS[referral.status],
        "intent": "order",
        "category": [
            {"coding": [{"system": SNOMED, "code": "306206005", "display": "Referral to service"}]}
        ],
        "code": _coding(SERVICE_SYSTEM, referral.service_id),
        "subject": {"reference": f"Patient/{referral.client_id}"},
        "authoredOn": referral.created_at.isoformat(),
        "requester": organization(referral.sending_organization_id),
    }
    if referral.receiving_organization_id is not None:
        resource["performer"] = [organization(referral.receiving_organization_id)]
    if referral.consent_id is not None:
        resource["supportingInfo"] = [{"reference": f"Consent/{referral.consent_id}"}]
    return ServiceRequest.model_validate(resource)


def task(referral: Referral) -> Task:
    resource: dict[str, Any] = {
        "resourceType": "Task",
        "id": str(referral.id),
        "meta": {"profile": [TASK_PROFILE], "versionId": str(referral.version)},
        "status": TASK_STATUS[referral.status],
        "intent": "order",
        "code": _coding("http://hl7.org/fhir/CodeSystem/task-code", "fulfill"),
        "focus": {"reference": f"ServiceRequest/{referral.id}"},
        "for": {"reference": f"Patient/{referral.client_id}"},
        "authoredOn": referral.created_at.isoformat(),
        "lastModified": referral.updated_at.isoformat(),
        "requester": organization(referral.sending_organization_id),
    }
    if referral.receiving_organization_id is not None:
        resource["owner"] = organization(referral.receiving_organization_id)
    if referral.status is ReferralStatus.EXPIRED:
        resource["statusReason"] = _coding(REASON_SYSTEM, "expired")
    elif referral.reason_code is not None:
        resource["statusReason"] = _coding(REASON_SYSTEM, referral.reason_code.value)
    if referral.expires_at is not None:
        resource["restriction"] = {"period": {"end": referral.expires_at.isoformat()}}
    if referral.outcome is not None:
        resource["output"] = [
            {
                "type": _coding(OUTPUT_TYPE_SYSTEM, "outcome"),
                "valueCodeableConcept": _coding(OUTCOME_SYSTEM, referral.outcome.value),
            }
        ]
    return Task.model_validate(resource)


def bundle(referral: Referral) -> Bundle:
    """The referral as a FHIR `collection` Bundle: its ServiceRequest and its Task."""
    return Bundle.model_validate(
        {
            "resourceType": "Bundle",
            "type": "collection",
            "timestamp": referral.updated_at.isoformat(),
            "entry": [
                {"resource": service_request(referral).model_dump(mode="json", by_alias=True)},
                {"resource": task(referral).model_dump(mode="json", by_alias=True)},
            ],
        }
    )


class UnusableTask(ValueError):
    """A Task that cannot be mapped onto a status change, and why (a list of field errors)."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(e["message"] for e in errors))
        self.errors = errors


def _error(field: str, message: str, code: str) -> dict[str, str]:
    return {"field": field, "message": message, "code": code}


def status_change(raw: dict[str, Any], referral: Referral) -> StatusChange:
    """The status change a receiving system's Task asks for: its status, its statusReason
    (a referral reason code) and its output (the outcome code). UnusableTask otherwise."""
    try:
        parsed = Task.model_validate(raw)
    except (ValidationError, ValueError, TypeError) as error:
        raise UnusableTask(
            [_error("body", f"not a valid FHIR R4 Task: {_first_line(error)}", "invalid_fhir")]
        ) from None
    errors: list[dict[str, str]] = []
    focus = parsed.focus.reference if parsed.focus is not None else None
    if focus is not None and focus != f"ServiceRequest/{referral.id}":
        errors.append(
            _error("body.focus", "must reference this referral's ServiceRequest", "focus")
        )
    if parsed.id is not None and parsed.id != str(referral.id):
        errors.append(_error("body.id", "must be this referral's Task id", "id"))
    status = parsed.status
    known = {s.value for s in ReferralStatus} - {ReferralStatus.EXPIRED.value}
    if status in UNUSED_TASK_STATUSES:
        errors.append(_error("body.status", f"{status} is not used for referrals", "status"))
    elif status not in known:
        errors.append(
            _error(
                "body.status",
                f"not a Task status of referrals: {', '.join(sorted(known))}",
                "status",
            )
        )
    reason = _reason(parsed, errors)
    outcome = _outcome(parsed, errors)
    if errors:
        raise UnusableTask(errors)
    assert status is not None  # a valid Task has one
    return StatusChange(status=ReferralStatus(status), reason_code=reason, outcome=outcome)


def _codes(concept: Any, system: str) -> list[str]:
    if concept is None:
        return []
    return [c.code for c in concept.coding or [] if c.system == system and c.code]


def _reason(parsed: Task, errors: list[dict[str, str]]) -> ReferralReason | None:
    if parsed.statusReason is None:
        return None
    codes = _codes(parsed.statusReason, REASON_SYSTEM)
    known = [code for code in codes if code in ReferralReason.__members__.values()]
    if len(known) != 1:
        errors.append(
            _error(
                "body.statusReason",
                f"give one coding of {REASON_SYSTEM}: {', '.join(ReferralReason)}",
                "reason",
            )
        )
        return None
    return ReferralReason(known[0])


def _outcome(parsed: Task, errors: list[dict[str, str]]) -> ReferralOutcome | None:
    outcomes: list[str] = []
    for output in parsed.output or []:
        if "outcome" not in _codes(output.type, OUTPUT_TYPE_SYSTEM):
            continue
        value = output.valueCodeableConcept
        outcomes += _codes(value, OUTCOME_SYSTEM)
    if not outcomes:
        return None
    if len(outcomes) != 1 or outcomes[0] not in ReferralOutcome.__members__.values():
        errors.append(
            _error(
                "body.output",
                f"give one outcome coding of {OUTCOME_SYSTEM}: {', '.join(ReferralOutcome)}",
                "outcome",
            )
        )
        return None
    return ReferralOutcome(outcomes[0])


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0][:300] if str(error) else type(error).__name__
