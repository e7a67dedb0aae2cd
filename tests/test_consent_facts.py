"""Consent facts (shared/auth/consents.py): the covering decision as pure logic, and the facts
every service keeps, written by intake in its own transaction and by the other services from
intake's events (repeats, and a revocation before its grant)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.auth.consents import (
    ConsentTerms,
    MissingCode,
    consent_problem,
    covered_classes,
    covering_consent,
    decide_coverage,
    record_consent_granted,
    record_consent_revoked,
)
from shared.events.consent import (
    RECIPIENT_SPECIFIC_DATA_CLASSES,
    ConsentGrant,
    ConsentGranted,
    ConsentRevoked,
    DataClass,
    GivenBy,
    ProtectedConsentGranted,
    ProtectedConsentRevoked,
    Purpose,
    RevocationReason,
)
from shared.settings import Settings
from tests.support import VALID_CLIENT, Stack, eventually

ON = date(2026, 6, 1)
ORG = "org-shelter"


def terms(**changes: Any) -> ConsentTerms:
    values: dict[str, Any] = {
        "consent_id": uuid.UUID(int=1),
        "recipients": frozenset({ORG}),
        "network": False,
        "purposes": frozenset({"referral"}),
        "data_classes": frozenset({"general", "substance_use"}),
        "starts_on": date(2026, 1, 1),
        "expires_on": date(2027, 1, 1),
        "revoked_at": None,
        **changes,
    }
    return ConsentTerms(**values)


def decide(consents: list[ConsentTerms], *classes: DataClass, **changes: Any) -> Any:
    arguments: dict[str, Any] = {
        "organization_id": ORG,
        "purpose": Purpose.REFERRAL,
        "data_classes": classes,
        "on": ON,
        **changes,
    }
    return decide_coverage(consents, **arguments)


# --- the decision -----------------------------------------------------------------------------


def test_a_named_consent_covers_its_classes_for_its_purpose() -> None:
    coverage = decide([terms()], DataClass.GENERAL, DataClass.SUBSTANCE_USE)
    assert coverage.covered and coverage.consent_id == uuid.UUID(int=1)


def test_no_consent_at_all() -> None:
    coverage = decide([], DataClass.GENERAL)
    assert coverage.consent_id is None
    assert [m.code for m in coverage.missing] == [MissingCode.NO_CONSENT]


def test_sharing_nothing_needs_no_consent() -> None:
    coverage = decide([])
    assert coverage.covered and coverage.consent_id is None


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"revoked_at": datetime(2026, 5, 1, tzinfo=UTC)}, MissingCode.REVOKED),
        ({"expires_on": ON}, MissingCode.EXPIRED),  # the first day it no longer applies
        ({"starts_on": ON + timedelta(days=1)}, MissingCode.NOT_YET_VALID),
        ({"purposes": frozenset({"reporting"})}, MissingCode.PURPOSE_NOT_COVERED),
        ({"recipients": frozenset({"org-other"})}, MissingCode.ORGANISATION_NOT_NAMED),
        ({"data_classes": frozenset({"substance_use"})}, MissingCode.CLASS_NOT_COVERED),
    ],
)
def test_each_shortfall_is_named(changes: dict[str, Any], code: MissingCode) -> None:
    coverage = decide([terms(**changes)], DataClass.GENERAL)
    assert not coverage.covered and coverage.consent_id is None
    assert [m.code for m in coverage.missing] == [code]
    assert coverage.missing[0].consent_id == uuid.UUID(int=1)
    assert str(uuid.UUID(int=1)) in coverage.missing[0].detail


def test_the_day_it_starts_counts_and_the_day_before_expiry_counts() -> None:
    assert decide([terms(starts_on=ON)], DataClass.GENERAL).covered
    assert decide([terms(expires_on=ON + timedelta(days=1))], DataClass.GENERAL).covered


def test_a_network_consent_never_covers_recipient_specific_classes() -> None:
    network = terms(
        network=True,
        recipients=frozenset(),
        data_classes=frozenset({"general", "substance_use", "domestic_violence"}),
    )
    assert decide([network], DataClass.GENERAL).covered
    coverage = decide([network], DataClass.GENERAL, DataClass.DOMESTIC_VIOLENCE)
    assert [(m.code, m.data_classes) for m in coverage.missing] == [
        (MissingCode.ORGANISATION_NOT_NAMED, (DataClass.DOMESTIC_VIOLENCE,))
    ]
    assert "VAWA" in coverage.missing[0].detail


def test_the_uncovered_classes_are_listed() -> None:
    coverage = decide(
        [terms(data_classes=frozenset({"general"}))],
        DataClass.HIV,
        DataClass.GENERAL,
        DataClass.MENTAL_HEALTH,
    )
    assert [(m.code, m.data_classes) for m in coverage.missing] == [
        (MissingCode.CLASS_NOT_COVERED, (DataClass.HIV, DataClass.MENTAL_HEALTH))
    ]


def test_the_covering_consent_that_lasts_longest_is_chosen() -> None:
    short = terms(consent_id=uuid.UUID(int=2), expires_on=date(2026, 7, 1))
    long = terms(consent_id=uuid.UUID(int=3), expires_on=date(2028, 1, 1))
    revoked = terms(consent_id=uuid.UUID(int=4), revoked_at=datetime(2026, 5, 1, tzinfo=UTC))
    coverage = decide([short, revoked, long], DataClass.GENERAL)
    assert coverage.consent_id == uuid.UUID(int=3)


def test_when_none_covers_the_nearest_consent_explains() -> None:
    """A consent in force that lacks one class is nearer than a revoked or expired one."""
    revoked = terms(consent_id=uuid.UUID(int=2), revoked_at=datetime(2026, 5, 1, tzinfo=UTC))
    expired = terms(consent_id=uuid.UUID(int=3), expires_on=date(2026, 2, 1))
    narrow = terms(consent_id=uuid.UUID(int=4), data_classes=frozenset({"general"}))
    coverage = decide([revoked, expired, narrow], DataClass.GENERAL, DataClass.HIV)
    assert [(m.code, m.consent_id) for m in coverage.missing] == [
        (MissingCode.CLASS_NOT_COVERED, uuid.UUID(int=4))
    ]
    only_gone = decide([revoked, expired], DataClass.GENERAL)
    assert [m.code for m in only_gone.missing] == [MissingCode.EXPIRED]


def test_classes_are_not_pieced_together_from_two_consents() -> None:
    general = terms(consent_id=uuid.UUID(int=2), data_classes=frozenset({"general"}))
    hiv = terms(consent_id=uuid.UUID(int=3), data_classes=frozenset({"hiv"}))
    assert not decide([general, hiv], DataClass.GENERAL, DataClass.HIV).covered


def test_a_revocation_known_before_its_grant_covers_nothing() -> None:
    alone = terms(
        starts_on=None,
        expires_on=None,
        recipients=frozenset(),
        purposes=frozenset(),
        data_classes=frozenset(),
        revoked_at=datetime(2026, 5, 1, tzinfo=UTC),
    )
    assert [m.code for m in decide([alone], DataClass.GENERAL).missing] == [MissingCode.REVOKED]


def test_the_problem_says_exactly_what_is_missing() -> None:
    coverage = decide([terms(data_classes=frozenset({"general"}))], DataClass.HIV)
    problem = consent_problem(coverage)
    assert (problem.status, problem.slug) == (422, "consent-required")
    assert problem.extra["missing"] == [
        {
            "code": "class-not-covered",
            "detail": f"Consent {uuid.UUID(int=1)} does not cover hiv data.",
            "consent_id": str(uuid.UUID(int=1)),
            "data_classes": ["hiv"],
        }
    ]
    assert problem.detail == problem.extra["missing"][0]["detail"]


def test_covered_classes_of_one_consent() -> None:
    network = terms(
        network=True, recipients=frozenset(), data_classes=frozenset({"general", "hiv"})
    )
    assert covered_classes(network, organization_id=ORG, purpose=Purpose.REFERRAL, on=ON) == {
        DataClass.GENERAL,
        DataClass.HIV,
    }
    assert covered_classes(terms(), organization_id="org-x", purpose=Purpose.REFERRAL, on=ON) == (
        frozenset()
    )


CLASS_SETS = st.frozensets(st.sampled_from(list(DataClass)))
CONSENTS = st.builds(
    ConsentTerms,
    consent_id=st.uuids(),
    recipients=st.frozensets(st.sampled_from([ORG, "org-other"])),
    network=st.booleans(),
    purposes=st.frozensets(st.sampled_from([p.value for p in Purpose])),
    data_classes=CLASS_SETS.map(lambda classes: frozenset(c.value for c in classes)),
    starts_on=st.dates(date(2025, 1, 1), date(2027, 1, 1)),
    expires_on=st.dates(date(2025, 1, 2), date(2028, 1, 1)),
    revoked_at=st.none() | st.just(datetime(2026, 1, 1, tzinfo=UTC)),
)


def _plainly_covers(consent: ConsentTerms, classes: frozenset[DataClass]) -> bool:
    """The rule, stated once more in the simplest words, to check the decision against."""
    assert consent.starts_on is not None and consent.expires_on is not None
    reaches = consent.network or ORG in consent.recipients
    return (
        consent.revoked_at is None
        and consent.starts_on <= ON < consent.expires_on
        and Purpose.REFERRAL.value in consent.purposes
        and reaches
        and all(c.value in consent.data_classes for c in classes)
        and not (consent.network and classes & RECIPIENT_SPECIFIC_DATA_CLASSES.keys())
    )


@given(st.lists(CONSENTS, max_size=4), CLASS_SETS.filter(bool))
def test_covered_exactly_when_one_consent_covers_it_all(
    consents: list[ConsentTerms], classes: frozenset[DataClass]
) -> None:
    coverage = decide(consents, *classes)
    covering = {c.consent_id for c in consents if _plainly_covers(c, classes)}
    assert coverage.covered == bool(covering)
    if covering:
        assert coverage.consent_id in covering
    else:
        assert coverage.consent_id is None and coverage.missing
        # What is missing is about one real consent (no consent at all when there is none).
        named = {m.consent_id for m in coverage.missing}
        assert len(named) == 1
        assert named <= ({c.consent_id for c in consents} if consents else {None})


# --- the facts in PostgreSQL ------------------------------------------------------------------


def granted(consent_id: uuid.UUID, client_id: uuid.UUID, **changes: Any) -> ConsentGranted:
    values: dict[str, Any] = {
        "consent_id": consent_id,
        "client_id": client_id,
        "recipients": [ORG],
        "network": False,
        "purposes": [Purpose.REFERRAL],
        "data_classes": [DataClass.GENERAL],
        "starts_on": date(2026, 1, 1),
        "expires_on": date(2027, 1, 1),
        "given_by": GivenBy.CLIENT,
        **changes,
    }
    return ConsentGranted(**values)


def revoked(consent_id: uuid.UUID, client_id: uuid.UUID) -> ConsentRevoked:
    return ConsentRevoked(
        consent_id=consent_id,
        client_id=client_id,
        revoked_at=datetime(2026, 5, 1, tzinfo=UTC),
        reason=RevocationReason.CLIENT_REQUEST,
    )


@pytest.fixture
async def referrals_db(settings: Settings) -> Any:
    connection = await asyncpg.connect(settings.database_url)
    await connection.execute("SET search_path = referrals")
    try:
        yield connection
    finally:
        await connection.close()


async def test_recording_is_idempotent_and_keeps_an_early_revocation(
    referrals_db: asyncpg.Connection,
) -> None:
    client_id, first, second = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for _ in range(2):
        await record_consent_granted(referrals_db, granted(first, client_id))
    coverage = await covering_consent(
        referrals_db,
        client_id=client_id,
        organization_id=ORG,
        purpose=Purpose.REFERRAL,
        data_classes=[DataClass.GENERAL],
        on=ON,
    )
    assert coverage.consent_id == first

    # The revocation of `second` arrives before its grant: the grant must not revive it.
    await record_consent_revoked(referrals_db, revoked(second, client_id))
    await record_consent_granted(referrals_db, granted(second, client_id))
    await record_consent_revoked(referrals_db, revoked(first, client_id))
    await record_consent_revoked(referrals_db, revoked(first, client_id))
    coverage = await covering_consent(
        referrals_db,
        client_id=client_id,
        organization_id=ORG,
        purpose=Purpose.REFERRAL,
        data_classes=[DataClass.GENERAL],
        on=ON,
    )
    assert coverage.consent_id is None
    assert {m.code for m in coverage.missing} == {MissingCode.REVOKED}
    rows = await referrals_db.fetch(
        "SELECT consent_id, data_classes, starts_on, revoked_at FROM consent_facts "
        "WHERE client_id = $1",
        client_id,
    )
    assert {row["consent_id"]: row["data_classes"] for row in rows} == {
        first: ["general"],
        second: ["general"],
    }
    assert all(row["revoked_at"] is not None and row["starts_on"] for row in rows)


def protected(
    consent_id: uuid.UUID, client_id: uuid.UUID, *classes: DataClass
) -> ProtectedConsentGranted:
    general = granted(consent_id, client_id)
    return ProtectedConsentGranted.model_validate(
        {**general.model_dump(), "data_classes": list(classes or [DataClass.DOMESTIC_VIOLENCE])}
    )


async def _classes(connection: asyncpg.Connection, consent_id: uuid.UUID) -> asyncpg.Record:
    row = await connection.fetchrow(
        "SELECT data_classes, recipients, starts_on, expires_on, revoked_at FROM consent_facts "
        "WHERE consent_id = $1",
        consent_id,
    )
    assert row is not None
    return row


async def _covers_dv(connection: asyncpg.Connection, client_id: uuid.UUID) -> uuid.UUID | None:
    coverage = await covering_consent(
        connection,
        client_id=client_id,
        organization_id=ORG,
        purpose=Purpose.REFERRAL,
        data_classes=[DataClass.GENERAL, DataClass.DOMESTIC_VIOLENCE],
        on=ON,
    )
    return coverage.consent_id


@pytest.mark.parametrize("general_first", [True, False], ids=["general-first", "protected-first"])
async def test_the_general_and_the_protected_grant_merge_in_either_order(
    referrals_db: asyncpg.Connection, general_first: bool
) -> None:
    client_id, consent_id = uuid.uuid4(), uuid.uuid4()
    both: list[ConsentGrant] = [granted(consent_id, client_id), protected(consent_id, client_id)]
    first, second = both if general_first else both[::-1]

    await record_consent_granted(referrals_db, first)
    # Half known: it covers only what has arrived, never more.
    assert await _covers_dv(referrals_db, client_id) is None
    await record_consent_granted(referrals_db, second)
    await record_consent_granted(referrals_db, first)  # a repeat changes nothing

    row = await _classes(referrals_db, consent_id)
    assert row["data_classes"] == ["domestic_violence", "general"]
    assert (row["recipients"], row["starts_on"]) == ([ORG], date(2026, 1, 1))
    assert await _covers_dv(referrals_db, client_id) == consent_id


async def test_a_revocation_before_either_grant_stays_and_the_classes_still_merge(
    referrals_db: asyncpg.Connection,
) -> None:
    client_id, consent_id = uuid.uuid4(), uuid.uuid4()
    await record_consent_revoked(referrals_db, revoked(consent_id, client_id))
    await record_consent_granted(referrals_db, protected(consent_id, client_id))
    await record_consent_granted(referrals_db, granted(consent_id, client_id))

    row = await _classes(referrals_db, consent_id)
    assert row["data_classes"] == ["domestic_violence", "general"]
    assert row["starts_on"] == date(2026, 1, 1) and row["revoked_at"] is not None
    assert await _covers_dv(referrals_db, client_id) is None


async def test_a_protected_only_consent_is_revoked_by_its_protected_revocation(
    referrals_db: asyncpg.Connection,
) -> None:
    client_id, consent_id = uuid.uuid4(), uuid.uuid4()
    await record_consent_granted(
        referrals_db,
        protected(consent_id, client_id, DataClass.SUBSTANCE_USE),
    )
    row = await _classes(referrals_db, consent_id)
    assert row["data_classes"] == ["substance_use"]
    await record_consent_revoked(
        referrals_db,
        ProtectedConsentRevoked(
            consent_id=consent_id,
            client_id=client_id,
            revoked_at=datetime(2026, 5, 1, tzinfo=UTC),
            reason=RevocationReason.ENTERED_IN_ERROR,
        ),
    )
    assert (await _classes(referrals_db, consent_id))["revoked_at"] is not None


def test_the_general_event_refuses_protected_classes_and_the_protected_one_general() -> None:
    general = granted(uuid.uuid4(), uuid.uuid4())
    for classes in (["general", "hiv"], ["hiv"], []):
        with pytest.raises(ValueError):
            ConsentGranted.model_validate({**general.model_dump(), "data_classes": classes})
    for classes in (["general", "hiv"], ["general"], []):
        with pytest.raises(ValueError):
            ProtectedConsentGranted.model_validate(
                {**general.model_dump(), "data_classes": classes}
            )


async def _facts(settings: Settings, service: str, consent_id: str) -> asyncpg.Record | None:
    connection = await asyncpg.connect(settings.database_url)
    try:
        return await connection.fetchrow(
            f"SELECT * FROM {service}.consent_facts WHERE consent_id = $1", uuid.UUID(consent_id)
        )
    finally:
        await connection.close()


async def test_intake_writes_its_facts_at_once_and_the_others_learn_them(
    stack: Stack, settings: Settings
) -> None:
    intake = stack.api["intake"]
    response = await intake.post("/v1/clients", json=VALID_CLIENT)
    assert response.status_code == 201, response.text
    client_id = response.json()["id"]
    today = datetime.now(UTC).date()
    response = await intake.post(
        f"/v1/clients/{client_id}/consents",
        json={
            "given_by": "client",
            "recipients": [ORG],
            "purposes": ["referral"],
            "data_classes": ["general", "substance_use"],
            "expires_on": (today + timedelta(days=30)).isoformat(),
        },
    )
    assert response.status_code == 201, response.text
    consent_id = response.json()["id"]

    # Intake: in the transaction that recorded it, before any event goes anywhere.
    row = await _facts(settings, "intake", consent_id)
    assert row is not None and row["data_classes"] == ["general", "substance_use"]
    assert row["recipients"] == [ORG] and row["revoked_at"] is None

    for service in ("planning", "referrals", "notifications"):

        async def learned(service: str = service) -> asyncpg.Record | None:
            return await _facts(settings, service, consent_id)

        copy = await eventually(learned)
        assert copy["purposes"] == ["referral"] and copy["starts_on"] == today

        # The protected class arrives on its own topic, to the services that keep consent facts.
        async def merged(service: str = service) -> asyncpg.Record | None:
            copy = await _facts(settings, service, consent_id)
            return copy if copy and copy["data_classes"] == ["general", "substance_use"] else None

        await eventually(merged)

    response = await intake.post(
        f"/v1/clients/{client_id}/consents/{consent_id}/revocation",
        json={"reason": "client_request"},
    )
    assert response.status_code == 200, response.text
    row = await _facts(settings, "intake", consent_id)
    assert row is not None and row["revoked_at"] is not None

    for service in ("planning", "referrals", "notifications"):

        async def revoked_there(service: str = service) -> asyncpg.Record | None:
            copy = await _facts(settings, service, consent_id)
            return copy if copy is not None and copy["revoked_at"] is not None else None

        await eventually(revoked_there)
