"""Progress notes: drafts, signing (once, never changed after), addenda, co-signature by
data, restricted visibility.

The pure rules first, then the API against the real database and broker, one stack for the
module.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from services.planning.notes import rules
from services.planning.notes.models import NoteCreate
from shared.auth.principal import Principal, Role
from shared.events.planning import NoteKind


@dataclass(frozen=True)
class _Case:
    organization_id: str = "org-a"
    team_id: str | None = "team-a"


def principal(
    subject: str, role: Role, team: str | None = "team-a", org: str = "org-a"
) -> Principal:
    return Principal(subject=subject, roles=frozenset({role}), organization_id=org, team_id=team)


ALICE_P = principal("alice", Role.CASEWORKER)
BOB_P = principal("bob", Role.CASEWORKER)
SAM_P = principal("sam", Role.SUPERVISOR)
SUE_P = principal("sue", Role.SUPERVISOR, team="team-b")
TWIN_P = principal("sam", Role.SUPERVISOR, org="org-b")


def test_which_kinds_need_a_cosignature_is_data() -> None:
    assert {NoteKind.CRISIS_INTERVENTION, NoteKind.CONSULTATION} == rules.COSIGNED_KINDS
    assert rules.needs_cosignature(NoteKind.CONSULTATION)
    assert not rules.needs_cosignature(NoteKind.CONTACT)


def test_a_restricted_note_is_seen_by_its_author_and_the_case_supervisor_only() -> None:
    case = _Case()
    seen = {
        p.subject + "/" + p.organization_id + "/" + str(p.team_id)
        for p in (ALICE_P, BOB_P, SAM_P, SUE_P, TWIN_P)
        if rules.may_see(restricted=True, author_id="alice", principal=p, case=case)
    }
    assert seen == {"alice/org-a/team-a", "sam/org-a/team-a"}
    assert rules.may_see(restricted=False, author_id="alice", principal=BOB_P, case=case)


def test_cosignature_rules() -> None:
    case = _Case()

    def refusal(p: Principal, **state: bool) -> str | None:
        facts = {"signed": True, "needs": True, "cosigned": False, **state}
        refused = rules.cosign_refusal(author_id="alice", principal=p, case=case, **facts)
        return refused.code if refused else None

    assert refusal(SAM_P) is None
    assert refusal(SUE_P) == "not-case-supervisor"
    assert refusal(TWIN_P) == "not-case-supervisor"
    assert refusal(BOB_P) == "not-case-supervisor"
    assert refusal(SAM_P, signed=False) == "note-not-signed"
    assert refusal(SAM_P, needs=False) == "cosignature-not-needed"
    assert refusal(SAM_P, cosigned=True) == "note-already-cosigned"
    sam_writes = rules.cosign_refusal(
        signed=True, needs=True, cosigned=False, author_id="sam", principal=SAM_P, case=case
    )
    assert sam_writes is not None and sam_writes.code == "self-cosignature"


@pytest.mark.parametrize(
    ("details", "message"),
    [
        ({"kind": "contact"}, "mode"),
        ({"kind": "contact", "mode": "telepathy"}, "mode"),
        ({"kind": "service_provided"}, "either minutes or units"),
        ({"kind": "service_provided", "minutes": 30, "units": 2}, "either minutes or units"),
        ({"kind": "advocacy", "with_role": "landlord", "on_what": "repairs"}, "with_organization"),
        ({"kind": "consultation", "participants": []}, "participants"),
        ({"kind": "note", "mode": "phone"}, "mode"),
        ({"kind": "séance"}, "kind"),
    ],
)
def test_each_kind_has_its_own_fields(details: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NoteCreate.model_validate({"details": details, "text": "Called the client."})


def test_kind_fields_that_are_right_are_kept() -> None:
    note = NoteCreate.model_validate(
        {
            "details": {
                "kind": "consultation",
                "participants": [{"role": "psychiatrist", "organization_id": "org-clinic"}],
            },
            "text": "Case conference on medication.",
        }
    )
    assert note.details.kind == "consultation"
    assert note.details.participants[0].role == "psychiatrist"
    assert note.visibility == "standard" and note.goal_ids == []
