"""Eligibility as data: CEL rules over client facts, passed, failed or unknown with their
description; a rule that does not compile is refused when saved, and nothing is saved."""

from __future__ import annotations

from typing import Any

import pytest

from services.referrals.directory.eligibility import (
    ClientFacts,
    Outcome,
    RuleError,
    check,
    evaluate,
)
from shared.settings import Settings
from tests.directory_support import (
    FOOD_PARTNER,
    OPERATOR,
    OTHER_ADMIN,
    as_user,
    directory_settings,
    directory_stack,
    import_json,
    organization,
    service,
)
from tests.support import Stack, admin_fetchval

__all__ = ["directory_settings", "directory_stack"]

FAMILIES = "household_size >= 3 && income_band in ['low', 'very_low']"


def facts(**given: Any) -> dict[str, Any]:
    return ClientFacts(**given).context()


@pytest.mark.parametrize(
    ("given", "outcome"),
    [
        ({"household_size": 4, "income_band": "low"}, Outcome.PASSED),
        ({"household_size": 2, "income_band": "low"}, Outcome.FAILED),
        ({"household_size": 4, "income_band": "high"}, Outcome.FAILED),
    ],
)
def test_a_rule_passes_or_fails_on_the_facts(given: dict[str, Any], outcome: Outcome) -> None:
    result = evaluate("families", "Families of three or more on a low income", FAMILIES,
                      facts(**given))  # fmt: skip

    assert result.outcome is outcome
    assert result.rule_id == "families"
    assert result.description == "Families of three or more on a low income"
    assert result.detail is None


def test_a_fact_not_given_makes_the_rule_unknown_not_failed() -> None:
    result = evaluate("families", "Families", FAMILIES, facts(household_size=2))

    assert result.outcome is Outcome.UNKNOWN
    assert result.detail == "not known about the client: income_band"


def test_rules_read_need_categories_severities_and_postal_area() -> None:
    context = facts(need_categories=["food", "housing"], need_severities={"food": "high"},
                    postal_area="RV1", language="pt", risk_level="high", priority=1, age=30)  # fmt: skip
    for expression in (
        "'food' in need_categories",
        "need_severities['food'] == 'high'",
        "postal_area.startsWith('RV')",
        "need_categories.exists(n, n == 'housing')",
        "language == 'pt' && risk_level == 'high' && priority == 1 && age < 65",
    ):
        assert evaluate("r", "d", expression, context).outcome is Outcome.PASSED, expression


def test_a_rule_that_cannot_be_evaluated_is_unknown_with_why() -> None:
    result = evaluate("r", "d", "age + 'years' == 'x'", facts(age=30))

    assert result.outcome is Outcome.UNKNOWN
    assert result.detail is not None and result.detail.startswith("could not be evaluated")
    assert evaluate("r", "d", "age", facts(age=30)).detail == "the rule does not give true or false"


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("age >= ", "Syntax error"),
        ("income > 1000", "unknown fact income"),
        ("__import__('os')", "unknown function __import__"),
        ("open('/etc/passwd') == ''", "unknown function open"),
    ],
)
def test_a_rule_that_does_not_compile_is_refused(expression: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        check(expression)


# --- Saving rules through the API -----------------------------------------------------------


@pytest.fixture(scope="module")
async def owned_service(directory_stack: Stack, directory_settings: Settings) -> str:
    record = service(organization(name="Food Bank Rules"))
    api = directory_stack.api["referrals"]
    response = await import_json(api, directory_settings, FOOD_PARTNER, [record])
    assert response.json()["rejected"] == []
    return str(record["id"])


RULES = {
    "rules": [
        {"rule_id": "adults", "description": "Adults only", "expression": "age >= 18"},
        {"rule_id": "local", "description": "Lives in Riverside",
         "expression": "postal_area.startsWith('RV')"},
    ]
}  # fmt: skip


async def test_rules_are_saved_compiled_and_read_back(
    directory_stack: Stack, directory_settings: Settings, owned_service: str
) -> None:
    api = directory_stack.api["referrals"]
    path = f"/v1/directory/services/{owned_service}/eligibility-rules"

    response = await api.put(path, json=RULES, headers=as_user(directory_settings, FOOD_PARTNER))

    assert response.status_code == 200, response.text
    assert [(r["rule_id"], r["compiled_ok"]) for r in response.json()["eligibility_rules"]] == [
        ("adults", True), ("local", True),
    ]  # fmt: skip
    read = await api.get(
        f"/v1/directory/services/{owned_service}", headers=as_user(directory_settings, OPERATOR)
    )
    assert read.json()["eligibility_rules"][1]["expression"] == "postal_area.startsWith('RV')"


async def test_a_rule_that_does_not_compile_is_422_naming_it_and_nothing_is_saved(
    directory_stack: Stack, directory_settings: Settings, owned_service: str
) -> None:
    api = directory_stack.api["referrals"]
    path = f"/v1/directory/services/{owned_service}/eligibility-rules"
    await api.put(path, json=RULES, headers=as_user(directory_settings, FOOD_PARTNER))
    broken = {"rules": [
        {"rule_id": "adults", "description": "Adults", "expression": "age >= 21"},
        {"rule_id": "broken", "description": "Broken", "expression": "age >= && true"},
    ]}  # fmt: skip

    response = await api.put(path, json=broken, headers=as_user(directory_settings, FOOD_PARTNER))

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["title"] == "An eligibility rule does not compile"
    assert problem["errors"][0]["field"] == "body.rules.1.expression"
    assert problem["errors"][0]["message"].startswith("rule broken: Failed to parse expression")
    assert "Nothing was saved" in problem["detail"]
    assert (
        await admin_fetchval(
            directory_settings,
            "SELECT string_agg(expression, ' | ' ORDER BY position) FROM referrals.eligibility_rules "
            "WHERE service_id = $1",
            owned_service,
        )
        == "age >= 18 | postal_area.startsWith('RV')"
    )


async def test_only_those_who_manage_the_service_set_its_rules(
    directory_stack: Stack, directory_settings: Settings, owned_service: str
) -> None:
    api = directory_stack.api["referrals"]
    path = f"/v1/directory/services/{owned_service}/eligibility-rules"

    other = await api.put(path, json=RULES, headers=as_user(directory_settings, OTHER_ADMIN))
    caseworker = await api.put(path, json=RULES)
    operator = await api.put(path, json=RULES, headers=as_user(directory_settings, OPERATOR))

    assert other.status_code == 404
    assert caseworker.status_code == 403
    assert operator.status_code == 200
