"""Consent decides what crosses: a sent referral needs a consent covering the receiving
organisation, the purpose and each class shared (exactly what is missing otherwise); a logged one
needs none; revoking the consent cancels the open referrals relying on it, and the receiving
organisation is told through the events (read off the broker with the CloudEvents SDK)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary
from cloudevents.core.formats.json import JSONFormat

from shared.events.contracts import Topic
from shared.events.referrals import ReferralClosed, ReferralMade, ReferralStatusChanged
from shared.settings import Settings
from tests.referrals_support import (
    ALICE,
    PARTNER_ORG,
    PAT,
    Directory,
    consent_body,
    fetch,
    grant_consent,
    refer,
    referral_rows,
    register_client,
    revoke_consent,
    seed_directory,
    set_status,
    today,
    wait_row,
)
from tests.support import Stack, bearer, header, read_topic


@pytest.fixture(scope="module")
async def directory(settings: Settings) -> Directory:
    return await seed_directory(settings)


async def _refused(
    stack: Stack, settings: Settings, directory: Directory, consent: dict[str, Any] | None,
    share: list[str],
) -> dict[str, Any]:  # fmt: skip
    client_id = await register_client(stack, settings)
    if consent is not None:
        await grant_consent(stack, settings, client_id, consent)
    response = await refer(stack, settings, client_id, directory.in_network, share=share)
    assert response.status_code == 422, response.text
    assert await referral_rows(settings, client_id) == []
    body: dict[str, Any] = response.json()
    assert body["type"].endswith("/consent-required")
    assert body["organization_id"] == PARTNER_ORG
    return body


async def test_without_any_consent_the_problem_says_so(
    stack: Stack, settings: Settings, directory: Directory
) -> None:
    body = await _refused(stack, settings, directory, None, ["general"])
    assert [m["code"] for m in body["missing"]] == ["no-consent"]
    assert body["data_classes"] == ["general"]


@pytest.mark.parametrize(
    ("consent", "share", "code"),
    [
        (consent_body(data_classes=["general"]), ["general", "mental_health"], "class-not-covered"),
        (consent_body(network=True), ["general", "domestic_violence"], "organisation-not-named"),
        (consent_body(recipients=["org-somebody-else"]), ["general"], "organisation-not-named"),
        (consent_body(purposes=["reporting"]), ["general"], "purpose-not-covered"),
        (consent_body(starts_on="2020-01-01", expires_on="2021-01-01"), ["general"], "expired"),
    ],
    ids=["class", "network-for-dv", "other-organisation", "purpose", "expired"],
)
async def test_a_consent_that_falls_short_is_named_with_what_it_lacks(
    stack: Stack, settings: Settings, directory: Directory, consent: dict[str, Any],
    share: list[str], code: str,
) -> None:  # fmt: skip
    body = await _refused(stack, settings, directory, consent, share)
    assert code in [m["code"] for m in body["missing"]], body
    assert all(m["detail"] for m in body["missing"])


async def test_a_consent_naming_the_organisation_lets_protected_classes_cross(
    stack: Stack, settings: Settings, directory: Directory
) -> None:
    client_id = await register_client(stack, settings)
    consent_id = await grant_consent(
        stack, settings, client_id, consent_body(data_classes=["general", "domestic_violence"])
    )
    made = await refer(
        stack, settings, client_id, directory.in_network, share=["domestic_violence", "general"]
    )
    assert made.status_code == 201, made.text
    assert made.json()["consent_id"] == consent_id
    assert made.json()["data_classes"] == ["general", "domestic_violence"]


async def test_without_consent_the_worker_can_still_log_the_referral(
    stack: Stack, settings: Settings, directory: Directory
) -> None:
    client_id = await register_client(stack, settings)
    refused = await refer(stack, settings, client_id, directory.in_network)
    logged = await refer(stack, settings, client_id, directory.in_network, mode="logged", share=[])

    assert refused.status_code == 422
    assert logged.status_code == 201, logged.text
    assert (logged.json()["mode"], logged.json()["consent_id"]) == ("logged", None)
    assert logged.json()["receiving_organization_id"] is None


def _cloudevent(record: ConsumerRecord[bytes, bytes]) -> tuple[str, dict[str, Any]]:
    event = from_binary(
        KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value),
        JSONFormat(),
    )
    assert event.get_specversion() == "1.0"
    assert event.get_source() == "/casework/referrals"
    data = event.get_data()
    assert isinstance(data, dict)
    assert event.get_subject() == data["client_id"] == (record.key or b"").decode()
    return event.get_type(), data


async def test_revoking_consent_cancels_the_open_referrals_relying_on_it_and_says_so(
    stack: Stack, settings: Settings, directory: Directory
) -> None:
    client_id = await register_client(stack, settings)
    consent_id = await grant_consent(stack, settings, client_id)
    open_one = (await refer(stack, settings, client_id, directory.in_network)).json()["id"]
    accepted = (await refer(stack, settings, client_id, directory.in_network)).json()["id"]
    assert (await set_status(stack, settings, accepted, PAT, "accepted")).status_code == 200
    finished = (await refer(stack, settings, client_id, directory.in_network)).json()["id"]
    assert (await set_status(stack, settings, finished, PAT, "rejected",
                             reason_code="not-eligible")).status_code == 200  # fmt: skip
    logged = await refer(stack, settings, client_id, directory.outside, mode="logged", share=[])

    await revoke_consent(stack, settings, client_id, consent_id)
    for referral_id in (open_one, accepted):
        await wait_row(
            settings,
            "SELECT 1 FROM referrals.referrals WHERE id = $1 AND status = 'cancelled'",
            referral_id,
        )

    rows = {str(r["id"]): r for r in await referral_rows(settings, client_id)}
    for referral_id in (open_one, accepted):
        assert (rows[referral_id]["status"], rows[referral_id]["reason_code"]) == (
            "cancelled", "consent-revoked",
        )  # fmt: skip
    assert rows[finished]["status"] == "rejected"  # closed already: left as it was
    assert rows[logged.json()["id"]]["status"] == "requested"  # relied on no consent
    history = await fetch(
        settings,
        "SELECT set_by_side, set_by_organization_id, set_by_user, via FROM "
        "referrals.referral_history WHERE referral_id = $1 ORDER BY seq DESC LIMIT 1",
        accepted,
    )
    assert tuple(history[0]) == ("system", None, None, "consent")
    # The partner sees it cancelled, and can no longer move it.
    seen = await stack.api["referrals"].get(
        f"/v1/referrals/{accepted}", headers=bearer(settings, PAT)
    )
    assert (seen.json()["status"], seen.json()["allowed_next"]) == ("cancelled", [])

    wanted = {open_one, accepted}

    def about(records: list[ConsumerRecord[bytes, bytes]]) -> list[tuple[str, dict[str, Any]]]:
        return [
            _cloudevent(r)
            for r in records
            if (r.key or b"").decode() == client_id
            and any(w.encode() in (r.value or b"") for w in wanted)
        ]

    def revoked(events: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        return [
            data for kind, data in events
            if kind == ReferralStatusChanged.event_type and data["reason_code"] == "consent-revoked"
        ]  # fmt: skip

    records = await read_topic(
        settings, Topic.REFERRALS, until=lambda records: len(revoked(about(records))) == 2
    )
    events = about(records)
    changes = revoked(events)
    assert {c["referral_id"] for c in changes} == wanted
    for change in changes:
        assert (change["to_status"], change["set_by_organization_id"]) == ("cancelled", None)
        assert change["receiving_organization_id"] == PARTNER_ORG
    assert {e[1]["from_status"] for e in events if e[1] in changes} == {"requested", "accepted"}
    closed = [data for kind, data in events if kind == ReferralClosed.event_type]
    assert {c["referral_id"] for c in closed if c["final_status"] == "cancelled"} == wanted
    made = [data for kind, data in events if kind == ReferralMade.event_type]
    assert {m["consent_id"] for m in made} == {consent_id}
    # Ids and codes only: what was shared, and the note, never travel.
    for record in records:
        if (record.key or b"").decode() == client_id:
            assert b"data_classes" not in (record.value or b"")
            assert b"general" not in (record.value or b"")
            assert header(record, "ce_type") in {
                ReferralMade.event_type, ReferralStatusChanged.event_type,
                ReferralClosed.event_type,
            }  # fmt: skip
    assert ALICE.subject in {m["made_by"] for m in made}
    assert all(
        m["expires_at"] is not None and m["made_at"][:10] >= (today() - timedelta(days=1)).isoformat()
        for m in made
    )  # fmt: skip
