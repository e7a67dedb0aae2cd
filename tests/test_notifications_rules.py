"""Pure rules of notifications: the shipped rules are valid, a rule set's problems are all
found, messages render in the reader's language, quiet hours across midnight and time zones."""

from __future__ import annotations

from datetime import UTC, datetime, time

from services.notifications.preferences.models import QuietHours, quiet_until
from services.notifications.rules.models import RuleSet, default_rules, problems_of, render


def test_the_shipped_rules_are_valid_and_cover_the_issue() -> None:
    rules = default_rules()
    assert problems_of(rules) == []
    kinds = {rule.kind for rule in rules.rules}
    assert {
        "crisis_flag", "crisis_flag_escalation", "case_assigned", "transfer_requested",
        "review_due_soon", "review_overdue", "review_overdue_escalated", "approval_requested",
        "referral_made", "referral_status_changed", "referral_closed", "referral_consent_revoked",
    } <= kinds  # fmt: skip


def test_every_problem_of_a_rule_set_is_listed() -> None:
    base = default_rules().rules[3].model_dump()
    rule_set = RuleSet.model_validate(
        {
            "rules": [
                {**base, "event_type": "org.casework.nothing.v1"},
                {**base, "id": "x", "when": {"colour": "red"}, "channels": ["pager"]},
                {**base, "id": "y", "message": "mine"},
                {**base, "id": "x"},
            ],
            "messages": {"mine": {"en": "{client_name} moved", "es": "{0}", "pt": "{case_id!r}"}},
        }
    )
    found = {
        (".".join(map(str, p.location)), p.message.split(";")[0]) for p in problems_of(rule_set)
    }
    assert found == {
        ("body.rules.0.event_type", "unknown event type"),
        ("body.rules.1.when.colour", "org.casework.planning.case.assigned.v1 has no field colour"),
        ("body.rules.1.channels", "unknown channel pager"),
        (
            "body.messages.mine.en",
            "org.casework.planning.case.assigned.v1 offers no parameter client_name",
        ),
        ("body.messages.mine.es", "a template shows `{parameter}` names only"),
        ("body.messages.mine.pt", "a template shows `{parameter}` names only"),
        ("body.rules.3.id", "duplicate rule id"),
    }


def test_a_protected_flags_type_is_never_a_message_parameter() -> None:
    rule_set = RuleSet.model_validate(
        {
            "rules": [{**default_rules().rules[0].model_dump(), "message": "typed"}],
            "messages": {"typed": {lang: "{flag_type}" for lang in ("en", "es", "pt")}},
        }
    )
    assert {p.message for p in problems_of(rule_set)} == {
        "org.casework.intake.protected.flag.raised.v1 offers no parameter flag_type"
    }


def test_messages_render_in_the_readers_language_and_fall_back_to_english() -> None:
    parameters = {"referral_id": "r-1", "to_status": "accepted"}
    assert render(None, "referral_status_changed", "pt", parameters) == (
        "O encaminhamento r-1 está agora em accepted."
    )
    assert render(None, "referral_status_changed", "de", parameters) == (
        "Referral r-1 is now accepted."
    )
    assert render(None, "referral_status_changed", "en", {}) == "Referral ? is now ?."


def test_quiet_hours_across_midnight_in_the_users_time_zone() -> None:
    quiet = QuietHours(start=time(21), end=time(7), time_zone="America/Sao_Paulo")  # UTC-3
    # 23:30 local on 2 March (02:30 UTC on 3 March): quiet until 07:00 local on 3 March.
    until = quiet_until(quiet, datetime(2026, 3, 3, 2, 30, tzinfo=UTC))
    assert until is not None and until.astimezone(UTC) == datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    # 05:00 local: the same morning's 07:00.
    until = quiet_until(quiet, datetime(2026, 3, 3, 8, 0, tzinfo=UTC))
    assert until is not None and until.astimezone(UTC) == datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
    # 12:00 local: not quiet.
    assert quiet_until(quiet, datetime(2026, 3, 3, 15, 0, tzinfo=UTC)) is None
    assert quiet_until(None, datetime(2026, 3, 3, 15, 0, tzinfo=UTC)) is None
